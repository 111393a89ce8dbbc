"""The hand-off: a true exec that keeps PID, argv and environment, and leaks nothing."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from tests.support.bounds import AFTER_SIGNAL_S, EXIT_S
from tests.support.cli import run_gate
from tests.support.helpers import EXEC_PROBE, base_env
from tests.support.processes import Proc, StartGate, StartSim

SIGPIPE_BIT = 1 << (signal.SIGPIPE - 1)
SIGXFSZ_BIT = 1 << (signal.SIGXFSZ - 1)


def exec_through_gate(gate: StartGate, port: int, *argv: str) -> tuple[Proc, dict[str, Any]]:
    env = base_env(EXEC_PROBE_MARKER="kept as is")
    proc = gate(
        "wait", "--host", "127.0.0.1", "--port", str(port), "--", *EXEC_PROBE, *argv, env=env
    )
    assert proc.wait(timeout=EXIT_S) == 0
    report = json.loads(next(line for line in proc.stdout_lines if line.startswith("{")))
    return proc, report


def test_runner_replaces_the_gate_with_the_same_pid_argv_and_environment(
    sim: StartSim, gate: StartGate
) -> None:
    """The runner prints the gate's PID: exec, not fork; argv and environment unchanged."""
    _sim, port = sim()
    proc, report = exec_through_gate(gate, port, "--flag", "two words", "")
    assert proc.stdout_lines[0] == f"ready pid={proc.pid}"
    assert report["pid"] == proc.pid
    assert report["argv"] == ["--flag", "two words", ""]
    assert report["env_marker"] == "kept as is"
    assert "GATE_LOG_FORMAT" in report["env_keys"]  # gate variables stay (not secrets)
    events = proc.events()
    assert [e["event"] for e in events][-2:] == ["gate.status", "gate.exec"]
    assert events[-1]["argv"][-3:] == ["--flag", "two words", ""]


def run_through_gate(gate: StartGate, port: int, *argv: str) -> Proc:
    proc = gate("wait", "--host", "127.0.0.1", "--port", str(port), "--", *argv)
    assert proc.wait(timeout=EXIT_S) == 0
    return proc


def test_signal_dispositions_and_mask_are_restored(sim: StartSim, gate: StartGate) -> None:
    """`cat /proc/self/status` as the runner: SIGPIPE/SIGXFSZ not ignored, mask empty.

    The runner is cat, not Python, because Python re-ignores SIGPIPE when it starts.
    """
    _sim, port = sim()
    proc = run_through_gate(gate, port, "cat", "/proc/self/status")
    status = dict(line.split(":", 1) for line in proc.stdout_lines if ":" in line)
    assert int(status["Pid"]) == proc.pid
    assert int(status["SigIgn"], 16) & (SIGPIPE_BIT | SIGXFSZ_BIT) == 0
    assert int(status["SigBlk"], 16) == 0


def test_no_file_descriptor_of_the_gate_leaks_into_the_runner(
    sim: StartSim, gate: StartGate
) -> None:
    """`ls /proc/self/fd` as the runner sees 0, 1, 2 and its own directory handle only."""
    _sim, port = sim()
    proc = run_through_gate(gate, port, "ls", "/proc/self/fd")
    assert sorted(int(fd) for fd in proc.stdout_lines) == [0, 1, 2, 3]


def test_sigpipe_default_in_the_runner_makes_pipelines_behave(
    sim: StartSim, gate: StartGate
) -> None:
    """`yes | head -n 1` in the runner: yes dies of SIGPIPE (141), not a write error (1)."""
    _sim, port = sim()
    proc = run_through_gate(
        gate, port, "sh", "-c", '(yes; echo "yes-exit=$?" >&2) | head -n 1 >/dev/null'
    )
    assert "yes-exit=141" in proc.stderr_lines


def test_runner_exit_code_is_the_containers_exit_code(sim: StartSim) -> None:
    """Once exec'd, the runner's own exit code is what the process exits with."""
    _sim, port = sim()
    done = run_gate(
        ["wait", "--host", "127.0.0.1", "--port", str(port), "--", "sh", "-c", "exit 42"]
    )
    assert done.code == 42


def test_runner_receives_signals_directly_after_exec(sim: StartSim, gate: StartGate) -> None:
    """SIGTERM after the exec reaches the runner (here: sh's trap), not a gate wrapper."""
    _simulator, port = sim()
    proc = gate(
        "wait",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--",
        "sh",
        "-c",
        'trap "echo got-term; exit 7" TERM; echo "ready pid=$$"; while :; do sleep 0.05; done',
    )
    line = proc.wait_for_stdout("ready pid=")
    assert line == f"ready pid={proc.pid}"
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=AFTER_SIGNAL_S) == 7
    assert "got-term" in proc.stdout_lines
