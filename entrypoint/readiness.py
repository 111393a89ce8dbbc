"""One readiness check: resolve, TCP connect, ZeroMQ PING, judge the reply.

Shared by ``wait`` (which retries it) and the diagnostic commands (which run it once).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from entrypoint.config import GateSettings
from entrypoint.protocol import check_status, decode_reply, ping_request, status_request
from entrypoint.reasons import AttemptFailed
from entrypoint.tcp_probe import probe_tcp, reach, resolve
from entrypoint.zmq_client import ZmqGateway

# STATUS is informational and optional: a gateway that ignores it must not hold the runner
# back for long. Its timeout is a margin over the PING's own round trip, within these bounds.
STATUS_TIMEOUT_MIN_S = 0.25
STATUS_TIMEOUT_MAX_S = 1.0
# After a DNS failure, how often a backoff pause looks the name up again.
RESOLVE_DURING_PAUSE_S = 1.0


@dataclasses.dataclass(frozen=True)
class Ready:
    address: str
    reply: dict[str, Any]
    rtt_ms: float | None
    via: str = "attempt"


class ReadinessCheck:
    """Runs single attempts against one gateway and remembers the last resolved address."""

    def __init__(self, settings: GateSettings, gateway: ZmqGateway) -> None:
        self.settings = settings
        self.gateway = gateway
        self.last_address: str | None = None

    def attempt(self, budget_s: float) -> Ready:
        """One full check within ``budget_s`` (already truncated to the deadline)."""
        s = self.settings
        started = time.monotonic()
        self.last_address = None
        addresses = resolve(s.host, s.port, min(s.connect_timeout_s, budget_s))
        self.last_address = addresses[0][1]
        left = budget_s - (time.monotonic() - started)
        tcp = probe_tcp(addresses, s.port, min(s.connect_timeout_s, max(left, 0.001)))
        self.last_address = tcp.address
        left = budget_s - (time.monotonic() - started)
        sent = time.monotonic()
        frames = self.gateway.request(tcp.address, s.port, ping_request(),
                                      min(s.reply_timeout_s, max(left, 0.001)), tcp.greeting)
        rtt_ms = (time.monotonic() - sent) * 1000
        return Ready(tcp.address, self.judge(frames), round(rtt_ms, 2))

    def judge(self, frames: list[bytes]) -> dict[str, Any]:
        reply = decode_reply(frames)
        check_status(reply, self.settings.expect_status)
        return reply

    def status(self, address: str, timeout_s: float) -> dict[str, Any]:
        """The gateway's STATUS reply, or AttemptFailed when it has none to give."""
        frames = self.gateway.request(address, self.settings.port, status_request(), timeout_s)
        return decode_reply(frames)

    def status_timeout(self, ready: Ready) -> float:
        """How long the gate waits for STATUS before the exec: a margin over the PING's
        round trip, so a gateway without STATUS delays the runner by ~0.25 s at most on a
        LAN, while a slow link still gets its answer."""
        margin = STATUS_TIMEOUT_MIN_S + 2 * (ready.rtt_ms or 0) / 1000
        return min(STATUS_TIMEOUT_MAX_S, margin, self.settings.reply_timeout_s)

    def watch_pause(self, seconds: float) -> Ready | None:
        """Spend a backoff pause with a PING queued; a valid reply in that time, within
        --reply-timeout of the PING reaching the gateway, is readiness."""
        deadline = time.monotonic() + seconds
        address = self._address_for_pause(deadline)
        left = deadline - time.monotonic()
        if address is None or left <= 0:
            return None
        with self.gateway.pending_ping(address, self.settings.port, ping_request(),
                                       self.settings.connect_timeout_s) as pending:
            answer = pending.wait(left)
        if answer is None:
            return None
        frames, rtt_ms = answer
        if rtt_ms > self.settings.reply_timeout_s * 1000:
            return None  # answered, but slower than a reply may be: not ready
        try:
            return Ready(address, self.judge(frames), round(rtt_ms, 2), via="pending_ping")
        except AttemptFailed:
            return None  # the next attempt will see and report the same bad reply

    def _address_for_pause(self, deadline: float) -> str | None:
        """The address to queue a PING to; after a DNS failure, look the name up again about
        once a second during the pause, so a name that comes back is noticed promptly."""
        while self.last_address is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(RESOLVE_DURING_PAUSE_S, left))
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                resolved = resolve(self.settings.host, self.settings.port,
                                   min(self.settings.connect_timeout_s, left))
            except AttemptFailed:
                continue
            self.last_address = resolved[0][1]
        return self.last_address


def check_feed(gateway: ZmqGateway, host: str, port: int, timeout_s: float,
               message_within_s: float | None = None) -> float:
    """The PUB port: TCP first (for a precise reason), then a SUB handshake; its time in ms."""
    started = time.monotonic()
    tcp = reach(host, port, timeout_s)
    left = max(0.001, timeout_s - (time.monotonic() - started))
    return gateway.handshake(tcp.address, port, left, message_within_s)
