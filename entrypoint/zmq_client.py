"""Layer 2: ZeroMQ requests to the gateway, one fresh REQ socket per request.

A strict REQ socket is unusable after a timeout (the next send fails with EFSM) and a
gateway that died mid-request never answers that socket, so every request gets a new
socket that is closed with LINGER 0 whatever happens. The socket monitor tells a silent
peer from a refused handshake, a wrong socket type, and a dropped connection.

This is the only module that imports zmq.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import zmq

from entrypoint.reasons import AttemptFailed, Reason

if TYPE_CHECKING:
    from entrypoint.curve import CurveKeys

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

_MONITORED = (zmq.EVENT_CONNECTED | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_CLOSED
              | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
              | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
              | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


_LEFT_TO_EXIT: list[zmq.Context[Any]] = []


def endpoint(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"tcp://{host}:{port}"


class _Connection:
    """What the monitor has told us about one socket's connection so far."""

    def __init__(self, greeting: str, curve: bool) -> None:
        self.greeting = greeting  # what the TCP layer saw: "zmtp", "silent" or "not_read"
        self.curve = curve
        self.connected = False
        self.retried = False
        self.handshake = False
        self.disconnected = False
        self.failure: tuple[Reason, str] | None = None
        # A handshake that ended without detail from a peer that sent a ZMTP greeting is
        # ambiguous: a restarting gateway, or the peer noticing a socket-type mismatch
        # first. libzmq reconnects; the next connection (or the timeout) decides.
        self.dropped_in_handshake = False
        self._expect_disconnect = False

    def apply(self, event: int, value: int) -> None:
        if event == zmq.EVENT_CONNECTED:
            self.connected = True
        elif event in (zmq.EVENT_CONNECT_RETRIED, zmq.EVENT_CLOSED):
            self.retried = True
        elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.handshake = True
        elif event in _HANDSHAKE_FAILURES:
            self._handshake_failed(event, value)
        elif event == zmq.EVENT_DISCONNECTED:
            if self._expect_disconnect:  # the handshake failure's own disconnect
                self._expect_disconnect = False
            else:
                self.disconnected = True

    def _handshake_failed(self, event: int, value: int) -> None:
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self.failure = (Reason.AUTH, f"the gateway rejected this client's CURVE key "
                                         f"(ZAP status {value})")
        elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
                self.failure = (Reason.AUTH, "security mechanism mismatch: "
                                + ("this client uses CURVE and the gateway does not" if
                                   self.curve else "the gateway requires CURVE: set "
                                   "GATEWAY_CURVE_SERVER_KEY"))
            else:
                self.failure = (Reason.PROTOCOL,
                                f"ZeroMQ handshake failed: protocol error {value:#x}")
        else:  # EVENT_HANDSHAKE_FAILED_NO_DETAIL
            self._expect_disconnect = True
            if self.greeting != "zmtp":
                self.failure = (Reason.NOT_ZMQ,
                                "the peer answered the ZeroMQ greeting with something else "
                                "and closed the connection")
            elif self.curve:
                # A CURVE server that cannot decrypt our HELLO drops the connection without
                # a word: the key we hold for it is not its key.
                self.failure = (Reason.AUTH, "the gateway dropped the CURVE handshake: the "
                                             "server key is probably wrong")
            else:
                self.dropped_in_handshake = True


