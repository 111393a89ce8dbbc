"""Requests spent waiting through a backoff pause: sockets that keep reconnecting fast.

A gateway that binds in the middle of a long pause is noticed within a reconnect interval
rather than at the next attempt: the pause is spent on a socket that libzmq keeps
reconnecting (every 50-100 ms, backing off to 150-200 ms), with the request queued on it or
sent the moment the peer is proven.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import zmq

from entrypoint.addresses import endpoint
from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed
from entrypoint.gateway.connection import close_monitored, drain, queue_without_blocking
from entrypoint.gateway.zmq_client import Monitored, ZmqGateway
from entrypoint.process.signals import raise_if_pending

# How often libzmq retries a connect while a request waits in a pending socket during a
# backoff pause: it bounds how late we notice a gateway that binds during the pause, and
# sets how many connection attempts a down gateway receives. libzmq waits ivl + rand(ivl)
# and doubles ivl up to the maximum: 50-100 ms, then 100-150 ms, then 150-200 ms.
PENDING_RECONNECT_MS = 50
PENDING_RECONNECT_MAX_MS = 150


def pending_socket(
    gateway: ZmqGateway, kind: int, address: str, port: int, connect_timeout_s: float
) -> tuple[zmq.Socket[Any], zmq.Socket[Any]]:
    """A socket that keeps reconnecting fast during a pause, and its (connection and
    handshake) monitor. A signal landing mid-way leaves half-built sockets to ZmqGateway's
    exit, which hands them to the OS rather than wait for them."""
    sock = gateway.socket(kind, address, reconnect_ms=PENDING_RECONNECT_MS)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, PENDING_RECONNECT_MAX_MS)
    # Without it a connect into a DROP rule waits for the kernel (~2 min).
    sock.setsockopt(zmq.CONNECT_TIMEOUT, max(1, int(connect_timeout_s * 1000)))
    monitor = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    sock.connect(endpoint(address, port))
    return sock, monitor


def proven_socket(
    gateway: ZmqGateway,
    kind: int,
    address: str,
    port: int,
    connect_timeout_s: float,
    *,
    pause: Deadline,
) -> Monitored | None:
    """A socket whose one TCP connection completed a ZMTP 3 handshake during ``pause``, for
    a request that holds a secret; None if none did. It never reconnects (libzmq would
    carry a queued request to the next connection, whatever answers there), so each
    connection that fails gets a fresh socket, at the pace of a pending socket's
    reconnects, to notice a gateway that binds during the pause as fast."""
    while not pause.expired():
        raise_if_pending()
        opened = gateway.open(
            kind, address, port, pause.capped(connect_timeout_s), holds_secret=True
        )
        # Without it a connect into a DROP rule waits for the kernel (~2 min).
        opened.sock.setsockopt(zmq.CONNECT_TIMEOUT, max(1, int(connect_timeout_s * 1000)))
        if _handshake_within(opened, pause):
            return opened
        opened.close()
        time.sleep(min(PENDING_RECONNECT_MS / 1000, max(0.0, pause.remaining())))
    return None


def _handshake_within(opened: Monitored, pause: Deadline) -> bool:
    """Whether the socket's connection completed its ZMTP 3 handshake before ``pause``
    ended; False as soon as it failed or dropped (it will not be retried)."""
    conn = opened.conn
    while not pause.expired():
        raise_if_pending()
        if not opened.monitor.poll(max(1, int(min(pause.remaining(), 0.05) * 1000))):
            continue
        for event, _value in drain(opened.monitor):
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                conn.handshake = True
                conn.connected_at = conn.connected_at or time.monotonic()
                conn.reached_at = time.monotonic()
            elif event == zmq.EVENT_CONNECTED:
                conn.connected_at = time.monotonic()
            elif event != zmq.EVENT_CONNECT_DELAYED:
                conn.disconnected = event == zmq.EVENT_DISCONNECTED or conn.disconnected
                return False  # closed, dropped, refused: this socket is done
        if conn.handshake:
            return True
    return False


class PendingPing:
    """A REQ socket with a PING queued while the gateway is down.

    libzmq keeps reconnecting (every 50-100 ms, backing off to 150-200 ms) and delivers the
    queued PING the moment the gateway binds, so a backoff pause spent waiting on this
    socket notices the gateway within a reconnect interval instead of at the next attempt.
    The monitor tells when the PING could reach the gateway (the latest connection or
    handshake: legacy peers report no handshake). Once it could, its reply is waited for
    up to ``reply_timeout_s`` even past the pause: a request that reached the bridge is
    never abandoned unjudged. A request with a secret never waits here: libzmq would carry
    it across reconnects to whatever answers next (``ProvenPing`` instead).
    """

    def __init__(
        self,
        gateway: ZmqGateway,
        address: str,
        port: int,
        payload: bytes,
        connect_timeout_s: float,
    ) -> None:
        self._sock, self._monitor = pending_socket(
            gateway, zmq.REQ, address, port, connect_timeout_s
        )
        # Held until a handshake: a request that could not be queued (the peer refused
        # the handshake before we sent).
        self._payload: bytes | None = payload
        if queue_without_blocking(self._sock, payload):
            self._payload = None

    def wait(
        self,
        pause: Deadline,
        reply_timeout_s: float | None = None,
        on_delivered: Callable[[], None] | None = None,
        until: Deadline | None = None,
    ) -> tuple[list[bytes], float | None] | None:
        """(reply frames, ms since the PING could reach the gateway, or None if the monitor
        never said) if a reply arrives in time, else None. ``on_delivered`` is called once,
        when the PING could first reach the gateway. A gateway that completed the
        handshake (it took the PING) has ``reply_timeout_s`` to answer, even past the
        pause, but never past ``until`` (the wait's deadline, which holds whatever is in
        flight); the extension is granted once, so a peer that keeps reconnecting cannot
        hold the pause open."""
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        reached: float | None = None
        end = time.monotonic() + pause.remaining()
        latest = math.inf if until is None else time.monotonic() + until.remaining()
        extended = False
        while (left := end - time.monotonic()) > 0:
            raise_if_pending()  # pyzmq's finalizers may have swallowed a stop signal
            ready = dict(poller.poll(max(1, int(left * 1000))))
            if self._monitor in ready or self._sock in ready:
                for event, _value in drain(self._monitor):
                    if self._payload is not None:  # held back until proven
                        if event != zmq.EVENT_HANDSHAKE_SUCCEEDED or not queue_without_blocking(
                            self._sock, self._payload
                        ):
                            continue
                        self._payload = None
                    if reached is None and on_delivered is not None:
                        on_delivered()
                    reached = time.monotonic()  # the latest (re)connection carried it
                    if (
                        event == zmq.EVENT_HANDSHAKE_SUCCEEDED
                        and not extended
                        and reply_timeout_s is not None
                    ):
                        extended = True
                        end = max(end, min(reached + reply_timeout_s, latest))
            if self._sock in ready:
                frames = self._sock.recv_multipart()
                rtt = None if reached is None else (time.monotonic() - reached) * 1000
                return frames, rtt
        # The pause ended: a connection made in its last moment may still have carried the
        # request, and is then told too (no request leaves unlogged).
        if (
            reached is None
            and on_delivered is not None
            and self._payload is None
            and any(True for _event in drain(self._monitor))
        ):
            on_delivered()
        return None

    def close(self) -> None:
        close_monitored(self._sock, self._monitor)

    def __enter__(self) -> PendingPing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ProvenPing:
    """A request with a secret, spent waiting through a backoff pause: sent only on a
    connection that completed a ZMTP 3 handshake (``proven_socket``), right after it did,
    and never on any other. Its reply is waited for like ``PendingPing``'s: up to
    ``reply_timeout_s`` from the send even past the pause, never past ``until``."""

    def __init__(
        self, gateway: ZmqGateway, address: str, port: int, payload: bytes, connect_timeout_s: float
    ) -> None:
        self._gateway = gateway
        self._where = (address, port)
        self._payload = payload
        self._connect_timeout_s = connect_timeout_s
        self._opened: Monitored | None = None

    def wait(
        self,
        pause: Deadline,
        reply_timeout_s: float | None = None,
        on_delivered: Callable[[], None] | None = None,
        until: Deadline | None = None,
    ) -> tuple[list[bytes], float | None] | None:
        address, port = self._where
        opened = proven_socket(
            self._gateway, zmq.REQ, address, port, self._connect_timeout_s, pause=pause
        )
        if opened is None:
            return None
        self._opened = opened
        try:
            self._gateway.send_proven(opened, self._payload, pause)
        except AttemptFailed:
            return None  # the connection dropped: nothing left; the next attempt tells why
        if on_delivered is not None:
            on_delivered()
        sent_at = time.monotonic()
        end_s = pause.remaining()
        if reply_timeout_s is not None:
            end_s = max(end_s, reply_timeout_s)
        if until is not None:
            end_s = min(end_s, until.remaining())
        try:
            self._gateway.await_(opened, Deadline(max(0.0, end_s)))
        except AttemptFailed:
            return None
        raise_if_pending()
        frames = opened.sock.recv_multipart()
        return frames, (time.monotonic() - sent_at) * 1000

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    def __enter__(self) -> ProvenPing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
