"""The gate as PID 1 (as in a container without --init), run with `unshare --pid --fork`."""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.support.bounds import AFTER_SIGNAL_S, EVENT_S, EXIT_S
from tests.support.helpers import GATE, poll_until, skip_or_fail
from tests.support.processes import Proc, Spawn, StartSim, first_child
from tests.support.sockets import held_closed_port

pytestmark = pytest.mark.root


def require_unshare() -> None:
    problem = None
    if os.geteuid() != 0:
        problem = "PID-1 tests need root for unshare --pid"
    elif shutil.which("unshare") is None:
        problem = "PID-1 tests need unshare (util-linux)"
    if problem:
        skip_or_fail(problem)


def as_pid1(spawn: Spawn, *argv: str) -> Proc:
    return spawn(["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", *argv])


def pid1_host_pid(unshare_pid: int) -> int:
    """The host PID of unshare's forked child, which is PID 1 in the new namespace."""
    return int(poll_until(lambda: first_child(unshare_pid), EVENT_S))


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_the_gate_as_pid1_at_once(sig: int, code: int, spawn: Spawn) -> None:
    """Python ignores SIGTERM as PID 1 unless handled: the gate handles it and exits 128+N,
    at once, not at the end of its backoff pause."""
    require_unshare()
    # A 30 s step with equal jitter: the pause the signal arrives in lasts 15-30 s.
    proc = as_pid1(
        spawn,
        *GATE,
        "wait",
        "--host",
        "127.0.0.1",
        "--port",
        str(held_closed_port()),
        "--backoff-initial",
        "30",
        "--backoff-max",
        "30",
    )
    start = proc.wait_for_event("gate.start")
    assert start["pid"] == 1
    proc.wait_for_event("gate.attempt_failed")
    gate = pid1_host_pid(proc.pid)
    sent = time.time()
    os.kill(gate, sig)
    assert proc.wait(timeout=AFTER_SIGNAL_S) == code
    event = proc.events()[-1]
    assert event["event"] == "gate.signal"
    # Timed by the gate's own log line, so slow reaping on a busy machine does not count:
    # handled within milliseconds (a few hundred ms loaded), not when the 15-30 s pause ends.
    stopped = datetime.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    assert stopped.timestamp() - sent < 3.0, f"sent at {sent}: {proc.events()}"


def test_runner_becomes_pid1(sim: StartSim, spawn: Spawn) -> None:
    """After the exec, the runner is PID 1 of the namespace."""
    require_unshare()
    _simulator, port = sim()
    proc = as_pid1(
        spawn,
        *GATE,
        "wait",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--",
        "sh",
        "-c",
        "echo ready pid=$$",
    )
    assert proc.wait(timeout=EXIT_S) == 0
    assert proc.stdout_lines == ["ready pid=1"]


def _catches_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def test_sigterm_is_handled_from_before_the_heavy_imports_as_pid1(spawn: Spawn) -> None:
    """The stop handlers are the first thing the gate installs: the moment the process
    catches SIGTERM, neither structlog (asyncio) nor libzmq is loaded yet, and a SIGTERM
    then is exit 143 (as PID 1, a signal without a handler is ignored: Docker would wait
    out its grace period)."""
    require_unshare()
    proc = as_pid1(spawn, *GATE, "wait", "--host", "127.0.0.1", "--port", str(held_closed_port()))
    gate = pid1_host_pid(proc.pid)
    poll_until(lambda: _catches_sigterm(gate), EVENT_S, interval=0.001)
    maps = Path(f"/proc/{gate}/maps").read_text()
    os.kill(gate, signal.SIGTERM)
    code = proc.wait(timeout=AFTER_SIGNAL_S)
    assert "_asyncio" not in maps  # structlog (via asyncio) is not imported yet
    assert "libzmq" not in maps
    assert code == 143
    assert proc.events()[-1]["event"] == "gate.signal"
