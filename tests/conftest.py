from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from tests.helpers import Proc, StartGateway, start_sim


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without GATE_*/GATEWAY_* variables, with default logging and with
    pytest's own SIGINT/SIGTERM handling (``main()`` in-process installs the gate's)."""
    import os
    import signal

    for key in list(os.environ):
        if key.startswith(("GATE_", "GATEWAY_")) or key == "NO_COLOR":
            monkeypatch.delenv(key)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    structlog.reset_defaults()


@pytest.fixture
def gateway() -> Iterator[StartGateway]:
    """Start simulated gateways (``gateway("--bad-status")``); all are stopped afterwards,
    whatever the test did."""
    started: list[Proc] = []

    def start(*args: str) -> tuple[Proc, int]:
        proc, port = start_sim(*args)
        started.append(proc)
        return proc, port

    yield start
    for proc in started:
        proc.stop()
