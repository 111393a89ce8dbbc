"""Layer 2: ZeroMQ requests to the gateway, one fresh socket per request.

A strict REQ socket is unusable after a timeout (the next send fails with EFSM) and a
gateway that died mid-request never answers that socket, so every request gets a new
socket that is closed with LINGER 0 whatever happens.

libzmq makes the TCP connection itself: the gate never opens a bare TCP connection to a
working gateway (a ZeroMQ server may log each connection abandoned mid-greeting as an
error). The socket monitor says how far a connection got; only when that is ambiguous is
the TCP layer asked to diagnose (the errno of a refused connect, or what a peer that
dropped the handshake really is). A legacy peer (ZMTP 1.0 or 2.0: libzmq 2.x/3.x, JeroMQ
0.3) has no security handshake, so the monitor reports its connection but never a
handshake: the connection is what marks the moment a request can reach it.
"""

from __future__ import annotations

import dataclasses
import struct
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import zmq

from entrypoint.addresses import address_text, endpoint, socket_family
from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed
from entrypoint.gateway.tcp import (
    Greeting,
    GreetingSeen,
    connect,
    describe_peer,
    inspect_greeting,
)
from entrypoint.reasons import Reason
from entrypoint.signals import raise_if_pending

if TYPE_CHECKING:
    from entrypoint.config import ClientSecurity

# A PING or STATUS reply is a small JSON object; anything bigger is hostile or a mistake.
# libzmq drops a connection whose message exceeds this, before allocating it.
MAX_REPLY_BYTES = 1024 * 1024
# How often libzmq retries a connect while a PING waits in a "pending ping" socket: it
# bounds how late we notice a gateway that binds during a backoff pause, and sets how many
# connection attempts a down gateway receives. libzmq waits ivl + rand(ivl) and doubles ivl
# up to the maximum: 50-100 ms, then 100-150 ms, then 150-200 ms for the rest of the pause.
PENDING_RECONNECT_MS = 50
PENDING_RECONNECT_MAX_MS = 150
# After a post-handshake disconnect, how long to wait for libzmq's reconnect event, which
# tells a peer that went away (it retries) from a protocol violation (it gives up).
RETRY_EVENT_GRACE_S = 0.05

# A connection without a handshake event or a reply this long after connecting may be a
# legacy peer (which never reports a handshake), a frozen gateway, or a non-ZeroMQ service
# that sent a banner libzmq took for a ZMTP 1.0 identity: its greeting is read to find out.
GREETING_CHECK_AFTER_S = 0.3

