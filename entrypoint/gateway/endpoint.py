"""What the gateway layer is told about the bridge it talks to: one value object.

``config`` builds an ``Endpoint`` from flags, variables and a bridge preset; everything in
``gateway/`` works from it alone, so the gateway layer sits below the configuration and
can be used (and tested) without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from entrypoint.addresses import address_text

if TYPE_CHECKING:
    from entrypoint.gateway.dialect import Dialect

# The transports (see transports.py): how a request reaches the bridge and how its answer
# comes back.
REQ, PUSH_PULL, REQ_PULL, HANDSHAKE = "req", "push-pull", "req-pull", "handshake"
TRANSPORTS = (REQ, PUSH_PULL, REQ_PULL, HANDSHAKE)
TWO_SOCKET = frozenset({PUSH_PULL, REQ_PULL})


class ClientSecurity(Protocol):
    """What the ZeroMQ client needs of CURVE keys (``curve.CurveKeys``)."""

    def apply(self, sock: Any) -> None: ...

    def describe(self) -> dict[str, str]: ...


class Endpoint(NamedTuple):
    """One bridge: where it is, how to speak to it, and how long each stage may take."""

    host: str
    port: int
    dialect: Dialect
    transport: str = REQ
    reply_port: int | None = None  # the bridge's PUSH port, for the two-socket transports
    # The socket a `handshake` (and a passive healthcheck) connects to the request port:
    # "req" (the bridge binds REP or ROUTER) or "push" (it binds PULL).
    handshake_socket: str = "req"
    connect_timeout_s: float = 2.0
    reply_timeout_s: float = 5.0
    curve: ClientSecurity | None = None
    # A request carrying a $file: secret may go to a ZMTP 1.0 peer, which cannot prove it
    # is ZeroMQ (GATE_LEGACY_SECRETS=allow).
    legacy_secrets: bool = False

    @property
    def target(self) -> str:
        return address_text(self.host, self.port)
