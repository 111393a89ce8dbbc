"""Layer 2: ZeroMQ sockets to the gateway, one fresh socket per exchange.

A strict REQ socket is unusable after a timeout (the next send fails with EFSM) and a
gateway that died mid-request never answers that socket, so every exchange gets new
sockets that are closed with LINGER 0 whatever happens.

libzmq makes the TCP connection itself: the gate never opens a bare TCP connection to a
working gateway (a ZeroMQ server may log each connection abandoned mid-greeting as an
error). The socket monitor says how far a connection got (``connection.Connection``); only
when that is ambiguous is the TCP layer asked to diagnose.
"""

import itertools
import os
import time
from collections.abc import Callable
from typing import Any

import zmq

from entrypoint.addresses import endpoint
from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed
from entrypoint.gateway.connection import (
    MONITORED,
    Connection,
    close_monitored,
    drain,
    peers_of,
    queue_without_blocking,
)
from entrypoint.gateway.endpoint import ClientSecurity
from entrypoint.gateway.tcp import Greeting
from entrypoint.reasons import Reason

# A PING or STATUS reply is a small JSON object; anything bigger is hostile or a mistake.
# libzmq drops a connection whose message exceeds this, before allocating it.
MAX_REPLY_BYTES = 1024 * 1024
# After a post-handshake disconnect, how long to wait for libzmq's reconnect event, which
# tells a peer that went away (it retries) from a protocol violation (it gives up).
RETRY_EVENT_GRACE_S = 0.05
# A connection without a handshake event or a reply this long after connecting may be a
# legacy peer (which never reports a handshake), a frozen gateway, or a non-ZeroMQ service
# that sent a banner libzmq took for a ZMTP 1.0 identity: its greeting is read to find out.
GREETING_CHECK_AFTER_S = 0.3
# How long a proven connection's pipe may take to reach our socket after its handshake
# event (libzmq posts it to the socket a moment before it reports the handshake).
PIPE_AFTER_HANDSHAKE_S = 0.5

_LEFT_TO_EXIT: list[zmq.Context[Any]] = []
_NEXT_IDENTITY = itertools.count(1)


def request_identity() -> bytes:
    """A printable ASCII socket identity that no other socket of this process ever had:
    ``mt5-gate-<pid>-<n>``. For a bridge that routes its answer by the identity as text
    (PyMetaTrader): libzmq's own starts with a NUL byte, which the text drops, and a
    reused one would receive the late answer to an earlier, abandoned request."""
    return f"mt5-gate-{os.getpid()}-{next(_NEXT_IDENTITY)}".encode("ascii")


# A plain slotted class, not a NamedTuple: made once per attempt, never compared
# or replaced, and each NamedTuple class costs every healthcheck ~0.1 ms to create.
class Secrecy:
    """A request carries a secret: send it only to a proven peer (``send_proven``)."""

    __slots__ = ("legacy_allowed",)

    def __init__(self, legacy_allowed: bool = False) -> None:
        # A ZMTP 1.0 peer counts as proven (documented opt-in).
        self.legacy_allowed = legacy_allowed


class Exchange:
    """A reply, with how long the TCP connection took and the round trip from when the
    request could reach the gateway (its handshake, or a legacy peer's connection)."""

    __slots__ = ("connect_ms", "frames", "rtt_ms")

    def __init__(self, frames: list[bytes], connect_ms: float | None, rtt_ms: float | None) -> None:
        self.frames = frames
        self.connect_ms = connect_ms
        self.rtt_ms = rtt_ms


class Monitored:
    """A connected socket, its monitor, and what the monitor has said so far."""

    __slots__ = ("conn", "kind", "monitor", "sock", "started")

    def __init__(
        self,
        sock: zmq.Socket[Any],
        monitor: zmq.Socket[Any],
        kind: int,
        conn: Connection,
        started: float,
    ) -> None:
        self.sock = sock
        self.monitor = monitor
        self.kind = kind
        self.conn = conn
        self.started = started

    def close(self) -> None:
        close_monitored(self.sock, self.monitor)


def _share(deadline: Deadline, seconds: float | None) -> Deadline:
    return deadline if seconds is None else deadline.capped(seconds)


