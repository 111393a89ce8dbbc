"""Answers on a two-socket bridge's reply port, each matched to the request it answers.

A two-socket bridge (darwinex/dwx-zeromq-connector, khramkov/MQL5-JSON-API) pushes every
answer to whichever PULL is connected to its PUSH port, whenever it gets round to it: the
answer to a request that timed out arrives later, on whatever socket is connected then,
and a fresh socket or a drained one is no protection. Neither bridge carries a request id,
but both handle their requests one at a time, in order. So answers are matched by count,
on one PULL connection kept for as long as the check lives (``ReplyChannel``): the n-th
answer on it answers the n-th request sent while it listened (``AnswerLedger``). An answer
is judged only when it answers the request being judged, within --reply-timeout of that
request leaving; any other is logged as too late and never decides anything.

DWX follows every answer with an empty message, and answers a command it does not know
with the empty message alone: an empty message right after an answer is its trailer; any
other empty message is an (empty) answer.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

import zmq

from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed
from entrypoint.gateway.connection import drain
from entrypoint.gateway.endpoint import Endpoint
from entrypoint.gateway.zmq_client import GREETING_CHECK_AFTER_S, Monitored, ZmqGateway
from entrypoint.process.signals import raise_if_pending
from entrypoint.reasons import Reason

# An unanswered request is given up as lost (the bridge restarted, say) after this many
# reply timeouts, and at least LOST_AFTER_MIN_S: from then on the next answer is matched to
# the request after it. Until then an answer to it is never taken for a later request's.
LOST_AFTER_REPLY_TIMEOUTS = 3
LOST_AFTER_MIN_S = 2.0
# How often a pause looks at the reply socket's monitor while it waits for both sockets.
PAUSE_POLL_S = 0.05

OnLate = Callable[[list[bytes], "float | None", str], None]


class Sent(NamedTuple):
    """A request that left on the request socket while the reply channel listened."""

    seq: int
    at: float  # time.monotonic() when it was sent
    via: str  # attempt, pause, status: for the log line of a late answer


class Match(NamedTuple):
    """One message from the reply port and the request it answers (None: no request of
    ours was waiting: a strategy's, or one from before this channel listened)."""

    request: Sent | None
    frames: list[bytes]
    empty: bool  # an empty answer: DWX's "I do not know this command"


class AnswerLedger:
    """The requests still waiting for their answer, oldest first."""

    def __init__(self, reply_timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lost_after_s = max(LOST_AFTER_MIN_S, LOST_AFTER_REPLY_TIMEOUTS * reply_timeout_s)
        self._clock = clock
        self._waiting: deque[Sent] = deque()
        self._seq = 0
        self._after_answer = False  # the last message was an answer: an empty one trails it

    def sent(self, via: str) -> Sent:
        self._seq += 1
        request = Sent(self._seq, self._clock(), via)
        self._waiting.append(request)
        return request

    def take(self, frames: list[bytes]) -> Match | None:
        """The request this message answers; None for an answer's empty trailer."""
        if not any(frames):
            if self._after_answer:
                self._after_answer = False
                return None
            return Match(self._next(), frames, empty=True)
        self._after_answer = True
        return Match(self._next(), frames, empty=False)

    def forget(self) -> None:
        """Another bridge (the name now resolves elsewhere): nothing it sends answers ours."""
        self._waiting.clear()
        self._after_answer = False

    def _next(self) -> Sent | None:
        now = self._clock()
        while self._waiting and now - self._waiting[0].at > self.lost_after_s:
            self._waiting.popleft()  # lost: its answer will not come
        return self._waiting.popleft() if self._waiting else None


class ReplyChannel:
    """One PULL connected to the bridge's reply port, kept across attempts, pauses and
    probe's round trips; reopened (for a fresh diagnosis) only when its connection is
    down. Every answer read from it is matched by the ledger."""

    def __init__(self, gateway: ZmqGateway, endpoint: Endpoint, on_late: OnLate) -> None:
        assert endpoint.reply_port is not None
        self.gateway = gateway
        self.endpoint = endpoint
        self.port = endpoint.reply_port
        self.on_late = on_late
        self.ledger = AnswerLedger(endpoint.reply_timeout_s)
        self._opened: Monitored | None = None
        self._address: str | None = None
        self._up = False  # the connection is established (handshake, or a legacy peer)
        self._connected_at: float | None = None

    def socket_for(self, address: str) -> Monitored:
        """The channel's socket to ``address``, opened if there is none (without waiting)."""
        if address != self._address:
            self.close()
            self.ledger.forget()
            self._address = address
        if self._opened is None:
            self._opened = self.gateway.open(
                zmq.PULL,
                address,
                self.port,
                Deadline(self.endpoint.connect_timeout_s),
                role=f"reply port {self.port}: ",
            )
            # Without it a connect into a DROP rule waits for the kernel (~2 min).
            self._opened.sock.setsockopt(
                zmq.CONNECT_TIMEOUT, max(1, int(self.endpoint.connect_timeout_s * 1000))
            )
            self._up = False
            self._connected_at = None
        return self._opened

    def connected(self, address: str, deadline: Deadline, reply_timeout_s: float) -> Monitored:
        """The channel, its connection shown to work before the request is sent (a bridge's
        PUSH drops an answer while no PULL is connected); AttemptFailed says why not."""
        opened = self.socket_for(address)
        if self.refresh():
            return opened
        if opened.conn.failure is not None or opened.conn.disconnected:
            # A fresh socket for a fresh diagnosis (refused, not ZeroMQ...). Only then: a
            # connection still being made is waited for, never replaced, since while the
            # bridge holds two of our PULLs it deals one answer's messages over both (DWX's
            # answer to one, its empty trailer to the other, read as an empty answer).
            self.close()
            opened = self.socket_for(address)
        try:
            self.gateway.await_(
                opened,
                deadline,
                until_handshake=True,
                connect_timeout_s=self.endpoint.connect_timeout_s,
                reply_timeout_s=reply_timeout_s,
            )
        except AttemptFailed:
            self.close()
            raise
        self._up = True
        return opened

    def refresh(self) -> bool:
        """Apply what the monitor said since we last looked; whether the connection is up."""
        opened = self._opened
        if opened is None:
            return False
        for event, value in drain(opened.monitor):
            opened.conn.apply(event, value)
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._up = True
            elif event == zmq.EVENT_CONNECTED:
                self._connected_at = time.monotonic()
            elif event == zmq.EVENT_DISCONNECTED:
                self._up = False
                self._connected_at = None
        if (
            not self._up
            and self._connected_at is not None
            and opened.conn.seen is None
            and time.monotonic() - self._connected_at >= GREETING_CHECK_AFTER_S
        ):
            self._up = opened.conn.inspect().kind.is_zmq  # a legacy peer reports no handshake
        return self._up

    def answer(self, request: Sent, waiting: Deadline, reply_timeout_s: float) -> list[bytes]:
        """The answer to ``request`` (the one being judged) before ``waiting`` ends;
        answers to earlier requests met on the way are logged as too late."""
        opened = self._opened
        assert opened is not None
        while True:
            raise_if_pending()
            left_ms = int(waiting.remaining() * 1000)
            if left_ms <= 0 or not opened.sock.poll(max(1, min(left_ms, 100))):
                if waiting.expired():
                    raise AttemptFailed(
                        "zmq",
                        Reason.NO_REPLY,
                        f"no answer on reply port {self.port} within {reply_timeout_s:g} s",
                    )
                if not self.refresh() and opened.conn.disconnected:
                    self.close()
                    raise AttemptFailed(
                        "zmq",
                        Reason.RESET,
                        f"reply port {self.port}: the bridge closed the "
                        "connection before answering",
                    )
                continue
            match = self.ledger.take(opened.sock.recv_multipart())
            if match is None:
                continue
            if match.request is not request:
                self._late(match)
                continue
            if match.empty:
                # darwinex/dwx-zeromq-connector answers a command it does not know with
                # the empty message alone.
                raise AttemptFailed(
                    "reply",
                    Reason.NOT_READY,
                    "the bridge answered with an empty message only: it "
                    "does not know this request (an EA without "
                    "GET_ACCOUNT_INFO knows TRADE;GET_OPEN_TRADES)",
                )
            return match.frames

    def read_late(self) -> None:
        """Log answers that came in since the last read (to requests no longer judged)."""
        opened = self._opened
        if opened is None:
            return
        while opened.sock.poll(0):
            match = self.ledger.take(opened.sock.recv_multipart())
            if match is not None:
                self._late(match)

    def _late(self, match: Match) -> None:
        if match.empty and match.request is None:
            return  # nothing of ours, and nothing to show
        request = match.request
        rtt_ms = None if request is None else round((time.monotonic() - request.at) * 1000, 2)
        self.on_late(match.frames, rtt_ms, request.via if request else "none")

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened = None
        self._up = False
        self._connected_at = None