_HANDSHAKE_FAILURES = (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                       zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


class ZmqGateway:
    """Owns the ZeroMQ context; every socket it makes is closed before ``close`` returns."""

    def __init__(self, max_reply_bytes: int = MAX_REPLY_BYTES,
                 curve: CurveKeys | None = None) -> None:
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

    def handshake(self, address: str, port: int, timeout_s: float,
                  message_within_s: float | None = None) -> float:
        """Complete a ZeroMQ handshake with a PUB socket as a SUB; return its time in ms.

        With ``message_within_s``, also wait that long for the first published message.
        """
        sock = self._socket(zmq.SUB, address)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        monitor = sock.get_monitor_socket(_MONITORED)
        started = time.monotonic()
        try:
            sock.connect(endpoint(address, port))
            self._await(sock, monitor, timeout_s, "zmtp", until_handshake=True)
            took_ms = (time.monotonic() - started) * 1000
            if message_within_s is not None and not sock.poll(int(message_within_s * 1000)):
                raise AttemptFailed("zmq", Reason.NO_REPLY,
                                    f"handshake done, but no message within "
                                    f"{message_within_s:g} s")
            return took_ms
        finally:
            _close_monitored(sock, monitor)

    def request(self, address: str, port: int, payload: bytes, timeout_s: float,
                greeting: str = "zmtp") -> list[bytes]:
        """Send ``payload`` on a fresh REQ socket; return the reply frames or AttemptFailed.

        ``greeting`` is what the TCP layer saw the peer send unprompted ("zmtp" or
        "silent"); it decides whether a refused handshake means "not ZeroMQ" or "dropped".
        """
        sock = self._req_socket(address)
        monitor = sock.get_monitor_socket(_MONITORED)
        try:
            sock.connect(endpoint(address, port))
            sock.send(payload)
            frames = self._await(sock, monitor, timeout_s, greeting)
            assert frames is not None
            return frames
        finally:
            _close_monitored(sock, monitor)

    def _await(self, sock: zmq.Socket[Any], monitor: zmq.Socket[Any], timeout_s: float,
               greeting: str, until_handshake: bool = False) -> list[bytes] | None:
        """Wait for a reply (or, ``until_handshake``, just the handshake) while the monitor
        reports on the connection; AttemptFailed says what went wrong."""
        conn = _Connection(greeting, self.curve is not None)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _timed_out(conn, timeout_s)
            ready = dict(poller.poll(max(1, int(remaining * 1000))))
            if sock in ready:
                return sock.recv_multipart()
            if monitor in ready:
                for event, value in _drain(monitor):
                    conn.apply(event, value)
                if conn.failure is not None:
                    raise AttemptFailed("zmq", *conn.failure)
                if until_handshake and conn.handshake:
                    return None
                if conn.disconnected:
                    raise self._disconnected(conn, monitor)

    def _disconnected(self, conn: _Connection, monitor: zmq.Socket[Any]) -> AttemptFailed:
        if not conn.handshake:
            # libzmq emits no handshake-failure event when the peer's READY names a socket
            # type REQ cannot talk to (PUB, REQ, DEALER...); it just drops and never retries.
            return AttemptFailed("zmq", Reason.PROTOCOL,
                                 "the port is a ZeroMQ socket of a type we cannot talk to "
                                 "(requests need REP or ROUTER, the feed needs PUB)")
        if not conn.retried and monitor.poll(int(RETRY_EVENT_GRACE_S * 1000)):
            for event, value in _drain(monitor):
                conn.apply(event, value)
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


def _timed_out(conn: _Connection, timeout_s: float) -> AttemptFailed:
    if conn.handshake:
        return AttemptFailed("zmq", Reason.NO_REPLY, f"no reply within {timeout_s:g} s")
    if conn.dropped_in_handshake:
        return AttemptFailed("zmq", Reason.RESET,
                             "the connection dropped during the ZeroMQ handshake")
    if conn.connected:
        return AttemptFailed("zmq", Reason.NO_REPLY,
                             f"TCP connected, but the ZeroMQ handshake did not complete within "
                             f"{timeout_s:g} s (gateway frozen or overloaded, or a silent "
                             "non-ZeroMQ service)")
    if conn.retried:
        return AttemptFailed("zmq", Reason.REFUSED,
                             "the gateway went away between the TCP check and the PING")
    return AttemptFailed("zmq", Reason.TIMEOUT, f"could not connect within {timeout_s:g} s")


class PendingPing:
    """A REQ socket with a PING queued while the gateway is down.

    libzmq keeps reconnecting (every 50-100 ms, backing off to 150-200 ms) and delivers the
    queued PING the moment the gateway binds, so a backoff pause spent waiting on this
    socket notices the gateway within a reconnect interval instead of at the next attempt.
    The monitor tells when the PING went out (the handshake), so the reply is held to
    --reply-timeout like any other.
    """

    def __init__(self, gateway: ZmqGateway, address: str, port: int, payload: bytes,
                 connect_timeout_s: float) -> None:
        # A signal landing before these are assigned ends the process; ZmqGateway then
        # leaves the half-built sockets to the OS rather than wait for them.
        self._sock = gateway._req_socket(address, reconnect_ms=PENDING_RECONNECT_MS)
        self._sock.setsockopt(zmq.RECONNECT_IVL_MAX, PENDING_RECONNECT_MAX_MS)
        self._monitor = self._sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        # Without it a connect into a DROP rule waits for the kernel (~2 min).
        self._sock.setsockopt(zmq.CONNECT_TIMEOUT, max(1, int(connect_timeout_s * 1000)))
        self._sock.connect(endpoint(address, port))
        self._sock.send(payload)

    def wait(self, seconds: float) -> tuple[list[bytes], float] | None:
        """(reply frames, ms since the PING reached the gateway) if a reply arrives within
        ``seconds``, else None."""
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        deadline = time.monotonic() + seconds
        delivered = time.monotonic()
        while (left := deadline - time.monotonic()) > 0:
            ready = dict(poller.poll(max(1, int(left * 1000))))
            if self._monitor in ready:
                for _event in _drain(self._monitor):
                    delivered = time.monotonic()  # the latest (re)connection carried it
            if self._sock in ready:
                return self._sock.recv_multipart(), (time.monotonic() - delivered) * 1000
        return None

    def close(self) -> None:
        _close_monitored(self._sock, self._monitor)

    def __enter__(self) -> PendingPing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
