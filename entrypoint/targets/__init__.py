"""Targets: what ``mesh`` checks and what ``wait --also`` waits for, in ONE registry.

A *target* is one thing to check (a port, a service, a variable); its *kind* says how.
``mesh`` names kinds in its specs (``kind = "redis"``); ``--also`` names them by URL scheme
(``redis://``). Each kind has a ``build`` that validates the target's text at start (a
``ValueError`` says what is wrong, and becomes exit 64) and returns its probe: a function
of the check's timeout that returns a short detail or raises ``AttemptFailed``.

Adding a kind is a module with its ``build`` and one line in ``KINDS``.
"""

from __future__ import annotations

import dataclasses
import urllib.parse

from entrypoint.addresses import host_port, redact_url, split_host_port
from entrypoint.targets import local, net, services, zmq
from entrypoint.targets.base import Context, Kind, Target

KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("python", "local", local.python),
    Kind("env", "local", local.env),
    Kind("file", "local", local.file),
    Kind("writable", "local", local.writable),
    Kind("icmp", "network", net.icmp),
    Kind("zmq_ping", "application", zmq.request, ("zmq+req",), gateway=True),
    Kind("zmq_pub", "application", zmq.feed, ("zmq+sub",), gateway=True),
    Kind("redis", "application", services.redis, ("redis", "rediss"), True, "redis"),
    Kind("postgres", "application", services.postgres, ("postgresql", "postgres"), True,
         "psycopg"),
    Kind("http", "application", services.http, ("http", "https"), True),
    Kind("dns", "external", net.dns),
    Kind("tcp", "external", net.tcp, ("tcp",)),
)}
SCHEMES: dict[str, Kind] = {scheme: kind for kind in KINDS.values() for scheme in kind.schemes}


def build(kind: Kind, text: str, context: Context) -> Target:
    """The target ``text`` of ``kind``, validated now; ValueError says what is wrong."""
    if kind.whole_url and not text.startswith(tuple(f"{s}://" for s in kind.schemes)):
        raise ValueError(f"expected a {' or '.join(kind.schemes)} URL")
    probe = kind.build(text, context)
    host, port = _host_port(kind, text)
    return Target(kind, text, redact_url(text) if "://" in text else text, probe, host, port)


def from_url(url: str, context: Context) -> Target:
    """An ``--also`` URL as a target; ValueError says what is wrong."""
    scheme = urllib.parse.urlsplit(url).scheme
    kind = SCHEMES.get(scheme)
    if kind is None:
        raise ValueError(f"the scheme must be one of {', '.join(s + '://' for s in SCHEMES)}")
    if kind.needs is not None and not _installed(kind.needs):
        raise ValueError(f"needs {kind.needs}: {services.MESH_EXTRA_HINT}")
    text = url if kind.whole_url else url.split("://", 1)[1].rstrip("/")
    target = build(kind, text, context)
    return dataclasses.replace(target, text=url, shown=redact_url(url))


def _host_port(kind: Kind, text: str) -> tuple[str, int]:
    try:
        if kind.whole_url:
            return host_port(text)
        if kind.schemes:
            return split_host_port(text.partition("?")[0])
    except ValueError:
        pass
    return text, 0


def _installed(module: str) -> bool:
    import importlib.util  # noqa: PLC0415

    return importlib.util.find_spec(module) is not None
