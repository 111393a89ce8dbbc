"""How a request reaches the bridge and how its answer comes back: one interface, four ways.

* ``req``: a REQ socket to the bridge's REP (or ROUTER) port; the reply is the answer.
* ``push-pull``: the request goes out on a PUSH socket to the bridge's PULL port, the answer
  comes back on a PULL socket from the bridge's PUSH port (darwinex/dwx-zeromq-connector).
* ``req-pull``: a REQ to the bridge's REP port gets an acknowledgement that is not the
  answer; the answer comes on a PULL socket from the bridge's PUSH port
  (khramkov/MQL5-JSON-API).
* ``handshake``: no request at all; ready when the ZeroMQ handshake with a peer of the
  expected socket type completes (an EA with no side-effect-free request).

A bridge's PUSH sends without blocking: an answer pushed while no PULL peer is connected
is dropped. So the two-socket transports connect the reply socket, and see its handshake
done, *before* the request is sent. And since PUSH round-robins over every connected PULL,
the reply port is never touched by a passive check (``passive``): a healthcheck that
connected to it while the strategy runs would take replies meant for the strategy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import zmq

from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed
from entrypoint.gateway.connection import close_monitored, drain
from entrypoint.gateway.endpoint import HANDSHAKE, PUSH_PULL, REQ, REQ_PULL, Endpoint
from entrypoint.gateway.pending import PendingPing, pending_socket
from entrypoint.gateway.zmq_client import (
    GREETING_CHECK_AFTER_S,
    Exchange,
    Monitored,
    Secrecy,
    ZmqGateway,
    exchange_of,
)
from entrypoint.logs import untrusted
from entrypoint.reasons import Reason
from entrypoint.signals import raise_if_pending

OnSent = Callable[[], None]
Caught = tuple[list[bytes], float | None]  # a reply caught in a pause, and its round trip
_KINDS = {"req": zmq.REQ, "push": zmq.PUSH}


def _nothing() -> None:
    return None


class Transport:
    """The interface: one exchange (an attempt), one exchange spent waiting through a
    backoff pause (``watch``), and a check that sends nothing (``passive``)."""

    name = ""
    sends_requests = True

    def __init__(self, gateway: ZmqGateway, endpoint: Endpoint) -> None:
        self.gateway = gateway
        self.endpoint = endpoint

    def exchange(self, address: str, payload: bytes, deadline: Deadline, *,
                 reply_timeout_s: float, on_sent: OnSent = _nothing,
                 secret: bool = False) -> Exchange:
        """One request and its answer. A ``secret`` payload is sent only to a peer that
        proved it is ZeroMQ with a socket type ours talks to (``ZmqGateway.prove``)."""
        raise NotImplementedError

    def watch(self, address: str, payload: bytes, pause: Deadline, *,
              on_sent: OnSent = _nothing, secret: bool = False) -> Caught | None:
        raise NotImplementedError

    def secrecy(self, secret: bool) -> Secrecy | None:
        return Secrecy(self.endpoint.legacy_secrets) if secret else None

    def passive(self, address: str, deadline: Deadline) -> float:
        """The handshake with the bridge's request socket, in ms; nothing is sent and the
        reply port is not touched."""
        return self.gateway.handshake(address, self.endpoint.port, deadline,
                                 kind=_KINDS[self.endpoint.handshake_socket])


class ReqTransport(Transport):
    name = REQ

    def exchange(self, address: str, payload: bytes, deadline: Deadline, *,
                 reply_timeout_s: float, on_sent: OnSent = _nothing,
                 secret: bool = False) -> Exchange:
        # Queued at once; logged as sent when a connection could carry it to the peer.
        return self.gateway.request(address, self.endpoint.port, payload, deadline,
                                    connect_timeout_s=self.endpoint.connect_timeout_s,
                                    reply_timeout_s=reply_timeout_s, on_connected=on_sent,
                                    secret=self.secrecy(secret))

    def watch(self, address: str, payload: bytes, pause: Deadline, *,
              on_sent: OnSent = _nothing, secret: bool = False) -> Caught | None:
        with PendingPing(self.gateway, address, self.endpoint.port, payload,
                         self.endpoint.connect_timeout_s,
                         secret=self.secrecy(secret)) as pending:
            return pending.wait(pause, self.endpoint.reply_timeout_s, on_delivered=on_sent)

    def passive(self, address: str, deadline: Deadline) -> float:
        return self.gateway.handshake(address, self.endpoint.port, deadline, kind=zmq.REQ)


class HandshakeTransport(Transport):
    name = HANDSHAKE
    sends_requests = False

    def exchange(self, address: str, payload: bytes, deadline: Deadline, *,
                 reply_timeout_s: float, on_sent: OnSent = _nothing,
                 secret: bool = False) -> Exchange:
        took = self.passive(address,
                            deadline.capped(self.endpoint.connect_timeout_s + reply_timeout_s))
        return Exchange([], round(took, 2), None)

    def watch(self, address: str, payload: bytes, pause: Deadline, *,
              on_sent: OnSent = _nothing, secret: bool = False) -> Caught | None:
        kind = _KINDS[self.endpoint.handshake_socket]
        sock, monitor = pending_socket(self.gateway, kind, address, self.endpoint.port,
                                       self.endpoint.connect_timeout_s)
        try:
            while not pause.expired():
                raise_if_pending()
                if monitor.poll(max(1, int(pause.remaining() * 1000))) and any(
                        event == zmq.EVENT_HANDSHAKE_SUCCEEDED
                        for event, _value in drain(monitor)):
                    return [], None
            return None
        finally:
            close_monitored(sock, monitor)


class TwoSocketTransport(Transport):
    """A request socket (PUSH or REQ) to ``port``, and a PULL from ``reply_port`` that
    carries the answer; empty messages (DWX follows each reply with one) are skipped."""

    request_kind = zmq.PUSH

    def exchange(self, address: str, payload: bytes, deadline: Deadline, *,
                 reply_timeout_s: float, on_sent: OnSent = _nothing,
                 secret: bool = False) -> Exchange:
        assert self.endpoint.reply_port is not None
        connecting = deadline.capped(self.endpoint.connect_timeout_s)
        replies = self.gateway.open(zmq.PULL, address, self.endpoint.reply_port, connecting,
                               role=f"reply port {self.endpoint.reply_port}: ")
        try:
            requests = self.gateway.open(self.request_kind, address, self.endpoint.port, connecting)
            try:
                # The answer socket first: an answer pushed before it is connected is lost.
                for opened in (replies, requests):
                    self.gateway.await_(opened, deadline, until_handshake=True,
                                        connect_timeout_s=self.endpoint.connect_timeout_s,
                                        reply_timeout_s=reply_timeout_s)
                secrecy = self.secrecy(secret)
                refusal = None if secrecy is None else requests.conn.refuse_secret(
                    requests.kind, secrecy.legacy_allowed)
                if refusal is not None:
                    raise refusal
                _discard_queued(replies.sock)
                sent_at = _send(requests.sock, payload)
                on_sent()
                ack = self._acknowledged(requests, deadline, reply_timeout_s)
                frames = _answer(self.gateway, replies, deadline.capped(reply_timeout_s), ack)
                return exchange_of(replies, frames, sent_at)
            finally:
                requests.close()
        finally:
            replies.close()

    def _acknowledged(self, requests: Monitored, deadline: Deadline,
                      reply_timeout_s: float) -> list[bytes] | None:
        return None

    def watch(self, address: str, payload: bytes, pause: Deadline, *,
              on_sent: OnSent = _nothing, secret: bool = False) -> Caught | None:
        assert self.endpoint.reply_port is not None
        pair = [pending_socket(self.gateway, kind, address, port, self.endpoint.connect_timeout_s)
                for kind, port in ((zmq.PULL, self.endpoint.reply_port),
                                   (self.request_kind, self.endpoint.port))]
        try:
            (replies, _), (requests, _) = pair
            # A secret waits for the request socket's ZMTP 3 handshake (a legacy peer is
            # left to the next attempt, which can read its greeting).
            if not _both_connected([monitor for _sock, monitor in pair], pause,
                                   handshake_only=secret):
                return None  # nothing was sent
            _discard_queued(replies)
            sent_at = _send(requests, payload)
            on_sent()
            # Sent: its answer is waited for even past the pause, never abandoned unjudged.
            waiting = Deadline(self.endpoint.reply_timeout_s)
            if self.request_kind == zmq.REQ and not requests.poll(
                    max(1, int(waiting.remaining() * 1000))):
                return None
            if self.request_kind == zmq.REQ:
                requests.recv_multipart()  # the acknowledgement
            while not waiting.expired():
                raise_if_pending()
                if not replies.poll(max(1, int(waiting.remaining() * 1000))):
                    return None
                frames = replies.recv_multipart()
                if any(frames):
                    return frames, (time.monotonic() - sent_at) * 1000
            return None
        except AttemptFailed:
            return None  # the next attempt will meet and report the same thing
        finally:
            for sock, monitor in pair:
                close_monitored(sock, monitor)


class PushPullTransport(TwoSocketTransport):
    name = PUSH_PULL
    request_kind = zmq.PUSH


class ReqPullTransport(TwoSocketTransport):
    name = REQ_PULL
    request_kind = zmq.REQ

    def _acknowledged(self, requests: Monitored, deadline: Deadline,
                      reply_timeout_s: float) -> list[bytes] | None:
        """The REP's acknowledgement (khramkov/MQL5-JSON-API sends "OK" before it even
        reads the request); it is not the answer."""
        self.gateway.await_(requests, deadline, reply_timeout_s=reply_timeout_s)
        return requests.sock.recv_multipart()

    def passive(self, address: str, deadline: Deadline) -> float:
        return self.gateway.handshake(address, self.endpoint.port, deadline, kind=zmq.REQ)


def _send(sock: zmq.Socket[Any], payload: bytes) -> float:
    """Send without blocking; the moment it left, for the round trip."""
    try:
        sock.send(payload, zmq.DONTWAIT)
    except zmq.Again:
        raise AttemptFailed("zmq", Reason.NO_REPLY,
                            "the request socket could not send (no peer took it)") from None
    return time.monotonic()


def _discard_queued(replies: zmq.Socket[Any]) -> int:
    """Messages on the reply socket before our request left answer someone else's: drop
    them, so that they are never judged as the answer to ours."""
    dropped = 0
    while replies.poll(0):
        replies.recv_multipart()
        dropped += 1
    return dropped


def _answer(gateway: ZmqGateway, replies: Monitored, waiting: Deadline,
            ack: list[bytes] | None) -> list[bytes]:
    """The first non-empty message on the reply socket before ``waiting`` ends."""
    while True:
        try:
            gateway.await_(replies, waiting)
        except AttemptFailed as failure:
            if ack is not None and failure.reason is Reason.NO_REPLY:
                failure.error += (f" (the request port acknowledged with "
                                  f"{untrusted(b''.join(ack), 60)}; if that was the answer, "
                                  "this bridge speaks --transport req)")
            raise
        frames = replies.sock.recv_multipart()
        if any(frames):
            return frames
        if ack is None:
            # darwinex/dwx-zeromq-connector follows every answer with an empty message, and
            # answers a command it does not know with the empty message alone.
            raise AttemptFailed("reply", Reason.NOT_READY,
                                "the bridge answered with an empty message only: it does not "
                                "know this request (an EA without GET_ACCOUNT_INFO knows "
                                "TRADE;GET_OPEN_TRADES)")


def _both_connected(monitors: list[zmq.Socket[Any]], pause: Deadline,
                    handshake_only: bool = False) -> bool:
    """Whether both sockets' connections are shown to work before the pause ends: a
    handshake, or (a legacy peer, which reports none) a connection that has stood for
    GREETING_CHECK_AFTER_S."""
    handshake = [False, False]
    connected_at: list[float | None] = [None, None]
    poller = zmq.Poller()
    for monitor in monitors:
        poller.register(monitor, zmq.POLLIN)
    while not pause.expired():
        raise_if_pending()
        now = time.monotonic()
        if all(done or (not handshake_only and at is not None
                        and now - at >= GREETING_CHECK_AFTER_S)
               for done, at in zip(handshake, connected_at, strict=True)):
            return True
        ready = dict(poller.poll(max(1, int(min(pause.remaining(), 0.05) * 1000))))
        for index, monitor in enumerate(monitors):
            if monitor in ready:
                for event, _value in drain(monitor):
                    if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                        handshake[index] = True
                    elif event == zmq.EVENT_CONNECTED:
                        connected_at[index] = time.monotonic()
    return False


TRANSPORTS: dict[str, type[Transport]] = {t.name: t for t in (
    ReqTransport, PushPullTransport, ReqPullTransport, HandshakeTransport)}


def transport_for(gateway: ZmqGateway, endpoint: Endpoint) -> Transport:
    """The transport ``endpoint`` names, speaking through ``gateway``'s context."""
    return TRANSPORTS[endpoint.transport](gateway, endpoint)
