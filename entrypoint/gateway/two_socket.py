"""The two-socket transports: a request socket to the bridge's request port, and the answer
on its PUSH reply port, read through one ``ReplyChannel`` (``answers``) that lives as long as
the transport.

* ``push-pull``: the request on a PUSH to the bridge's PULL (darwinex/dwx-zeromq-connector).
* ``req-pull``: a REQ to the bridge's REP gets an acknowledgement that is not the answer
  (khramkov/MQL5-JSON-API).

A bridge's PUSH sends without blocking: an answer pushed while no PULL peer is connected is
dropped. So the reply channel is connected, and its handshake seen, *before* the request is
sent. Imported only when a two-socket transport is used (``transports.transport_for``).
"""

from __future__ import annotations

import time
from typing import Any

import zmq

from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed
from entrypoint.gateway.answers import PAUSE_POLL_S, ReplyChannel, Sent
from entrypoint.gateway.connection import close_monitored, drain
from entrypoint.gateway.endpoint import PUSH_PULL, REQ_PULL, Endpoint
from entrypoint.gateway.pending import pending_socket, proven_socket
from entrypoint.gateway.transports import Caught, OnSent, Transport, no_callback
from entrypoint.gateway.zmq_client import (
    GREETING_CHECK_AFTER_S,
    Exchange,
    Monitored,
    ZmqGateway,
    exchange_of,
)
from entrypoint.log.logs import untrusted
from entrypoint.process.signals import raise_if_pending
from entrypoint.reasons import Reason


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
        on_sent: OnSent = no_callback,
        secret: bool = False,
        via: str = "attempt",
    ) -> Exchange:
        # The answer socket first: an answer pushed before it is connected is lost.
        replies = self.channel.connected(address, deadline, reply_timeout_s)
        connecting = deadline.capped(self.endpoint.connect_timeout_s)
        requests = self.gateway.open(
            self.request_kind, address, self.endpoint.port, connecting, holds_secret=secret
        )
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
            if secret:  # on the connection that just proved itself, or not at all
                self.gateway.send_proven(requests, payload, deadline)
                sent = self.channel.ledger.sent(via)
            else:
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
        on_sent: OnSent = no_callback,
        secret: bool = False,
        until: Deadline | None = None,
    ) -> Caught | None:
        assert self.endpoint.reply_port is not None
        self.channel.socket_for(address)  # open (and reconnecting) through the pause
        proven: Monitored | None = None
        if secret:
            # A secret waits for a ZMTP 3 handshake on a socket that never reconnects (a
            # legacy peer is left to the next attempt, which can read its greeting).
            proven = proven_socket(
                self.gateway,
                self.request_kind,
                address,
                self.endpoint.port,
                self.endpoint.connect_timeout_s,
                pause=pause,
            )
            if proven is None:
                return None  # nothing was sent
            requests, monitor = proven.sock, proven.monitor
        else:
            requests, monitor = pending_socket(
                self.gateway,
                self.request_kind,
                address,
                self.endpoint.port,
                self.endpoint.connect_timeout_s,
            )
        try:
            if not self._both_up(monitor, pause, proven=proven):
                return None  # nothing was sent
            self.channel.read_late()
            if proven is not None:
                self.gateway.send_proven(proven, payload, pause)
                sent = self.channel.ledger.sent("pause")
            else:
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
        self, monitor: zmq.Socket[Any], pause: Deadline, proven: Monitored | None = None
    ) -> bool:
        """Whether the reply channel and the request socket are both shown to work before
        the pause ends: a handshake, or (a legacy peer, which reports none) a connection
        that has stood for GREETING_CHECK_AFTER_S. A ``proven`` request socket (it holds a
        secret) is up already, until its one connection drops: its events are kept for
        ``send_proven`` to read."""
        handshake = proven is not None
        connected_at: float | None = None
        while not pause.expired():
            raise_if_pending()
            if proven is not None and (proven.conn.disconnected or proven.conn.failure):
                return False
            request_up = handshake or (
                connected_at is not None
                and time.monotonic() - connected_at >= GREETING_CHECK_AFTER_S
            )
            if self.channel.refresh() and request_up:
                return True
            if monitor.poll(max(1, int(min(pause.remaining(), PAUSE_POLL_S) * 1000))):
                for event, value in drain(monitor):
                    if proven is not None:
                        proven.conn.apply(event, value)
                    elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
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