_MONITORED = (zmq.EVENT_CONNECTED | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_CLOSED
              | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
              | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
              | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


_LEFT_TO_EXIT: list[zmq.Context[Any]] = []


@dataclasses.dataclass(frozen=True)
class Exchange:
    """A reply, with how long the TCP connection took and the round trip from when the
    request could reach the gateway (its handshake, or a legacy peer's connection)."""

    frames: list[bytes]
    connect_ms: float | None
    rtt_ms: float | None


class _Connection:
    """What the monitor has told us about one socket's connection so far; asks the TCP
    layer only when the events alone cannot say what went wrong."""

    def __init__(self, address: str, port: int, curve: bool, stage: Deadline) -> None:
        self.address = address
        self.port = port
        self.curve = curve
        self.connected_at: float | None = None
        self.reached_at: float | None = None  # the latest connection or handshake
        self.retried = False
        self.handshake = False
        self.disconnected = False
        self.failure: AttemptFailed | None = None
        # A handshake dropped by a ZeroMQ peer without detail: a restarting gateway, or the
        # peer noticing a socket-type mismatch first. libzmq reconnects; the next
        # connection (or the timeout) decides.
        self.dropped_in_handshake = False
        self.seen: GreetingSeen | None = None
        self._expect_disconnect = False
        self.stage = stage  # the deadline of the stage in progress: connect, then reply

    @property
    def where(self) -> str:
        return address_text(self.address, self.port)

    def apply(self, event: int, value: int) -> None:
        now = time.monotonic()
        if event == zmq.EVENT_CONNECTED:
            self.connected_at = self.connected_at or now
            self.reached_at = now
        elif event in (zmq.EVENT_CONNECT_RETRIED, zmq.EVENT_CLOSED):
            if self.connected_at is None and not self.retried:
                self._connect_failed()
            self.retried = True
        elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.handshake = True
            self.reached_at = now
        elif event in _HANDSHAKE_FAILURES:
            self._handshake_failed(event, value)
        elif event == zmq.EVENT_DISCONNECTED:
            if self._expect_disconnect:  # the handshake failure's own disconnect
                self._expect_disconnect = False
            else:
                self.disconnected = True

    def _connect_failed(self) -> None:
        """libzmq could not connect, and does not say why: connect once ourselves for the
        errno. If that connect succeeds, the gateway has just come up: keep waiting."""
        family = socket_family(self.address)
        try:
            connect([(family, self.address)], self.port, self.stage)
        except AttemptFailed as failure:
            if failure.reason is Reason.RESET:
                # The handshake completed and the peer reset the connection before our
                # connect() returned (a port proxy without a backend, seen on a busy
                # machine): TCP works, what listens there drops every connection.
                failure = AttemptFailed("greeting", Reason.RESET, describe_peer(
                    GreetingSeen(Greeting.CLOSED), self.where))
            self.failure = failure

    def inspect(self) -> GreetingSeen:
        if self.seen is None:
            try:
                self.seen = inspect_greeting(self.address, self.port, self.stage)
            except AttemptFailed:  # it stopped listening since: it went away
                self.seen = GreetingSeen(Greeting.CLOSED)
        return self.seen

    def _handshake_failed(self, event: int, value: int) -> None:
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self.failure = AttemptFailed("zmq", Reason.AUTH,
                                         f"the gateway rejected this client's CURVE key "
                                         f"(ZAP status {value})")
        elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
                self.failure = AttemptFailed("zmq", Reason.AUTH, _mismatch(self.curve))
            else:
                self.failure = AttemptFailed("zmq", Reason.PROTOCOL,
                                             f"ZeroMQ handshake failed: protocol error "
                                             f"{value:#x}")
        else:  # EVENT_HANDSHAKE_FAILED_NO_DETAIL: the events cannot say; the greeting can
            self._expect_disconnect = True
            self.dropped(self.inspect())

    def dropped(self, seen: GreetingSeen) -> None:
        """Decide what a peer that did not complete the ZeroMQ handshake is, from what it
        sent: not ZeroMQ, a security mismatch, or a ZeroMQ peer that dropped (retry)."""
        if not seen.kind.is_zmq:  # silent too: it dropped libzmq's greeting, sends none
            reason = Reason.RESET if seen.kind is Greeting.CLOSED else Reason.NOT_ZMQ
            self.failure = AttemptFailed("greeting", reason, describe_peer(seen, self.where))
        elif self.curve and seen.mechanism != "CURVE":
            offered = seen.mechanism or f"no security ({seen.kind.value})"
            self.failure = AttemptFailed("zmq", Reason.AUTH,
                                         f"CURVE is configured on the gate, but the gateway "
                                         f"offers {offered}: use CURVE on both sides, or on "
                                         "neither")
        elif self.curve:
            # A CURVE server that cannot decrypt our HELLO drops the connection without a
            # word: the key we hold for it is not its key.
            self.failure = AttemptFailed("zmq", Reason.AUTH,
                                         "the gateway dropped the CURVE handshake: the "
                                         "server key is probably wrong")
        elif seen.mechanism not in (None, "NULL"):
            self.failure = AttemptFailed("zmq", Reason.AUTH,
                                         f"the gateway requires {seen.mechanism} security")
        else:
            self.dropped_in_handshake = True

    def timed_out(self, waited_s: float) -> AttemptFailed:
        if self.handshake:
            return AttemptFailed("zmq", Reason.NO_REPLY, f"no reply within {waited_s:g} s")
        if self.dropped_in_handshake:
            return AttemptFailed("zmq", Reason.RESET,
                                 "the connection dropped during the ZeroMQ handshake")
        if self.connected_at is not None:
            return AttemptFailed("zmq", Reason.NO_REPLY,
                                 f"TCP connected, but no ZeroMQ handshake or reply within "
                                 f"{waited_s:g} s (gateway frozen or overloaded, a legacy "
                                 "ZeroMQ peer that did not answer, or a silent non-ZeroMQ "
                                 "service)")
        return AttemptFailed("tcp", Reason.TIMEOUT,
                             f"{self.where}: no answer within {waited_s:g} s")


def _mismatch(curve: bool) -> str:
    return "security mechanism mismatch: " + (
        "CURVE is configured on the gate, but the gateway does not use CURVE: use CURVE on "
        "both sides, or on neither" if curve else
        "the gateway requires CURVE: set GATEWAY_CURVE_SERVER_KEY")


def _share(deadline: Deadline, seconds: float | None) -> Deadline:
    return deadline if seconds is None else deadline.capped(seconds)


_HANDSHAKE_FAILURES = (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                       zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


class ZmqGateway:
    """Owns the ZeroMQ context; every socket it makes is closed before ``close`` returns."""

    def __init__(self, max_reply_bytes: int = MAX_REPLY_BYTES,
                 curve: ClientSecurity | None = None) -> None:
        self.max_reply_bytes = max_reply_bytes
        self.curve = curve
        self._ctx = zmq.Context(io_threads=1)
        # LINGER 0 as the context default, so term() never waits on a queued message.
        self._ctx.setsockopt(zmq.LINGER, 0)
        self._ctx.set(zmq.BLOCKY, 0)

    def __enter__(self) -> ZmqGateway:
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

    def _req_socket(self, address: str, reconnect_ms: int = 100) -> zmq.Socket[Any]:
        sock = self._socket(zmq.REQ, address)
        sock.setsockopt(zmq.RECONNECT_IVL, reconnect_ms)
        return sock

    def _socket(self, kind: int, address: str) -> zmq.Socket[Any]:
        """A socket with our bounds (LINGER 0, MAXMSGSIZE) and CURVE keys when configured."""
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_reply_bytes)
        if ":" in address:
            sock.setsockopt(zmq.IPV6, 1)
        if self.curve is not None:
            self.curve.apply(sock)
        return sock

    def handshake(self, address: str, port: int, deadline: Deadline,
                  message_within_s: float | None = None) -> float:
        """Connect a SUB socket to a PUB port; the time in ms until the connection was
        shown to work (a handshake, a legacy peer's greeting, or a first message).

        With ``message_within_s``, also wait that long for the first published message.
        """
        sock = self._socket(zmq.SUB, address)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        monitor = sock.get_monitor_socket(_MONITORED)
        started = time.monotonic()
        try:
            sock.connect(endpoint(address, port))
            conn = self._await(sock, monitor, address, port, deadline, until_handshake=True)
            took_ms = ((conn.reached_at or time.monotonic()) - started) * 1000
            if message_within_s is not None and not sock.poll(int(message_within_s * 1000)):
                raise AttemptFailed("zmq", Reason.NO_REPLY,
                                    f"handshake done, but no message within "
                                    f"{message_within_s:g} s")
            return took_ms
        finally:
            _close_monitored(sock, monitor)

    def request(self, address: str, port: int, payload: bytes, deadline: Deadline, *,
                connect_timeout_s: float, reply_timeout_s: float) -> Exchange:
        """Send ``payload`` on a fresh REQ socket; the reply, or AttemptFailed saying why not.

        The connection gets ``connect_timeout_s``, the reply ``reply_timeout_s`` from the
        moment of connection: each a share of ``deadline``, which bounds the whole."""
        sock = self._req_socket(address)
        monitor = sock.get_monitor_socket(_MONITORED)
        started = time.monotonic()
        try:
            sock.connect(endpoint(address, port))
            sock.send(payload)
            conn = self._await(sock, monitor, address, port, deadline,
                               connect_timeout_s=connect_timeout_s,
                               reply_timeout_s=reply_timeout_s)
            frames = sock.recv_multipart()
            replied = time.monotonic()
            connect_ms = None if conn.connected_at is None else \
                round((conn.connected_at - started) * 1000, 2)
            rtt_ms = None if conn.reached_at is None else \
                round((replied - conn.reached_at) * 1000, 2)
            return Exchange(frames, connect_ms, rtt_ms)
        finally:
            _close_monitored(sock, monitor)

    def _await(self, sock: zmq.Socket[Any], monitor: zmq.Socket[Any], address: str, port: int,
               deadline: Deadline, *, connect_timeout_s: float | None = None,
               reply_timeout_s: float | None = None, until_handshake: bool = False
               ) -> _Connection:
        """Wait until ``sock`` is readable (or, ``until_handshake``, its connection is shown
        to work) while the monitor reports on the connection; AttemptFailed says why not.

        Two stages share ``deadline``: connecting (at most ``connect_timeout_s``), then the
        reply (at most ``reply_timeout_s`` from the connection)."""
        conn = _Connection(address, port, self.curve is not None, _share(deadline,
                                                                          connect_timeout_s))
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        replying = False
        while True:
            if conn.connected_at is not None and not replying:
                replying = True
                conn.stage = _share(deadline, reply_timeout_s)
            if conn.stage.expired():
                raise conn.timed_out(conn.stage.limit_s)
            if self._greeting_check_due(conn) and self._legacy_publisher(conn, until_handshake):
                return conn  # connected is as far as a legacy peer reports
            wait_ms = max(1, int(min(conn.stage.remaining(), GREETING_CHECK_AFTER_S) * 1000))
            ready = dict(poller.poll(wait_ms))
            if monitor in ready and self._monitor_says_done(conn, monitor, until_handshake):
                return conn
            if sock in ready:
                return conn  # a reply, or for SUB a first message: the connection works

    def _monitor_says_done(self, conn: _Connection, monitor: zmq.Socket[Any],
                           until_handshake: bool) -> bool:
        """Apply the monitor's events; True when they show the handshake that was awaited,
        AttemptFailed when they show a failure."""
        for event, value in _drain(monitor):
            conn.apply(event, value)
        if conn.failure is not None:
            raise conn.failure
        if until_handshake and conn.handshake:
            return True
        if conn.disconnected:
            raise self._disconnected(conn, monitor)
        return False

    @staticmethod
    def _legacy_publisher(conn: _Connection, until_handshake: bool) -> bool:
        """Read the greeting of a connection that reports nothing: a non-ZeroMQ service is
        AttemptFailed now; True for a legacy peer when only the connection was awaited."""
        seen = conn.inspect()
        if not seen.kind.is_zmq and seen.kind is not Greeting.SILENT:
            conn.dropped(seen)
            assert conn.failure is not None
            raise conn.failure
        return until_handshake and seen.kind in (Greeting.ZMTP1, Greeting.ZMTP2)

    @staticmethod
    def _greeting_check_due(conn: _Connection) -> bool:
        """A connection with neither a handshake nor a reply a moment after connecting: a
        legacy peer (which never reports a handshake), a frozen gateway, or a service that
        is not ZeroMQ at all and left libzmq waiting. Only its greeting says which."""
        return (conn.connected_at is not None and not conn.handshake and conn.seen is None
                and time.monotonic() - conn.connected_at >= GREETING_CHECK_AFTER_S)

    def _disconnected(self, conn: _Connection, monitor: zmq.Socket[Any]) -> AttemptFailed:
        if not conn.handshake:
            # libzmq emits no handshake-failure event when the peer's READY names a socket
            # type it cannot talk to (PUB, REQ, DEALER...); it just drops and never retries.
            return AttemptFailed("zmq", Reason.PROTOCOL,
                                 "the port is a ZeroMQ socket of a type we cannot talk to "
                                 "(requests need REP or ROUTER, the feed needs PUB)")
        if not conn.retried and monitor.poll(int(RETRY_EVENT_GRACE_S * 1000)):
            for event, _value in _drain(monitor):
                if event in (zmq.EVENT_CONNECT_RETRIED, zmq.EVENT_CLOSED):
                    conn.retried = True
        if conn.retried:
            return AttemptFailed("zmq", Reason.RESET,
                                 "the gateway closed the connection before replying")
        return AttemptFailed("zmq", Reason.PROTOCOL,
                             "libzmq dropped the connection: a reply larger than "
                             f"{self.max_reply_bytes} bytes or malformed framing")

    def pending_ping(self, address: str, port: int, payload: bytes,
                     connect_timeout_s: float) -> PendingPing:
        return PendingPing(self, address, port, payload, connect_timeout_s)


def _close_monitored(sock: zmq.Socket[Any], monitor: zmq.Socket[Any]) -> None:
    """Close a socket and its monitor, monitor first, without lingering."""
    sock.disable_monitor()
    monitor.close(linger=0)
    sock.close(linger=0)


def _drain(monitor: zmq.Socket[Any]) -> Iterator[tuple[int, int]]:
    """(event, value) pairs the monitor has queued, without waiting."""
    while monitor.poll(0):
        # Frame 1 of a monitor message is the event id (uint16) and its value (uint32);
        # parsed here because zmq.utils.monitor drags in zmq.asyncio at start-up.
        event, value = struct.unpack("=HI", monitor.recv_multipart()[0][:6])
        yield event, value


class PendingPing:
    """A REQ socket with a PING queued while the gateway is down.

    libzmq keeps reconnecting (every 50-100 ms, backing off to 150-200 ms) and delivers the
    queued PING the moment the gateway binds, so a backoff pause spent waiting on this
    socket notices the gateway within a reconnect interval instead of at the next attempt.
    The monitor tells when the PING could reach the gateway (the latest connection or
    handshake: legacy peers report no handshake), so the reply is held to --reply-timeout
    like any other.
    """

    def __init__(self, gateway: ZmqGateway, address: str, port: int, payload: bytes,
                 connect_timeout_s: float) -> None:
        # A signal landing before these are assigned ends the process; ZmqGateway then
        # leaves the half-built sockets to the OS rather than wait for them.
        self._sock = gateway._req_socket(address, reconnect_ms=PENDING_RECONNECT_MS)
        self._sock.setsockopt(zmq.RECONNECT_IVL_MAX, PENDING_RECONNECT_MAX_MS)
        self._monitor = self._sock.get_monitor_socket(
            zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        # Without it a connect into a DROP rule waits for the kernel (~2 min).
        self._sock.setsockopt(zmq.CONNECT_TIMEOUT, max(1, int(connect_timeout_s * 1000)))
        self._sock.connect(endpoint(address, port))
        self._sock.send(payload)

    def wait(self, pause: Deadline) -> tuple[list[bytes], float | None] | None:
        """(reply frames, ms since the PING could reach the gateway, or None if the monitor
        never said) if a reply arrives before the pause ends, else None."""
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        reached: float | None = None
        while not pause.expired():
            raise_if_pending()  # pyzmq's finalizers may have swallowed a stop signal
            ready = dict(poller.poll(max(1, int(pause.remaining() * 1000))))
            if self._monitor in ready or self._sock in ready:
                for _event in _drain(self._monitor):
                    reached = time.monotonic()  # the latest (re)connection carried it
            if self._sock in ready:
                frames = self._sock.recv_multipart()
                rtt = None if reached is None else (time.monotonic() - reached) * 1000
                return frames, rtt
        return None

    def close(self) -> None:
        _close_monitored(self._sock, self._monitor)

    def __enter__(self) -> PendingPing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
