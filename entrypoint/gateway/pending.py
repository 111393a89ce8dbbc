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
from entrypoint.gateway.connection import close_monitored, drain, queue_without_blocking
from entrypoint.gateway.zmq_client import Secrecy, ZmqGateway
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


class PendingPing:
    """A REQ socket with a PING queued while the gateway is down.

    libzmq keeps reconnecting (every 50-100 ms, backing off to 150-200 ms) and delivers the
    queued PING the moment the gateway binds, so a backoff pause spent waiting on this
    socket notices the gateway within a reconnect interval instead of at the next attempt.
    The monitor tells when the PING could reach the gateway (the latest connection or
    handshake: legacy peers report no handshake). Once it could, its reply is waited for
    up to ``reply_timeout_s`` even past the pause: a request that reached the bridge is
    never abandoned unjudged. A request with a secret is not queued at all until a ZMTP 3
    handshake proved the peer (a legacy peer is left to the next attempt, which can tell).
    """

    def __init__(
        self,
        gateway: ZmqGateway,
        address: str,
        port: int,
        payload: bytes,
        connect_timeout_s: float,
        *,
        secret: Secrecy | None = None,
    ) -> None:
        self._sock, self._monitor = pending_socket(
            gateway, zmq.REQ, address, port, connect_timeout_s
        )
        # Held until a handshake proved the peer: a request with a secret, and one that
        # could not be queued (the peer refused the handshake before we sent).
        self._payload: bytes | None = payload
        if secret is None and queue_without_blocking(self._sock, payload):
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
