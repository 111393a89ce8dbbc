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
from entrypoint.gateway.answers import PAUSE_POLL_S, ReplyChannel, Sent
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
from entrypoint.log.logs import untrusted
from entrypoint.process.signals import raise_if_pending
from entrypoint.reasons import Reason

OnSent = Callable[[], None]
# An answer that came too late to be judged: its frames, its round trip, its request's via.
OnLate = Callable[[list[bytes], "float | None", str], None]
Caught = tuple[list[bytes], float | None]  # a reply caught in a pause, and its round trip
_KINDS = {"req": zmq.REQ, "push": zmq.PUSH}


def _nothing() -> None:
    return None


def _ignore_late(_frames: list[bytes], _rtt_ms: float | None, _via: str) -> None:
    return None


class Transport:
    """The interface: one exchange (an attempt), one exchange spent waiting through a
    backoff pause (``watch``), and a check that sends nothing (``passive``)."""

    name = ""

    def __init__(self, gateway: ZmqGateway, endpoint: Endpoint) -> None:
        self.gateway = gateway
        self.endpoint = endpoint
        self.on_late: OnLate = _ignore_late

    def exchange(
        self,
        address: str,
        payload: bytes,
        deadline: Deadline,
        *,
        reply_timeout_s: float,
        on_sent: OnSent = _nothing,
        secret: bool = False,
        via: str = "attempt",
    ) -> Exchange:
        """One request and its answer. A ``secret`` payload is sent only to a peer that
        proved it is ZeroMQ with a socket type ours talks to (``ZmqGateway.prove``)."""
        raise NotImplementedError

    def watch(
        self,
        address: str,
        payload: bytes,
        pause: Deadline,
        *,
        on_sent: OnSent = _nothing,
        secret: bool = False,
        until: Deadline | None = None,
    ) -> Caught | None:
        """A request pending through a backoff pause; its answer if one came in time. A
        request that reached the bridge is waited for past the pause, never past
        ``until`` (the wait's deadline)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close what the transport keeps between exchanges (a reply channel)."""

    def secrecy(self, secret: bool) -> Secrecy | None:
        return Secrecy(self.endpoint.legacy_secrets) if secret else None

    def passive(self, address: str, deadline: Deadline) -> float:
        """The handshake with the bridge's request socket, in ms; nothing is sent and the
        reply port is not touched."""
        return self.gateway.handshake(
            address, self.endpoint.port, deadline, kind=_KINDS[self.endpoint.handshake_socket]
        )


class ReqTransport(Transport):
    name = REQ

    def exchange(
        self,
        address: str,
        payload: bytes,
        deadline: Deadline,
        *,
        reply_timeout_s: float,
        on_sent: OnSent = _nothing,
        secret: bool = False,
        via: str = "attempt",
    ) -> Exchange:
        # Queued at once; logged as sent when a connection could carry it to the peer.
        return self.gateway.request(
            address,
            self.endpoint.port,
            payload,
            deadline,
            connect_timeout_s=self.endpoint.connect_timeout_s,
            reply_timeout_s=reply_timeout_s,
            on_connected=on_sent,
            secret=self.secrecy(secret),
        )

    def watch(
        self,
        address: str,
        payload: bytes,
        pause: Deadline,
        *,
        on_sent: OnSent = _nothing,
        secret: bool = False,
        until: Deadline | None = None,
    ) -> Caught | None:
        with PendingPing(
            self.gateway,
            address,
            self.endpoint.port,
            payload,
            self.endpoint.connect_timeout_s,
            secret=self.secrecy(secret),
        ) as pending:
            return pending.wait(
                pause, self.endpoint.reply_timeout_s, on_delivered=on_sent, until=until
            )

    def passive(self, address: str, deadline: Deadline) -> float:
        return self.gateway.handshake(address, self.endpoint.port, deadline, kind=zmq.REQ)


