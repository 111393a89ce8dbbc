"""One readiness check: resolve, then the dialect's request over the bridge's transport,
then judge the reply.

Shared by ``wait`` (which retries it) and the diagnostic commands (which run it once).
With a logger, every request sent is a ``gate.request`` debug line, and every reply is
judged in exactly one info-or-higher line: an attempt's in its ``gate.ready`` or
``gate.attempt_failed``, a STATUS reply in ``gate.status``, and a reply to a request sent
during a backoff pause in ``gate.ready`` or, when it is not ready, a ``gate.reply`` line.
No request leaves unseen and no reply is dropped unjudged.
"""

import time
from typing import Any, NamedTuple

from entrypoint.addresses import address_text
from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed
from entrypoint.gateway.dialect import NotReady
from entrypoint.gateway.endpoint import Endpoint
from entrypoint.gateway.requests import RequestTemplate
from entrypoint.gateway.tcp import resolve
from entrypoint.gateway.transports import transport_for
from entrypoint.gateway.zmq_client import Exchange, ZmqGateway
from entrypoint.log import events
from entrypoint.log.events import emit
from entrypoint.log.logs import untrusted

# STATUS is informational and optional: a gateway that ignores it must not hold the runner
# back for long. Its timeout is a margin over the PING's own round trip, within these bounds.
STATUS_TIMEOUT_MIN_S = 0.25
STATUS_TIMEOUT_MAX_S = 1.0
# After a DNS failure, how often a backoff pause looks the name up again.
RESOLVE_DURING_PAUSE_S = 1.0


class Trace(NamedTuple):
    """How far one attempt got, stage by stage: what ``probe`` shows and ``health`` and
    ``wait`` summarise. A failed attempt carries the stages it passed
    (``AttemptFailed.trace``)."""

    addresses: tuple[str, ...] = ()  # the name's addresses (dns), in the order tried
    dns_ms: float | None = None
    address: str | None = None  # the address that connected
    connect_ms: float | None = None  # the TCP connection (by libzmq)


class Ready(NamedTuple):
    address: str
    reply: Any  # the decoded reply that satisfied the judgement (None: a handshake)
    rtt_ms: float | None
    via: str = "attempt"
    trace: Trace = Trace()  # its stages (the connection's time is trace.connect_ms)


