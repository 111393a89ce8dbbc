"""What the gateway layer is told about the bridge it talks to: one value object.

``config`` builds an ``Endpoint`` from flags, variables and a bridge preset; everything in
``gateway/`` works from it alone, so the gateway layer sits below the configuration and
can be used (and tested) without it.
"""

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from entrypoint.addresses import address_text

if TYPE_CHECKING:
    from entrypoint.gateway.dialect import Dialect

# The transports (see transports.py): how a request reaches the bridge and how its answer
# comes back.
REQ, PUSH_PULL, REQ_PULL, HANDSHAKE = "req", "push-pull", "req-pull", "handshake"
RPYC = "rpyc"


class TransportKind(NamedTuple):
    """Everything the rest of the gate needs to know about a transport, in one row: no
    command tests a transport's name (``targets/kinds.py`` does the same for targets)."""

    name: str
    summary: str  # its --help words
    reply_port: bool  # the answer comes on the bridge's PUSH port: needs --reply-port
    sends_requests: bool  # False: the ZeroMQ handshake alone is the verdict
    # health sends nothing: the bridge's PUSH round-robins its answers over every PULL, so
    # an active check beside a running strategy would take the strategy's replies.
    passive_health: bool
    feed_by_default: bool  # the PUB port (5556) is checked even when not configured
    build: str  # "module:Class" in entrypoint.gateway, imported when first used
    # "module:function" in entrypoint.gateway: why a configured request may not be sent
    # over this transport (str), or None; checked at start (exit 64). "": any request.
    requests: str = ""
    needs: str = ""  # an optional package it imports (the extra mt5-gate[NAME]); "": none


TRANSPORT_KINDS: dict[str, TransportKind] = {
    kind.name: kind
    for kind in (
        TransportKind(
            REQ,
            "req (REQ/REP)",
            reply_port=False,
            sends_requests=True,
            passive_health=False,
            feed_by_default=True,
            build="transports:ReqTransport",
        ),
        TransportKind(
            PUSH_PULL,
            "push-pull (PUSH to --port, the answer on a PULL from --reply-port)",
            reply_port=True,
            sends_requests=True,
            passive_health=True,
            feed_by_default=False,
            build="two_socket:PushPullTransport",
        ),
        TransportKind(
            REQ_PULL,
            "req-pull (REQ acknowledged, the answer on --reply-port)",
            reply_port=True,
            sends_requests=True,
            passive_health=True,
            feed_by_default=False,
            build="two_socket:ReqPullTransport",
        ),
        TransportKind(
            HANDSHAKE,
            "handshake (no request: the ZeroMQ handshake only)",
            reply_port=False,
            sends_requests=False,
            passive_health=True,
            feed_by_default=False,
            build="transports:HandshakeTransport",
        ),
        TransportKind(
            RPYC,
            "rpyc (the MetaTrader5 module behind an rpyc classic server: mt5linux)",
            reply_port=False,
            sends_requests=True,
            # Active: rpyc matches replies by sequence number and serves many clients, so
            # a check beside the strategy takes nothing of its own.
            passive_health=False,
            feed_by_default=False,
            build="rpyc_transport:RpycTransport",
            requests="mt5linux:request_refusal",
            needs="rpyc",
        ),
    )
}
TRANSPORTS = tuple(TRANSPORT_KINDS)
TWO_SOCKET = frozenset(kind.name for kind in TRANSPORT_KINDS.values() if kind.reply_port)


class AttemptTimeouts(NamedTuple):
    """One attempt's limits, and what they add up to (httpx's ``Timeout``): nobody sums
    them by hand. The name lookup and the connection get at most ``connect_s`` each, the
    reply ``reply_s`` from the connection."""

    connect_s: float
    reply_s: float

    @property
    def exchange_s(self) -> float:
        """A connection and its reply (an address already known)."""
        return self.connect_s + self.reply_s

    @property
    def total_s(self) -> float:
        """The whole attempt: the lookup, the connection, the reply."""
        return self.connect_s + self.exchange_s


class ClientSecurity(Protocol):
    """What the ZeroMQ client needs of CURVE keys (``curve.CurveKeys``)."""

    def apply(self, sock: Any) -> None: ...

    def describe(self) -> dict[str, str]: ...


class Endpoint(NamedTuple):
    """One bridge: where it is, how to speak to it, and how long each stage may take."""

    host: str
    port: int
    dialect: "Dialect"
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
    # Every request socket gets its own printable identity, never reused (a bridge that
    # routes its answer by the identity as text: PyMetaTrader's broker and EA).
    named_requests: bool = False
    # The broker state that a handshake followed by silence means (``broker_states``).
    silent_state: str | None = None

    @property
    def target(self) -> str:
        return address_text(self.host, self.port)

    @property
    def kind(self) -> TransportKind:
        return TRANSPORT_KINDS[self.transport]

    @property
    def timeouts(self) -> AttemptTimeouts:
        return AttemptTimeouts(self.connect_timeout_s, self.reply_timeout_s)
