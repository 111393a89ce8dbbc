"""The one table of target kinds (``KINDS``), and the URL schemes ``--also`` takes.

Reading the table imports no kind's module: each kind names its ``build`` as
``"module:function"``, imported the first time that kind is built. So ``--help`` and a
healthcheck, which only list the schemes, load none of them, and ``wait --also
tcp://...`` loads the network kinds, not the Redis or HTTP clients.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from entrypoint.deadline import Deadline

# A kind's build: (the target's text, its targets.base.Context) -> its probe (which takes
# the check's Deadline). Spelled out here: base imports this module for Kind.
Build = Callable[[str, Any], Callable[["Deadline"], str]]

MESH_EXTRA_HINT = "install the optional clients: pip install 'mt5-gate[mesh]'"


class Kind:
    """How a target of this kind is checked, and where (mesh's phase, --also's schemes).

    Immutable; each kind exists once, in ``KINDS``, so it compares by identity."""

    __slots__ = ("_build", "gateway", "name", "needs", "phase", "schemes", "whole_url")

    name: str
    phase: str  # mesh's phase: local, network, application or external
    schemes: tuple[str, ...]  # --also URL schemes; none: mesh only
    whole_url: bool  # the probe takes the URL itself, not host:port after "://"
    needs: str | None  # an optional client library (the `mesh` extra)
    gateway: bool  # a gateway (ZeroMQ) port: the gateway's hints; its own context
    _build: str | Build  # "module:function" until first built

    def __init__(  # noqa: PLR0917 - the table's columns
        self,
        name: str,
        phase: str,
        build: str | Build,
        schemes: tuple[str, ...] = (),
        whole_url: bool = False,
        needs: str | None = None,
        gateway: bool = False,
    ) -> None:
        for field, value in (
            ("name", name),
            ("phase", phase),
            ("_build", build),
            ("schemes", schemes),
            ("whole_url", whole_url),
            ("needs", needs),
            ("gateway", gateway),
        ):
            object.__setattr__(self, field, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Kind is immutable (cannot set {name})")

    def __repr__(self) -> str:
        return f"Kind({self.name!r}, {self.phase!r}, schemes={self.schemes!r})"

    @property
    def build(self) -> Build:
        """Validates a target's text now (ValueError says what is wrong) and returns its
        probe; the kind's module is imported on the first call."""
        build = self._build
        if isinstance(build, str):
            module, _, function = build.partition(":")
            build = cast(
                Build, getattr(importlib.import_module(f"entrypoint.targets.{module}"), function)
            )
            object.__setattr__(self, "_build", build)
        return build


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("python", "local", "local:python"),
        Kind("env", "local", "local:env"),
        Kind("file", "local", "local:file"),
        Kind("writable", "local", "local:writable"),
        Kind("icmp", "network", "net:icmp"),
        Kind("zmq_ping", "application", "zmq:request", ("zmq+req",), gateway=True),
        Kind("zmq_pub", "application", "zmq:feed", ("zmq+sub",), gateway=True),
        # The MetaTrader5 module behind an rpyc classic server (--bridge mt5linux).
        Kind("rpyc", "application", "zmq:rpyc", ("rpyc",), gateway=True),
        Kind("redis", "application", "services:redis", ("redis", "rediss"), True, "redis"),
        Kind(
            "postgres",
            "application",
            "services:postgres",
            ("postgresql", "postgres"),
            True,
            "psycopg",
        ),
        Kind("http", "application", "services:http", ("http", "https"), True),
        Kind("dns", "external", "net:dns"),
        Kind("tcp", "external", "net:tcp", ("tcp",)),
    )
}
SCHEMES: dict[str, Kind] = {scheme: kind for kind in KINDS.values() for scheme in kind.schemes}
