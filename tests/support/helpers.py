"""Small helpers shared by the tests: the repository, the gate's command line and environment,
free ports, polling with a deadline, the JSON log lines, skipping or failing.

How the tests run the gate to completion is ``run_gate`` (tests/support/cli.py); how they
start any process that must be ended after them is ``Processes`` (tests/support/processes.py),
behind the `spawn`, `gate`, `sim` and `standin` fixtures of tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from entrypoint.log.events import BY_NAME

REPO = Path(__file__).resolve().parents[2]
GATE = [sys.executable, "-m", "entrypoint"]
# A runner for the exec tests: it prints "ready pid=N", then one JSON line with its PID,
# argv and environment (tests/support/exec_probe.py).
EXEC_PROBE = [sys.executable, str(REPO / "tests" / "support" / "exec_probe.py")]
IN_CI = os.environ.get("CI", "").lower() == "true"


def base_env(**extra: str) -> dict[str, str]:
    """The environment a gate subprocess gets: ours minus GATE_*/GATEWAY_*, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATE_", "GATEWAY_")) and k != "NO_COLOR"
    }
    env["PYTHONPATH"] = str(REPO)
    env["GATE_LOG_FORMAT"] = "json"
    # A child that hangs is sent SIGABRT before it is killed (Proc.wait): with this set,
    # Python prints every thread's stack, so a rare hang explains itself in the test report.
    env["PYTHONFAULTHANDLER"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port for a server the test starts on it later (the OS picks it, we release
    it). Never a port that must stay closed: any bind to port 0 may be handed the same
    number meanwhile; that is ``held_closed_port``/``closed_port`` (tests/support/sockets.py)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.01) -> Any:
    """Return the first truthy value of ``predicate`` within ``timeout`` s, else fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)


def parse_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line must be one JSON object; return them in order. A line of the
    gate or the simulator must be a declared event (entrypoint/log/events.py) with declared
    fields only: every test that reads a gate's log checks the declarations too."""
    events = []
    for line in text.splitlines():
        if line.strip():
            event = json.loads(line)
            assert isinstance(event, dict), line
            check_declared(event)
            events.append(event)
    return events


def check_declared(event: dict[str, Any]) -> None:
    name = event.get("event")
    if not isinstance(name, str) or not name.startswith(("gate.", "sim.")):
        return  # a runner's own line, say
    declared = BY_NAME.get(name)
    assert declared is not None, f"undeclared event {name!r} (entrypoint/log/events.py)"
    undeclared = sorted(key for key in event if not declared.allows(key))
    assert not undeclared, f"{name}: fields {undeclared} are not declared in events.py"
    assert event.get("level") == declared.level, f"{name}: level {event.get('level')!r}"


def names(events: Sequence[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


def skip_or_fail(problem: str) -> None:
    """Skip locally with the reason printed; under CI=true the test must run, so fail."""
    if IN_CI:
        pytest.fail(f"{problem} (CI=true: this must run, not skip)")
    pytest.skip(problem)


def require_root(what: str) -> None:
    """Skip (locally) or fail (under CI=true) when the test cannot run as this user."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    for tool in ("ip", "iptables"):
        dirs = [*os.environ.get("PATH", "").split(":"), "/usr/sbin", "/sbin"]
        if not any((Path(d) / tool).exists() for d in dirs):
            missing.append(tool)
    if missing:
        skip_or_fail(f"{what} needs {', '.join(missing)}")