class ZmqGateway:
    """Owns the ZeroMQ context; every socket it makes is closed before ``close`` returns."""

    def __init__(
        self, max_reply_bytes: int = MAX_REPLY_BYTES, curve: ClientSecurity | None = None
    ) -> None:
        self.max_reply_bytes = max_reply_bytes
        self.curve = curve
        self._ctx = zmq.Context(io_threads=1)
        # LINGER 0 as the context default, so term() never waits on a queued message.
        self._ctx.setsockopt(zmq.LINGER, 0)
        self._ctx.set(zmq.BLOCKY, 0)

    def __enter__(self) -> "ZmqGateway":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception):
            # A signal (GateSignal) is ending the process. It may have interrupted pyzmq
            # half-way through creating a socket, leaving one open that pyzmq does not know
            # of, and term() would wait for it forever. Leave the context to the OS, which
            # closes everything at exit; keep a reference so that no garbage collection
            # before then tries to terminate it either.
            _LEFT_TO_EXIT.append(self._ctx)
            return
        self.close()

    def close(self) -> None:
        self._ctx.destroy(linger=0)  # closes any socket still open, then terminates

    def socket(
        self,
        kind: int,
        address: str,
        reconnect_ms: int = 100,
        *,
        holds_secret: bool = False,
        identity: bytes | None = None,
    ) -> zmq.Socket[Any]:
        """A socket with our bounds (LINGER 0, MAXMSGSIZE) and CURVE keys when configured;
        ``identity`` (``request_identity``) is set before it connects, as libzmq needs.

        A socket that will hold a secret makes one TCP connection only: libzmq keeps a
        socket's pipe across reconnects, so a request queued after a handshake on one
        connection would leave on the next, whatever answers there (an SSH server that took
        the port). And it has a pipe only while that connection is up (IMMEDIATE), so a
        send after the connection dropped fails instead of queueing for nobody."""
        sock = self._ctx.socket(kind)
        if identity is not None:
            sock.setsockopt(zmq.IDENTITY, identity)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_reply_bytes)
        sock.setsockopt(zmq.RECONNECT_IVL, -1 if holds_secret else reconnect_ms)
        if holds_secret:
            sock.setsockopt(zmq.IMMEDIATE, 1)
        if ":" in address:
            sock.setsockopt(zmq.IPV6, 1)
        if self.curve is not None:
            self.curve.apply(sock)
        return sock

    def open(
        self,
        kind: int,
        address: str,
        port: int,
        stage: Deadline,
        *,
        role: str = "",
        holds_secret: bool = False,
        identity: bytes | None = None,
    ) -> Monitored:
        """A socket of ``kind`` connecting to address:port, with its monitor attached; one
        that ``holds_secret`` never reconnects (``socket``), see ``send_proven``."""
        sock = self.socket(kind, address, holds_secret=holds_secret, identity=identity)
        try:
            monitor = sock.get_monitor_socket(MONITORED)
        except BaseException:
            sock.close(linger=0)
            raise
        opened = Monitored(
            sock,
            monitor,
            kind,
            Connection(address, port, self.curve is not None, stage, role),
            time.monotonic(),
        )
        opened.conn.reconnects = not holds_secret
        try:
            sock.connect(endpoint(address, port))
        except BaseException:
            opened.close()
            raise
        return opened

    def handshake(
        self,
        address: str,
        port: int,
        deadline: Deadline,
        message_within_s: float | None = None,
        kind: int = zmq.SUB,
    ) -> float:
        """Connect a socket of ``kind`` (SUB for a PUB port) and wait until its connection is
        shown to work (a handshake, a legacy peer's greeting, or a first message); the time
        that took in ms. Nothing is ever sent.

        With ``message_within_s`` (SUB only), also wait that long for a published message.
        """
        opened = self.open(kind, address, port, deadline)
        try:
            if kind == zmq.SUB:
                opened.sock.setsockopt(zmq.SUBSCRIBE, b"")
            self.await_(opened, deadline, until_handshake=True)
            conn = opened.conn
            took_ms = ((conn.reached_at or time.monotonic()) - opened.started) * 1000
            if message_within_s is not None and not opened.sock.poll(int(message_within_s * 1000)):
                raise AttemptFailed(
                    "zmq",
                    Reason.NO_REPLY,
                    f"handshake done, but no message within {message_within_s:g} s",
                )
            return took_ms
        finally:
            opened.close()

    def request(
        self,
        address: str,
        port: int,
        payload: bytes,
        deadline: Deadline,
        *,
        connect_timeout_s: float,
        reply_timeout_s: float,
        on_connected: Callable[[], None] | None = None,
        secret: Secrecy | None = None,
        identity: bytes | None = None,
    ) -> Exchange:
        """Send ``payload`` on a fresh REQ socket; the reply, or AttemptFailed saying why not.

        The connection gets ``connect_timeout_s``, the reply ``reply_timeout_s`` from the
        moment of connection: each a share of ``deadline``, which bounds the whole. A
        payload with a ``secret`` is sent only once the peer proved it is ZeroMQ."""
        opened = self.open(
            zmq.REQ, address, port, deadline, holds_secret=secret is not None, identity=identity
        )
        try:
            if secret is not None:
                self.prove(opened, deadline, connect_timeout_s, reply_timeout_s, secret)
                self.send_proven(opened, payload, deadline)
                queued = True
            else:
                # Queued: libzmq delivers it once connected. Not queued: the peer already
                # refused the handshake, and await_ reads why from the monitor.
                queued = queue_without_blocking(opened.sock, payload)
            told: list[bool] = []

            def tell_once() -> None:
                if on_connected is not None and queued and not told:
                    told.append(True)
                    on_connected()

            self.await_(
                opened,
                deadline,
                connect_timeout_s=connect_timeout_s,
                reply_timeout_s=reply_timeout_s,
                on_connected=tell_once,
            )
            if not queued:  # await_ raised in every run seen; never wait on an empty socket
                raise self._disconnected(opened)
            tell_once()  # a reply that beat the monitor's events proves it was delivered
            frames = opened.sock.recv_multipart()
            return exchange_of(opened, frames)
        finally:
            opened.close()

    def prove(
        self,
        opened: Monitored,
        deadline: Deadline,
        connect_timeout_s: float,
        reply_timeout_s: float,
        secret: Secrecy,
    ) -> None:
        """Wait until the peer proved it is ZeroMQ with a socket type ours talks to, before
        a secret is queued (libzmq sends a queued message to anything it takes for ZMTP
        1.0: an SSH or HTTP server); AttemptFailed when it does not."""
        self.await_(
            opened,
            deadline,
            connect_timeout_s=connect_timeout_s,
            reply_timeout_s=reply_timeout_s,
            until_handshake=True,
        )
        refusal = opened.conn.refuse_secret(opened.kind, secret.legacy_allowed)
        if refusal is not None:
            raise refusal

    def send_proven(self, opened: Monitored, payload: bytes, deadline: Deadline) -> None:
        """Send ``payload`` on the connection that just proved itself, or AttemptFailed
        with the usual verdict when it dropped: never on another connection.

        ``opened`` holds a secret, so it never reconnects and has a pipe only while its one
        connection is up: what the monitor said last is still true at the send, and a
        connection that dropped since leaves no pipe to queue to (the send fails)."""
        conn = opened.conn
        assert not conn.reconnects, "a secret goes only on a socket that never reconnects"
        for event, value in drain(opened.monitor):
            conn.apply(event, value)
        if conn.failure is not None:
            raise conn.failure
        if conn.disconnected:
            raise self._disconnected(opened)
        wait_ms = max(1, int(min(deadline.remaining(), PIPE_AFTER_HANDSHAKE_S) * 1000))
        if opened.sock.poll(wait_ms, zmq.POLLOUT) and queue_without_blocking(opened.sock, payload):
            return
        for event, value in drain(opened.monitor):
            conn.apply(event, value)
        conn.disconnected = True  # no pipe: the proven connection is gone, and stays gone
        raise self._disconnected(opened)

    def await_(
        self,
        opened: Monitored,
        deadline: Deadline,
        *,
        connect_timeout_s: float | None = None,
        reply_timeout_s: float | None = None,
        until_handshake: bool = False,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        """Wait until the socket is readable (or, ``until_handshake``, its connection is
        shown to work) while the monitor reports on the connection; AttemptFailed says why
        not. May be called again on the same socket: the connection's state carries over.

        Two stages share ``deadline``: connecting (at most ``connect_timeout_s``), then the
        reply (at most ``reply_timeout_s`` from the connection, or from this call when the
        connection was already made). ``on_connected`` is called when the connection is
        made: from then on, a request queued on the socket can reach the peer."""
        conn = opened.conn
        conn.stage = _share(deadline, connect_timeout_s)
        poller = zmq.Poller()
        poller.register(opened.sock, zmq.POLLIN)
        poller.register(opened.monitor, zmq.POLLIN)
        replying = False
        while True:
            if until_handshake and conn.handshake:
                return
            if conn.connected_at is not None and not replying:
                replying = True
                conn.stage = _share(deadline, reply_timeout_s)
                if on_connected is not None:
                    on_connected()
            if conn.stage.expired():
                raise conn.timed_out(conn.stage.limit_s)
            if self._greeting_check_due(conn) and self._legacy_peer(conn, until_handshake):
                return  # connected is as far as a legacy peer reports
            wait_ms = max(1, int(min(conn.stage.remaining(), GREETING_CHECK_AFTER_S) * 1000))
            ready = dict(poller.poll(wait_ms))
            if opened.monitor in ready and self._monitor_says_done(opened, until_handshake):
                return
            if opened.sock in ready:
                return  # a reply, or for SUB a first message: the connection works

    def _monitor_says_done(self, opened: Monitored, until_handshake: bool) -> bool:
        """Apply the monitor's events; True when they show the handshake that was awaited,
        AttemptFailed when they show a failure."""
        conn = opened.conn
        for event, value in drain(opened.monitor):
            conn.apply(event, value)
        if conn.failure is not None:
            raise conn.failure
        if until_handshake and conn.handshake:
            return True
        if conn.disconnected:
            raise self._disconnected(opened)
        return False

    @staticmethod
    def _legacy_peer(conn: Connection, until_handshake: bool) -> bool:
        """Read the greeting of a connection that reports nothing: a non-ZeroMQ service is
        AttemptFailed now; True for a legacy peer when only the connection was awaited."""
        seen = conn.inspect()
        if not seen.kind.is_zmq and seen.kind is not Greeting.SILENT:
            conn.dropped(seen)
            assert conn.failure is not None
            raise conn.failure
        return until_handshake and seen.kind in (Greeting.ZMTP1, Greeting.ZMTP2)

    @staticmethod
    def _greeting_check_due(conn: Connection) -> bool:
        """A connection with neither a handshake nor a reply a moment after connecting: a
        legacy peer (which never reports a handshake), a frozen gateway, or a service that
        is not ZeroMQ at all and left libzmq waiting. Only its greeting says which."""
        return (
            conn.connected_at is not None
            and not conn.handshake
            and conn.seen is None
            and time.monotonic() - conn.connected_at >= GREETING_CHECK_AFTER_S
        )

    def _disconnected(self, opened: Monitored) -> AttemptFailed:
        conn = opened.conn
        if not conn.handshake and conn.inspect().kind is Greeting.BANNER:
            # libzmq took its first byte for ZMTP 1.0 and then choked on the rest (the gate's
            # verdict is its own reading of the greeting, never libzmq's).
            conn.dropped(conn.inspect())
            assert conn.failure is not None
            return conn.failure
        if not conn.handshake:
            # libzmq emits no handshake-failure event when the peer's READY names a socket
            # type it cannot talk to (PUB, REQ, DEALER...); it just drops and never retries.
            return AttemptFailed(
                "zmq",
                Reason.PROTOCOL,
                f"{conn.where} is a ZeroMQ socket of a type we cannot talk "
                f"to (our {_name(opened.kind)} socket needs "
                f"{peers_of(opened.kind)})",
            )
        if not conn.retried and opened.monitor.poll(int(RETRY_EVENT_GRACE_S * 1000)):
            for event, _value in drain(opened.monitor):
                if event in (zmq.EVENT_CONNECT_RETRIED, zmq.EVENT_CLOSED):
                    conn.retried = True
        if conn.retried or not conn.reconnects:
            # A socket that never reconnects (it holds a secret) reports no retry: a drop
            # after its handshake is the peer closing it.
            who = f"{conn.role}the peer" if conn.role else "the gateway"
            return AttemptFailed(
                "zmq", Reason.RESET, f"{who} closed the connection before replying"
            )
        return AttemptFailed(
            "zmq",
            Reason.PROTOCOL,
            "libzmq dropped the connection: a reply larger than "
            f"{self.max_reply_bytes} bytes or malformed framing",
        )


def exchange_of(opened: Monitored, frames: list[bytes], sent_at: float | None = None) -> Exchange:
    """The Exchange for ``frames`` received on ``opened`` just now: the connection's time,
    and the round trip from ``sent_at`` (default: when the request could reach the peer)."""
    conn = opened.conn
    connect_ms = (
        None if conn.connected_at is None else round((conn.connected_at - opened.started) * 1000, 2)
    )
    since = sent_at if sent_at is not None else conn.reached_at
    rtt_ms = None if since is None else round((time.monotonic() - since) * 1000, 2)
    return Exchange(frames, connect_ms, rtt_ms)


def _name(kind: int) -> str:
    names: dict[int, str] = {zmq.REQ: "REQ", zmq.PUSH: "PUSH", zmq.PULL: "PULL", zmq.SUB: "SUB"}
    return names.get(kind, "")