class HandshakeTransport(Transport):
    name = HANDSHAKE

    def exchange(
        self,
        address: str,
        payload: bytes,
        deadline: Deadline,
        *,
        reply_timeout_s: float,
        on_sent: OnSent = _nothing,
        secret: bool = False,
        via: str = "attempt",
    ) -> Exchange:
        took = self.passive(
            address,
            deadline.capped(self.endpoint.timeouts._replace(reply_s=reply_timeout_s).exchange_s),
        )
        return Exchange([], round(took, 2), None)

    def watch(
        self,
        address: str,
        payload: bytes,
        pause: Deadline,
        *,
        on_sent: OnSent = _nothing,
        secret: bool = False,
        until: Deadline | None = None,
    ) -> Caught | None:
        kind = _KINDS[self.endpoint.handshake_socket]
        sock, monitor = pending_socket(
            self.gateway, kind, address, self.endpoint.port, self.endpoint.connect_timeout_s
        )
        try:
            while not pause.expired():
                raise_if_pending()
                if monitor.poll(max(1, int(pause.remaining() * 1000))) and any(
                    event == zmq.EVENT_HANDSHAKE_SUCCEEDED for event, _value in drain(monitor)
                ):
                    return [], None
            return None
        finally:
            close_monitored(sock, monitor)


