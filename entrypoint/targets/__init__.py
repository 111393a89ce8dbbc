"""Targets: what ``mesh`` checks and what ``wait --also`` waits for, in ONE registry.

A *target* is one thing to check (a port, a service, a variable); its *kind* says how.
``mesh`` names kinds in its specs (``kind = "redis"``); ``--also`` names them by URL scheme
(``redis://``). Each kind has a ``build`` that validates the target's text at start (a
``ValueError`` says what is wrong, and becomes exit 64) and returns its probe: a function
of the check's timeout that returns a short detail or raises ``AttemptFailed``.

Adding a kind is a module with its ``build`` and one line in ``KINDS`` (``kinds``). Importing
this package loads the table only: a kind's module is imported when that kind is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from entrypoint.targets.kinds import KINDS, MESH_EXTRA_HINT, SCHEMES, Kind

if TYPE_CHECKING:
    from entrypoint.targets.base import Context, Target

__all__ = ["KINDS", "MESH_EXTRA_HINT", "SCHEMES", "Kind", "build", "from_url"]


def build(kind: Kind, text: str, context: Context) -> Target:
    """The target ``text`` of ``kind``, validated now; ValueError says what is wrong."""
    from entrypoint.addresses import redact_url  # noqa: PLC0415 - see the docstring
    from entrypoint.targets.base import Target  # noqa: PLC0415

    if kind.whole_url and not text.startswith(tuple(f"{s}://" for s in kind.schemes)):
        raise ValueError(f"expected a {' or '.join(kind.schemes)} URL")
    probe = kind.build(text, context)
    host, port = _host_port(kind, text)
    return Target(kind, text, redact_url(text) if "://" in text else text, probe, host, port)


def from_url(url: str, context: Context) -> Target:
    """An ``--also`` URL as a target; ValueError says what is wrong."""
    import dataclasses  # noqa: PLC0415
    import urllib.parse  # noqa: PLC0415

    from entrypoint.addresses import redact_url  # noqa: PLC0415

    scheme = urllib.parse.urlsplit(url).scheme
    kind = SCHEMES.get(scheme)
    if kind is None:
        raise ValueError(f"the scheme must be one of {', '.join(s + '://' for s in SCHEMES)}")
    if kind.needs is not None and not _installed(kind.needs):
        raise ValueError(f"needs {kind.needs}: {MESH_EXTRA_HINT}")
    text = url if kind.whole_url else url.split("://", 1)[1].rstrip("/")
    target = build(kind, text, context)
    return dataclasses.replace(target, text=url, shown=redact_url(url))


def _host_port(kind: Kind, text: str) -> tuple[str, int]:
    from entrypoint.addresses import host_port, split_host_port  # noqa: PLC0415

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
