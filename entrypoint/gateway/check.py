"""One readiness check: resolve, then the dialect's PING over ZeroMQ, then judge the reply.

Shared by ``wait`` (which retries it) and the diagnostic commands (which run it once).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from entrypoint.config import GateSettings
from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed
from entrypoint.gateway.tcp import resolve
from entrypoint.gateway.zmq_client import Exchange, ZmqGateway

# STATUS is informational and optional: a gateway that ignores it must not hold the runner
# back for long. Its timeout is a margin over the PING's own round trip, within these bounds.
STATUS_TIMEOUT_MIN_S = 0.25
STATUS_TIMEOUT_MAX_S = 1.0
# After a DNS failure, how often a backoff pause looks the name up again.
RESOLVE_DURING_PAUSE_S = 1.0


@dataclasses.dataclass(frozen=True)
class Ready:
    address: str
    reply: Any  # the decoded reply that satisfied the judgement
    rtt_ms: float | None
    via: str = "attempt"
    connect_ms: float | None = None


class GatewayCheck:
    """Runs single attempts against one gateway and remembers the last resolved address."""

    def __init__(self, settings: GateSettings, gateway: ZmqGateway) -> None:
        self.settings = settings
        self.gateway = gateway
        self.last_address: str | None = None

    def attempt(self, deadline: Deadline) -> Ready:
        """One full check before ``deadline`` (the wait's, or the healthcheck's).

        Its stages take their documented shares of it: the lookup and the connection at
        most --connect-timeout each, the reply at most --reply-timeout from the connection.
        """
        s = self.settings
        self.last_address = None
        addresses = resolve(s.host, s.port, deadline.capped(s.connect_timeout_s))
        self.last_address = addresses[0][1]
        failure: AttemptFailed | None = None
        for _family, address in addresses:
            if failure is not None and deadline.expired():
                break
            try:
                exchange = self.exchange(address, s.dialect.ping.render(), deadline)
            except AttemptFailed as failed:
                if failed.stage != "tcp":  # the peer answered: its verdict stands
                    raise
                failure = failed  # this address does not connect: try the next one
                continue
            self.last_address = address
            return Ready(address, s.dialect.judge(exchange.frames), exchange.rtt_ms,
                         connect_ms=exchange.connect_ms)
        assert failure is not None
        raise failure

    def exchange(self, address: str, payload: bytes, deadline: Deadline,
                 reply_timeout_s: float | None = None) -> Exchange:
        s = self.settings
        return self.gateway.request(
            address, s.port, payload, deadline, connect_timeout_s=s.connect_timeout_s,
            reply_timeout_s=s.reply_timeout_s if reply_timeout_s is None else reply_timeout_s)

    def status(self, address: str, reply_timeout_s: float) -> Any:
        """The gateway's STATUS reply, judged like a PING's; AttemptFailed when it has none
        to give or refuses. Only called when a status request is configured."""
        dialect = self.settings.dialect
        assert dialect.status is not None
        deadline = Deadline(self.settings.connect_timeout_s + reply_timeout_s)
        return dialect.judge(self.exchange(address, dialect.status.render(), deadline,
                                           reply_timeout_s).frames)

    def status_timeout(self, ready: Ready) -> float:
        """How long the gate waits for STATUS before the exec: a margin over the PING's
        round trip, so a gateway without STATUS delays the runner by ~0.25 s at most on a
        LAN, while a slow link still gets its answer."""
        margin = STATUS_TIMEOUT_MIN_S + 2 * (ready.rtt_ms or 0) / 1000
        return min(STATUS_TIMEOUT_MAX_S, margin, self.settings.reply_timeout_s)

    def watch_pause(self, seconds: float) -> Ready | None:
        """Spend a backoff pause with a PING queued; a valid reply in that time, within
        --reply-timeout of the PING reaching the gateway, is readiness."""
        pause = Deadline(seconds)
        address = self._address_for_pause(pause)
        if address is None or pause.expired():
            return None
        with self.gateway.pending_ping(address, self.settings.port,
                                       self.settings.dialect.ping.render(),
                                       self.settings.connect_timeout_s) as pending:
            answer = pending.wait(pause)
        if answer is None:
            return None
        frames, rtt_ms = answer
        if rtt_ms is not None and rtt_ms > self.settings.reply_timeout_s * 1000:
            return None  # answered, but slower than a reply may be: not ready
        try:
            reply = self.settings.dialect.judge(frames)
        except AttemptFailed:
            return None  # the next attempt will see and report the same reply
        return Ready(address, reply, None if rtt_ms is None else round(rtt_ms, 2),
                     via="pending_ping")

    def _address_for_pause(self, pause: Deadline) -> str | None:
        """The address to queue a PING to; after a DNS failure, look the name up again about
        once a second during the pause, so a name that comes back is noticed promptly."""
        while self.last_address is None:
            if pause.expired():
                return None
            time.sleep(min(RESOLVE_DURING_PAUSE_S, pause.remaining()))
            if pause.expired():
                return None
            try:
                resolved = resolve(self.settings.host, self.settings.port,
                                   pause.capped(self.settings.connect_timeout_s))
            except AttemptFailed:
                continue
            self.last_address = resolved[0][1]
        return self.last_address


def check_feed(gateway: ZmqGateway, host: str, port: int, deadline: Deadline,
               message_within_s: float | None = None) -> float:
    """The PUB port: a SUB connection shown to work before ``deadline``; its time in ms."""
    addresses = resolve(host, port, deadline)
    return gateway.handshake(addresses[0][1], port, deadline, message_within_s)
