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

# STATUS is informational and optional: never let a gateway that ignores it delay the runner
# by more than this.
STATUS_TIMEOUT_S = 1.0


@dataclasses.dataclass(frozen=True)
class Ready:
    address: str
    reply: dict[str, Any]
    rtt_ms: float | None  # None when the reply answered a PING queued during a backoff pause
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

    def status(self, address: str) -> dict[str, Any]:
        """The gateway's STATUS reply, or AttemptFailed when it has none to give."""
        timeout = min(STATUS_TIMEOUT_S, self.settings.reply_timeout_s)
        frames = self.gateway.request(address, self.settings.port, status_request(), timeout)
        return decode_reply(frames)

    def watch_pause(self, seconds: float) -> Ready | None:
        """Spend a backoff pause with a PING queued; a valid reply in that time is readiness."""
        if self.last_address is None:
            return None
        with self.gateway.pending_ping(self.last_address, self.settings.port, ping_request(),
                                       self.settings.connect_timeout_s) as pending:
            frames = pending.wait(seconds)
        if frames is None:
            return None
        try:
            return Ready(self.last_address, self.judge(frames), None, via="pending_ping")
        except AttemptFailed:
            return None  # the next attempt will see and report the same bad reply


def check_feed(gateway: ZmqGateway, host: str, port: int, timeout_s: float,
               message_within_s: float | None = None) -> float:
    """The PUB port: TCP first (for a precise reason), then a SUB handshake; its time in ms."""
    started = time.monotonic()
    tcp = reach(host, port, timeout_s)
    left = max(0.001, timeout_s - (time.monotonic() - started))
    return gateway.handshake(tcp.address, port, left, message_within_s)
