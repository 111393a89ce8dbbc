"""``mt5-gate health``: one bounded attempt for Docker/Compose/Kubernetes healthchecks.

Exit 0 when the gateway answers, 1 otherwise (never 2, which Docker reserves), and at
most one short line of output (Docker keeps only the last 4 KB of it).
"""

from __future__ import annotations

import sys
from typing import TextIO

from entrypoint.config import GateSettings
from entrypoint.readiness import ReadinessCheck
from entrypoint.reasons import AttemptFailed
from entrypoint.zmq_client import ZmqGateway

HEALTHY, UNHEALTHY = 0, 1
MAX_LINE = 200


def run_health(settings: GateSettings, out: TextIO | None = None) -> int:
    stream = out if out is not None else sys.stdout
    try:
        with ZmqGateway(curve=settings.curve) as gateway:
            ready = ReadinessCheck(settings, gateway).attempt(settings.timeout_s)
    except AttemptFailed as failure:
        return emit(stream, UNHEALTHY,
                    f"unhealthy: {settings.target} {failure.reason}: {failure.error}")
    return emit(stream, HEALTHY, f"healthy: {settings.target} answered PING in "
                                 f"{ready.rtt_ms} ms")


def emit(stream: TextIO, code: int, line: str) -> int:
    text = " ".join(line.split())  # one line, whatever the error text contained
    stream.write((text if len(text) <= MAX_LINE else text[: MAX_LINE - 3] + "...") + "\n")
    stream.flush()
    return code