class TwoSocketTransport(Transport):
    """A request socket (PUSH or REQ) to ``port``, and the answer on the bridge's PUSH
    ``reply_port``, read through one ``ReplyChannel`` that lives as long as this transport,
    so that every answer is matched to the request it answers (``answers.py``)."""

    request_kind = zmq.PUSH

    def __init__(self, gateway: ZmqGateway, endpoint: Endpoint) -> None:
        super().__init__(gateway, endpoint)
        self.channel = ReplyChannel(gateway, endpoint, self._late)

    def _late(self, frames: list[bytes], rtt_ms: float | None, via: str) -> None:
        self.on_late(frames, rtt_ms, via)

    def exchange(
        self,
        address: str,
        payload: bytes,
        deadline: Deadline,
        *,
        reply_timeout_s: float,
        on_sent: OnSent = _nothing,
        secret: bool = False,
        via: str = "attempt",
    ) -> Exchange:
        # The answer socket first: an answer pushed before it is connected is lost.
        replies = self.channel.connected(address, deadline, reply_timeout_s)
        connecting = deadline.capped(self.endpoint.connect_timeout_s)
        requests = self.gateway.open(self.request_kind, address, self.endpoint.port, connecting)
        try:
            self.gateway.await_(
                requests,
                deadline,
                until_handshake=True,
                connect_timeout_s=self.endpoint.connect_timeout_s,
                reply_timeout_s=reply_timeout_s,
            )
            secrecy = self.secrecy(secret)
            refusal = (
                None
                if secrecy is None
                else requests.conn.refuse_secret(requests.kind, secrecy.legacy_allowed)
            )
            if refusal is not None:
                raise refusal
            self.channel.read_late()  # what came before our request answers someone else's
            sent = self._send(requests.sock, payload, via)
            on_sent()
            ack = self._acknowledged(requests, deadline, reply_timeout_s)
            # --reply-timeout counts from the request leaving, the acknowledgement's wait
            # included: an answer is never judged when its request is older than that.
            left_s = max(0.0, reply_timeout_s - (time.monotonic() - sent.at))
            try:
                frames = self.channel.answer(sent, deadline.capped(left_s), reply_timeout_s)
            except AttemptFailed as failure:
                if ack is not None and failure.reason is Reason.NO_REPLY:
                    failure.error += (
                        f" (the request port acknowledged with "
                        f"{untrusted(b''.join(ack), 60)}; if that was the "
                        "answer, this bridge speaks --transport req)"
                    )
                raise
            return exchange_of(replies, frames, sent.at)
        finally:
            requests.close()

    def _send(self, sock: zmq.Socket[Any], payload: bytes, via: str) -> Sent:
        """Send without blocking, and enter the request in the ledger."""
        try:
            sock.send(payload, zmq.DONTWAIT)
        except zmq.Again:
            raise AttemptFailed(
                "zmq", Reason.NO_REPLY, "the request socket could not send (no peer took it)"
            ) from None
        return self.channel.ledger.sent(via)

    def _acknowledged(
        self, requests: Monitored, deadline: Deadline, reply_timeout_s: float
    ) -> list[bytes] | None:
        return None

    def watch(
        self,
        address: str,
        payload: bytes,
        pause: Deadline,
        *,
        on_sent: OnSent = _nothing,
        secret: bool = False,
        until: Deadline | None = None,
    ) -> Caught | None:
        assert self.endpoint.reply_port is not None
        self.channel.socket_for(address)  # open (and reconnecting) through the pause
        requests, monitor = pending_socket(
            self.gateway,
            self.request_kind,
            address,
            self.endpoint.port,
            self.endpoint.connect_timeout_s,
        )
        try:
            # A secret waits for the request socket's ZMTP 3 handshake (a legacy peer is
            # left to the next attempt, which can read its greeting).
            if not self._both_up(monitor, pause, handshake_only=secret):
                return None  # nothing was sent
            self.channel.read_late()
            sent = self._send(requests, payload, "pause")
            on_sent()
            # Sent: its answer is waited for even past the pause (never past ``until``,
            # the wait's own deadline), and never abandoned unjudged.
            waiting = Deadline(self.endpoint.reply_timeout_s)
            if until is not None:
                waiting = until.capped(self.endpoint.reply_timeout_s)
            if self.request_kind == zmq.REQ:
                if not requests.poll(max(1, int(waiting.remaining() * 1000))):
                    return None
                requests.recv_multipart()  # the acknowledgement
            frames = self.channel.answer(sent, waiting, self.endpoint.reply_timeout_s)
            return frames, (time.monotonic() - sent.at) * 1000
        except AttemptFailed:
            return None  # the next attempt will meet and report the same thing
        finally:
            close_monitored(requests, monitor)

    def _both_up(
        self, monitor: zmq.Socket[Any], pause: Deadline, handshake_only: bool = False
    ) -> bool:
        """Whether the reply channel and the request socket are both shown to work before
        the pause ends: a handshake, or (a legacy peer, which reports none) a connection
        that has stood for GREETING_CHECK_AFTER_S."""
        handshake = False
        connected_at: float | None = None
        while not pause.expired():
            raise_if_pending()
            request_up = handshake or (
                not handshake_only
                and connected_at is not None
                and time.monotonic() - connected_at >= GREETING_CHECK_AFTER_S
            )
            if self.channel.refresh() and request_up:
                return True
            if monitor.poll(max(1, int(min(pause.remaining(), PAUSE_POLL_S) * 1000))):
                for event, _value in drain(monitor):
                    if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                        handshake = True
                    elif event == zmq.EVENT_CONNECTED:
                        connected_at = time.monotonic()
        return False

    def close(self) -> None:
        self.channel.close()


class PushPullTransport(TwoSocketTransport):
    name = PUSH_PULL
    request_kind = zmq.PUSH


class ReqPullTransport(TwoSocketTransport):
    name = REQ_PULL
    request_kind = zmq.REQ

    def _acknowledged(
        self, requests: Monitored, deadline: Deadline, reply_timeout_s: float
    ) -> list[bytes] | None:
        """The REP's acknowledgement (khramkov/MQL5-JSON-API sends "OK" before it even
        reads the request); it is not the answer."""
        self.gateway.await_(requests, deadline, reply_timeout_s=reply_timeout_s)
        return requests.sock.recv_multipart()

    def passive(self, address: str, deadline: Deadline) -> float:
        return self.gateway.handshake(address, self.endpoint.port, deadline, kind=zmq.REQ)


def transport_for(gateway: ZmqGateway, endpoint: Endpoint) -> Transport:
    """The transport ``endpoint`` names (its row's class), speaking through ``gateway``'s
    context."""
    _module, _, name = endpoint.kind.build.partition(":")
    transport: type[Transport] = globals()[name]
    return transport(gateway, endpoint)
