"""The hand-off: a true exec that keeps PID, argv and environment, and leaks nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

from tests.support.bounds import AFTER_SIGNAL_S, EXIT_S
from tests.support.helpers import GATE, REPO, Proc, StartGate, StartGateway, StartSim, base_env

SIGPIPE_BIT = 1 << (signal.SIGPIPE - 1)
SIGXFSZ_BIT = 1 << (signal.SIGXFSZ - 1)


def exec_through_gate(port: int, *argv: str) -> tuple[Proc, dict[str, Any]]:
    env = base_env(EXEC_PROBE_MARKER="kept as is")
    gate = Proc([*GATE, "wait", "--host", "127.0.0.1", "--port", str(port), "--",
                 sys.executable, str(REPO / "tests" / "support" / "exec_probe.py"), *argv], env=env)
    assert gate.wait(timeout=EXIT_S) == 0
    report = json.loads(next(line for line in gate.stdout_lines if line.startswith("{")))
    return gate, report


def test_runner_replaces_the_gate_with_the_same_pid_argv_and_environment(
        gateway: StartGateway) -> None:
    """The runner prints the gate's PID: exec, not fork; argv and environment unchanged."""
    _sim, port = gateway()
    gate, report = exec_through_gate(port, "--flag", "two words", "")
    assert gate.stdout_lines[0] == f"ready pid={gate.pid}"
    assert report["pid"] == gate.pid
    assert report["argv"] == ["--flag", "two words", ""]
    assert report["env_marker"] == "kept as is"
    assert "GATE_LOG_FORMAT" in report["env_keys"]  # gate variables stay (not secrets)
    events = gate.events()
    assert [e["event"] for e in events][-2:] == ["gate.status", "gate.exec"]
    assert events[-1]["argv"][-3:] == ["--flag", "two words", ""]


def run_through_gate(port: int, *argv: str) -> Proc:
    gate = Proc([*GATE, "wait", "--host", "127.0.0.1", "--port", str(port), "--", *argv])
    assert gate.wait(timeout=EXIT_S) == 0
    return gate


def test_signal_dispositions_and_mask_are_restored(gateway: StartGateway) -> None:
    """`cat /proc/self/status` as the runner: SIGPIPE/SIGXFSZ not ignored, mask empty.

    The runner is cat, not Python, because Python re-ignores SIGPIPE when it starts.
    """
    _sim, port = gateway()
    gate = run_through_gate(port, "cat", "/proc/self/status")
    status = dict(line.split(":", 1) for line in gate.stdout_lines if ":" in line)
    assert int(status["Pid"]) == gate.pid
    assert int(status["SigIgn"], 16) & (SIGPIPE_BIT | SIGXFSZ_BIT) == 0
    assert int(status["SigBlk"], 16) == 0


def test_no_file_descriptor_of_the_gate_leaks_into_the_runner(gateway: StartGateway) -> None:
    """`ls /proc/self/fd` as the runner sees 0, 1, 2 and its own directory handle only."""
    _sim, port = gateway()
    gate = run_through_gate(port, "ls", "/proc/self/fd")
    assert sorted(int(fd) for fd in gate.stdout_lines) == [0, 1, 2, 3]


def test_sigpipe_default_in_the_runner_makes_pipelines_behave(gateway: StartGateway) -> None:
    """`yes | head -n 1` in the runner: yes dies of SIGPIPE (141), not a write error (1)."""
    _sim, port = gateway()
    gate = run_through_gate(
        port, "sh", "-c", '(yes; echo "yes-exit=$?" >&2) | head -n 1 >/dev/null')
    assert "yes-exit=141" in gate.stderr_lines


def test_runner_exit_code_is_the_containers_exit_code(gateway: StartGateway) -> None:
    """Once exec'd, the runner's own exit code is what the process exits with."""
    _sim, port = gateway()
    done = subprocess.run(
        [*GATE, "wait", "--host", "127.0.0.1", "--port", str(port), "--", "sh", "-c",
         "exit 42"], env=base_env(), cwd=REPO, capture_output=True, timeout=EXIT_S, check=False)
    assert done.returncode == 42


def test_runner_receives_signals_directly_after_exec(sim: StartSim, gate: StartGate) -> None:
    """SIGTERM after the exec reaches the runner (here: sh's trap), not a gate wrapper."""
    _simulator, port = sim()
    proc = gate("wait", "--host", "127.0.0.1", "--port", str(port), "--", "sh", "-c",
                'trap "echo got-term; exit 7" TERM; echo "ready pid=$$"; '
                "while :; do sleep 0.05; done")
    line = proc.wait_for_stdout("ready pid=")
    assert line == f"ready pid={proc.pid}"
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=AFTER_SIGNAL_S) == 7
    assert "got-term" in proc.stdout_lines