class GatewayCheck:
    """Runs single attempts against one bridge and remembers the last resolved address.

    This is the one attempt of the gate: ``wait`` retries it, ``probe``, ``health``,
    ``mesh`` and ``--also`` run it once and render its outcome. A two-socket transport keeps
    its reply channel between attempts, so ``close`` it (``with GatewayCheck(...)``)."""

    def __init__(self, endpoint: Endpoint, gateway: ZmqGateway, log: Any = None) -> None:
        self.endpoint = endpoint
        self.gateway = gateway
        self.transport = transport_for(gateway, endpoint)
        self.transport.on_late = lambda frames, rtt_ms, via: self._judged(
            via, "too_slow", frames, rtt_ms
        )
        self.log = log
        self.last_address: str | None = None

    def __enter__(self) -> "GatewayCheck":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def attempt(self, deadline: Deadline) -> Ready:
        """One full check before ``deadline`` (the wait's, or the healthcheck's).

        Its stages take their documented shares of it: the lookup and the connection at
        most --connect-timeout each, the reply at most --reply-timeout from the connection.
        """
        e = self.endpoint
        self.last_address = None
        started = time.monotonic()
        addresses = resolve(e.host, e.port, deadline.capped(e.connect_timeout_s))
        trace = Trace(
            tuple(address for _family, address in addresses),
            round((time.monotonic() - started) * 1000, 2),
        )
        self.last_address = addresses[0][1]
        failure: AttemptFailed | None = None
        for _family, address in addresses:
            if failure is not None and deadline.expired():
                break
            try:
                exchange = self.exchange(address, e.dialect.ping, deadline, via="attempt")
            except AttemptFailed as failed:
                failed.trace = trace._replace(address=address)
                if failed.stage != "tcp":  # the peer answered: its verdict stands
                    raise
                failure = failed  # this address does not connect: try the next one
                continue
            self.last_address = address
            trace = trace._replace(address=address, connect_ms=exchange.connect_ms)
            if not e.kind.sends_requests:
                return Ready(address, None, exchange.connect_ms, via="handshake", trace=trace)
            try:
                reply = e.dialect.judge(exchange.frames)
            except AttemptFailed as refused:
                refused.trace = trace
                raise
            return Ready(address, reply, exchange.rtt_ms, trace=trace)
        assert failure is not None
        raise failure

    def exchange(
        self,
        address: str,
        request: RequestTemplate,
        deadline: Deadline,
        reply_timeout_s: float | None = None,
        via: str = "attempt",
    ) -> Exchange:
        payload = request.render()
        return self.transport.exchange(
            address,
            payload,
            deadline,
            reply_timeout_s=self.endpoint.reply_timeout_s
            if reply_timeout_s is None
            else reply_timeout_s,
            on_sent=lambda: self._sent(address, payload, via),
            secret=request.secret,
            via=via,
        )

    def passive(self, deadline: Deadline) -> tuple[str, float]:
        """The bridge's request socket shown to work with nothing sent, nothing taken from
        its reply port: (address, handshake ms). What ``health`` does for the two-socket
        transports, which must never disturb a running strategy."""
        e = self.endpoint
        addresses = resolve(e.host, e.port, deadline.capped(e.connect_timeout_s))
        address = addresses[0][1]
        return address, self.transport.passive(address, deadline)

    def status(self, address: str, reply_timeout_s: float) -> Any:
        """The gateway's STATUS reply, judged like a PING's; AttemptFailed when it has none
        to give or refuses. Only called when a status request is configured."""
        dialect = self.endpoint.dialect
        assert dialect.status is not None
        deadline = Deadline(self.endpoint.timeouts._replace(reply_s=reply_timeout_s).exchange_s)
        exchange = self.exchange(address, dialect.status, deadline, reply_timeout_s, via="status")
        return dialect.judge(exchange.frames)

    def status_timeout(self, ready: Ready) -> float:
        """How long the gate waits for STATUS before the exec: a margin over the PING's
        round trip, so a gateway without STATUS delays the runner by ~0.25 s at most on a
        LAN, while a slow link still gets its answer."""
        margin = STATUS_TIMEOUT_MIN_S + 2 * (ready.rtt_ms or 0) / 1000
        return min(STATUS_TIMEOUT_MAX_S, margin, self.endpoint.reply_timeout_s)

    def watch_pause(
        self, seconds: float, deadline: Deadline | None = None
    ) -> Ready | AttemptFailed | None:
        """Spend a backoff pause with a request pending on the bridge's transport; a valid
        reply within --reply-timeout of the request reaching the bridge is readiness. A
        reply that refuses is returned (not raised), so the wait counts it among the
        refusals; a request in flight is never waited for past ``deadline``."""
        pause = Deadline(seconds)
        address = self._address_for_pause(pause)
        if address is None or pause.expired():
            return None
        ping = self.endpoint.dialect.ping
        payload = ping.render()
        caught = self.transport.watch(
            address,
            payload,
            pause,
            secret=ping.secret,
            on_sent=lambda: self._sent(address, payload, "pause"),
            until=deadline,
        )
        if caught is None:
            return None
        frames, rtt_ms = caught
        rtt_ms = None if rtt_ms is None else round(rtt_ms, 2)
        if not self.endpoint.kind.sends_requests:
            return Ready(address, None, rtt_ms, via="handshake")
        if rtt_ms is not None and rtt_ms > self.endpoint.reply_timeout_s * 1000:
            self._judged("pause", "too_slow", frames, rtt_ms)
            return None  # answered, but slower than a reply may be: not ready
        try:
            reply = self.endpoint.dialect.judge(frames)
        except AttemptFailed as failure:
            self._judged("pause", failure.reason.value, frames, rtt_ms, failure)
            return failure  # counted with the attempts' refusals; the next attempt retries
        return Ready(address, reply, rtt_ms, via="pause")

    def _sent(self, address: str, payload: bytes, via: str) -> None:
        if self.log is not None:
            emit(
                self.log,
                events.REQUEST,
                via=via,
                transport=self.endpoint.transport,
                to=address_text(address, self.endpoint.port),
                request=untrusted(payload, 200),
            )

    def _judged(
        self,
        via: str,
        verdict: str,
        frames: list[bytes],
        rtt_ms: float | None,
        failure: AttemptFailed | None = None,
    ) -> None:
        if self.log is None:
            return
        state = failure.state if isinstance(failure, NotReady) else None
        extra: dict[str, Any] = {"broker_state": state.name} if state is not None else {}
        if failure is not None:
            extra["error"] = failure.error
        emit(
            self.log,
            events.REPLY,
            via=via,
            verdict=verdict,
            rtt_ms=rtt_ms,
            reply=untrusted(b"".join(frames), 200),
            **extra,
        )

    def _address_for_pause(self, pause: Deadline) -> str | None:
        """The address to queue a request to; after a DNS failure, look the name up again
        about once a second during the pause, so a name that comes back is noticed."""
        while self.last_address is None:
            if pause.expired():
                return None
            time.sleep(min(RESOLVE_DURING_PAUSE_S, pause.remaining()))
            if pause.expired():
                return None
            try:
                resolved = resolve(
                    self.endpoint.host,
                    self.endpoint.port,
                    pause.capped(self.endpoint.connect_timeout_s),
                )
            except AttemptFailed:
                continue
            self.last_address = resolved[0][1]
        return self.last_address


def check_feed(
    gateway: ZmqGateway,
    host: str,
    port: int,
    deadline: Deadline,
    message_within_s: float | None = None,
) -> float:
    """The PUB port: a SUB connection shown to work before ``deadline``; its time in ms."""
    addresses = resolve(host, port, deadline)
    return gateway.handshake(addresses[0][1], port, deadline, message_within_s)
