"""`mt5-gate explain`: logs of real gate runs read back, and hostile input survived."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.support.bounds import (
    AFTER_SIGNAL_S,
    COMMAND_S,
    EVENT_S,
    EXIT_S,
    FAST_ATTEMPT,
    FAST_WAIT,
    NEVER_READY_S,
    NEVER_READY_WAIT,
    after_deadline,
)
from tests.support.cli import Ran, run_gate
from tests.support.helpers import GATE, REPO, base_env, free_port
from tests.support.processes import Spawn, StartGate, StartSim
from tests.support.sockets import held_closed_port


def gate_log(args: list[str], env: dict[str, str] | None = None, timeout: float = EXIT_S) -> bytes:
    """A real gate run's stderr and stdout, interleaved as `docker logs 2>&1` shows them.
    ``timeout``: after_deadline(N) for a gate given ``--timeout N``."""
    done = run_gate(args, env, timeout=timeout, stderr=subprocess.STDOUT)
    return done.stdout.encode()


def explain(data: bytes, *args: str, env: dict[str, str] | None = None, tty: bool = False) -> Ran:
    """``explain ARGS`` reading ``data``; its stderr is plain text, not the JSON log. With
    ``tty``, its stdout on a pseudo-terminal."""
    # COMMAND_S, not EXIT_S: some of the hostile inputs below are several MiB.
    return run_gate(
        ["explain", *args],
        env,
        stdin=data,
        timeout=COMMAND_S,
        log="text",
        tty="stdout" if tty else None,
    )


def explained(data: bytes) -> tuple[str, dict[str, Any]]:
    """(the text for people, the JSON for machines) of the same log."""
    text, machine = explain(data), explain(data, "--json")
    assert text.code == 0, text.stdout + text.stderr
    assert machine.code == 0
    return text.stdout, json.loads(machine.stdout)


def test_an_outage_then_ready_is_one_phase_per_reason_and_the_exec(sim: StartSim) -> None:
    """The gateway binds 3 s late: refused for about that long, then ready and the exec;
    the runner's own output in the same log is skipped."""
    port = free_port()
    sim("--port", str(port), "--start-delay", "3", wait_listening=False)
    log = gate_log(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *FAST_WAIT,
            "--timeout",
            "30",
            "--",
            "echo",
            "runner says hello",
        ],
        timeout=after_deadline(30),
    )
    text, machine = explained(log)
    (run,) = machine["runs"]
    assert run["outcome"] == "exec"
    assert run["phases"][0]["reason"] == "refused"
    assert run["phases"][0]["attempts"] >= 2
    # The phase lasts until the gateway answered: the 3 s delay, give or take the difference
    # between the sim's and the gate's start-up (up to ~1.5 s loaded), not just the first
    # few attempts (~0.1 s): 0.5 s leaves 2.5 s for that difference. The upper end is no
    # time bound: a phase lies within its run (0.01 s for rounding).
    assert 0.5 < run["phases"][0]["duration_s"] < run["duration_s"] + 0.01
    assert machine["lines"]["other"] >= 1  # "runner says hello"
    assert "refused for" in text
    assert "started `echo runner says hello`" in text
    assert "exec echo runner says hello" in text


def test_a_timeout_names_the_reason_the_hint_and_the_next_command_with_host_and_port() -> None:
    port = held_closed_port()
    log = gate_log(
        ["wait", "--host", "127.0.0.1", "--port", str(port), *FAST_WAIT, "--timeout", "1.5"],
        timeout=after_deadline(1.5),
    )
    text, machine = explained(log)
    assert machine["runs"][0]["outcome"] == "timeout"
    assert machine["runs"][0]["exit_code"] == 69
    assert "gave up after" in text
    assert f"Nothing listens on 127.0.0.1:{port}" in text
    assert "mt5-gate explain --reason refused" in text
    assert f"Next: `mt5-gate probe --host 127.0.0.1 --port {port}`" in text


def test_a_signal_while_waiting_is_told_as_a_stop_not_a_failure(gate: StartGate) -> None:
    proc = gate("wait", "--host", "127.0.0.1", "--port", str(held_closed_port()), *FAST_WAIT)
    proc.wait_for_event("gate.attempt_failed")
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=AFTER_SIGNAL_S) == 143  # not the 600 s default deadline
    text, machine = explained("\n".join(proc.stderr_lines).encode())
    assert machine["runs"][0]["outcome"] == "signal"
    assert "stopped by SIGTERM" in text


def test_a_restart_loop_is_several_runs() -> None:
    """Three runs of a container that keeps timing out, in one log."""
    port = held_closed_port()
    log = b"".join(
        gate_log(
            ["wait", "--host", "127.0.0.1", "--port", str(port), *FAST_WAIT, "--timeout", "0.5"],
            timeout=after_deadline(0.5),
        )
        for _ in range(3)
    )
    text, machine = explained(log)
    assert machine["runs_seen"] == 3
    assert [r["outcome"] for r in machine["runs"]] == ["timeout"] * 3
    assert "restarted 2 times" in text
    assert "run 3 of 3" in text


def test_a_dependency_that_times_out_is_the_diagnosis_not_the_gateway(sim: StartSim) -> None:
    _sim, port = sim()
    dependency = f"tcp://127.0.0.1:{held_closed_port()}"
    log = gate_log(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *FAST_WAIT,
            "--timeout",
            "1.5",
            "--also",
            dependency,
        ],
        timeout=after_deadline(1.5),
    )
    text, machine = explained(log)
    run = machine["runs"][0]
    assert run["outcome"] == "timeout"
    assert run["diagnosis"]["target"] == dependency
    assert f"{dependency} never answered" in text
    assert f"--also {dependency}" in text  # the next command reproduces that dependency


def test_curve_auth_failure_is_explained_with_its_section(tmp_path: Path, sim: StartSim) -> None:
    """A gateway with CURVE, a gate holding another server's key: exit 78, auth."""
    server_public, server_secret = zmq.curve_keypair()
    other_public, _ = zmq.curve_keypair()
    (tmp_path / "server.secret").write_bytes(server_secret)
    _simulator, port = sim("--curve-secret-key-file", str(tmp_path / "server.secret"))
    log = gate_log(
        ["wait", "--host", "127.0.0.1", "--port", str(port), *FAST_WAIT],
        env=base_env(GATEWAY_CURVE_SERVER_KEY=other_public.decode()),
    )
    text, machine = explained(log)
    run = machine["runs"][0]
    assert run["outcome"] == "error"
    assert run["exit_code"] == 78
    assert "mt5-gate explain --reason auth" in text
    assert server_public.decode() not in text  # keys never printed
    assert other_public.decode() not in text


# --- hostile input ----------------------------------------------------------------------


def _real_outage_log() -> bytes:
    port = held_closed_port()
    return gate_log(
        ["wait", "--host", "127.0.0.1", "--port", str(port), *FAST_WAIT, "--timeout", "1"],
        timeout=after_deadline(1),
    )


def test_cut_lines_interleaved_output_and_garbage_never_break_it() -> None:
    """A real log cut at random places, with runner output, foreign JSON, binary garbage
    and lines from other versions of the gate (missing or mistyped fields, unknown events)
    mixed in: always exit 0 with the gate's story, and the unreadable lines counted."""
    real = _real_outage_log().splitlines(keepends=True)
    rng = random.Random(20261123)
    other_versions = [
        b'{"event": "gate.start"}\n',
        b'{"event": "gate.attempt_failed", "attempt": "x", "elapsed_s": "abc", '
        b'"timestamp": "yesterday", "reason": 5, "suppressed": -3}\n',
        b'{"event": "gate.future_event", "whatever": [1, 2]}\n',
        b'{"event": "gate.ready", "rtt_ms": null}\n',
        b'{"event": "gate.attempt_failed", "target": {"not": "a string"}}\n',
        b'[1, 2, "gate.start"]\n',
        b'{"event": ["gate.exec"]}\n',
    ]
    for trial in range(20):
        lines = list(real)
        cut = rng.randrange(len(lines))
        lines[cut] = lines[cut][: rng.randrange(len(lines[cut]))]  # cut mid-line
        lines.insert(rng.randrange(len(lines)), b"INFO runner: strategy loaded\n")
        lines.insert(rng.randrange(len(lines)), b'{"level": "info", "event": "tick"}\n')
        lines.insert(rng.randrange(len(lines)), bytes(rng.randrange(256) for _ in range(300)))
        lines.insert(rng.randrange(len(lines)), rng.choice(other_versions))
        done = explain(b"".join(lines), *(["--json"] if trial % 2 else []))
        assert done.code == 0, done.stderr
        assert done.stderr == ""


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n\n\n",
        b"\x00" * 10000,
        bytes(range(256)) * 100,
        b'{"event": "gate.start", ' * 1000,
        b"x" * (3 * 1024 * 1024),  # one 3 MiB line, no newline
        b'{"event": "gate.start", "x": ' + b"[" * 100000 + b"]" * 100000 + b"}\n",
        "αβγ 日本語 \u202e\n".encode(),
    ],
    ids=["empty", "blank", "nul", "all-bytes", "unterminated", "huge-line", "deep", "unicode"],
)
def test_input_without_a_readable_gate_line_says_so_and_exits_1(data: bytes) -> None:
    done = explain(data)
    assert done.code == 1
    assert "No line of the gate was found" in done.stdout


def test_a_gate_line_after_garbage_and_a_huge_line_is_still_read() -> None:
    data = bytes(range(256)) * 10 + b"\n" + b"y" * (1024 * 1024) + b"\n" + _real_outage_log()
    done = explain(data, "--json")
    assert done.code == 0
    machine = json.loads(done.stdout)
    assert machine["runs"][0]["outcome"] == "timeout"
    assert machine["lines"]["overlong"] == 1


# The backstop sits behind this test's hang guards, after_deadline(1) + COMMAND_S = 71 s, so
# that a slow explain ends in its own TimeoutExpired, not in pytest-timeout's 60 s.
@pytest.mark.timeout(120)
def test_memory_stays_bounded_on_a_long_log(tmp_path: Path) -> None:
    """About 60 MB of gate lines (a 20 000-restart loop with flapping reasons): the peak
    RSS stays far below the input size, because lines are streamed and runs summarised.
    Time and memory figures are in benchmarks/bench_explain.py; this guards the design."""
    one_run = _real_outage_log()
    flapping = b"".join(
        json.dumps(
            {
                "timestamp": "2026-11-23T00:00:01Z",
                "level": "warning",
                "event": "gate.attempt_failed",
                "attempt": i,
                "reason": ("refused", "timeout")[i % 2],
                "hint": "h" * 200,
            }
        ).encode()
        + b"\n"
        for i in range(300)
    )
    path = tmp_path / "long.log"
    with path.open("wb") as out:
        while out.tell() < 60 * 1024 * 1024:
            out.write(one_run + flapping)
    script = (
        "import resource, subprocess, sys; "
        f"subprocess.run({[*GATE, 'explain', '--json', str(path)]!r}, "
        "stdout=subprocess.DEVNULL, check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=base_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=COMMAND_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    peak_mib = int(done.stdout) / 1024
    # Memory, not time (load does not change it): ~30 MiB for the interpreter and the
    # gate's imports (28 MiB measured), against 90+ MiB if the 60 MB input were held;
    # 50 MiB leaves 20 MiB above the first and 40 below the second.
    assert peak_mib < 50, peak_mib


def test_missing_file_is_exit_66_in_one_line(tmp_path: Path) -> None:
    done = explain(b"", str(tmp_path / "nope.log"))
    assert done.code == 66
    assert done.stderr.count("\n") == 1
    assert "cannot read" in done.stderr


def test_usage_error_is_one_plain_line_and_64() -> None:
    done = explain(b"", "--bogus")
    assert done.code == 64
    assert done.stderr.startswith("mt5-gate")
    assert "--bogus" in done.stderr
    assert done.stderr.count("\n") == 1


def test_colour_only_on_a_tty_and_never_with_no_color() -> None:
    """Through a pipe, no escape codes; on a pseudo-terminal, bold titles unless NO_COLOR."""
    data = _real_outage_log()
    assert "\x1b[" not in explain(data).stdout
    for no_color, expected in ((None, True), ("1", False)):
        env = base_env(**({"NO_COLOR": no_color} if no_color else {}))
        on_a_terminal = explain(data, env=env, tty=True)
        assert on_a_terminal.code == 0
        assert ("\x1b[1m" in on_a_terminal.stdout) is expected


def test_console_format_prints_a_hint_once_per_reason() -> None:
    port = held_closed_port()
    done = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *FAST_WAIT,
            "--timeout",
            "1",
            "--log-format",
            "console",
        ],
        timeout=after_deadline(1),
        log="text",
    )
    failed = [line for line in done.stderr.splitlines() if "gate.attempt_failed" in line]
    assert len(failed) >= 3
    assert "hint=" in failed[0]
    assert not any("hint=" in line for line in failed[1:])  # same reason: said once


def test_numbers_json_does_not_have_are_unreadable_lines_not_a_crash() -> None:
    """NaN, Infinity and 1e999 parse in Python's json but are not JSON and the gate never
    writes them: such a line is counted as unreadable, and explain still says its piece."""
    data = (
        b'{"event":"gate.start","target":"h:1","deadline_s":1e999}\n'
        b'{"event":"gate.attempt_failed","reason":"refused","attempt":1,"elapsed_s":NaN}\n'
        b'{"event":"gate.attempt_failed","reason":"refused","attempt":2,'
        b'"elapsed_s":-Infinity}\n'
        b'{"event":"gate.timeout","elapsed_s":1e308,"last_reason":"refused"}\n'
    )
    text, machine = explained(data)
    assert machine["lines"]["unreadable"] == 3
    assert machine["runs"][0]["outcome"] == "timeout"
    assert "timeout" in text


def test_a_forged_line_cannot_drive_the_readers_terminal() -> None:
    """Escape sequences in a log line's values (a forged gate line in the runner's output)
    are shown as escapes, never written to the terminal as they are."""
    data = (
        b'{"event":"gate.error","exit_code":"\\u001b[2J70",'
        b'"error":"x\\u001b]0;pwned\\u0007 \\u009b31m"}\n'
    )
    text, _machine = explained(data)
    for control in ("\x1b", "\x07", "\x9b"):
        assert control not in text
    assert "\\x1b[2J70" in text


def test_an_environment_error_is_not_called_a_bug() -> None:
    """Exit 70 with a traceback is a bug to report; exit 70 without one (a file-descriptor
    limit too low) is the environment's, and its hint is the advice."""
    bug = (
        b'{"event":"gate.error","exit_code":70,"error":"internal error: KeyError",'
        b'"exception":"Traceback (most recent call last): ..."}\n'
    )
    limit = (
        b'{"event":"gate.error","exit_code":70,"error":"the file-descriptor limit is '
        b'too low","hint":"raise the limit: `ulimit -n 20`"}\n'
    )
    assert "bug in the gate" in explained(bug)[0]
    text = explained(limit)[0]
    assert "bug" not in text
    assert "ulimit -n 20" in text


# --- words that must not mislead, and a terminal on standard input ------------------------


def test_a_bridge_that_refused_every_time_answered_it_did_not_stay_silent(sim: StartSim) -> None:
    """A gateway that answers MAINTENANCE to every PING until the deadline: explain says it
    answered with a refusal, not that it "never answered" (every attempt got a reply)."""
    _sim, port = sim("--bad-status")
    log = gate_log(
        ["wait", "--host", "127.0.0.1", "--port", str(port), *FAST_ATTEMPT, *NEVER_READY_WAIT],
        timeout=after_deadline(NEVER_READY_S),
    )
    text, machine = explained(log)
    run = machine["runs"][0]
    assert run["outcome"] == "timeout", text
    assert {phase["reason"] for phase in run["phases"]} == {"not_ready"}, text
    ending = machine["summary"][2]
    assert "the gateway answered with a refusal every time (exit 69)" in ending, ending
    assert "never answered" not in text, text
    assert "did not answer" not in text, text


def test_a_gateway_that_never_answered_is_still_said_to_have_never_answered() -> None:
    """Only refusals change the words: a closed port never answered."""
    log = gate_log(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(held_closed_port()),
            *FAST_WAIT,
            "--timeout",
            "0.5",
        ],
        timeout=after_deadline(0.5),
    )
    text, _machine = explained(log)
    assert "the gateway never answered (exit 69)" in text, text


def test_ready_in_a_pause_is_told_as_the_pause_after_the_failed_attempt() -> None:
    """gate.ready through the PING queued in the pause after attempt 3: the timeline says
    "during the pause after attempt 3", not "ready (attempt 3" after attempt 3 failed."""
    data = (
        b'{"event":"gate.start","target":"h:1","timestamp":"2026-12-02T09:37:48Z"}\n'
        + b"".join(
            b'{"event":"gate.attempt_failed","reason":"refused","attempt":%d,'
            b'"elapsed_s":%d}\n' % (n, n)
            for n in (1, 2, 3)
        )
        + b'{"event":"gate.ready","attempt":3,"via":"pause","elapsed_s":4.0}\n'
    )
    text, _machine = explained(data)
    assert "ready (during the pause after attempt 3)" in text, text
    assert "ready (attempt" not in text, text


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    """A pseudo-terminal (leader, follower); both ends closed after the test."""
    leader, follower = os.openpty()
    yield leader, follower
    for fd in (leader, follower):
        with contextlib.suppress(OSError):
            os.close(fd)


def test_on_a_terminal_it_says_it_reads_standard_input(
    spawn: Spawn, terminal: tuple[int, int]
) -> None:
    """`mt5-gate explain` typed alone: one line on stderr says it reads standard input and
    how to end it, instead of silently waiting; Ctrl-D then ends the input."""
    leader, follower = terminal
    proc = spawn([*GATE, "explain"], env=base_env(), stdin=follower)
    said = proc.wait_for_stderr("standard input", timeout=EVENT_S)
    assert said == (
        "mt5-gate explain: reading a gate log from standard input (Ctrl-D ends it; or give a file)"
    ), proc.stderr_lines
    os.write(leader, b"\x04")  # Ctrl-D at the start of a line: end of input
    assert proc.wait(timeout=EXIT_S) == 1, proc.stdout_lines  # no line of the gate
    assert proc.stderr_lines == [said]
    assert "No line of the gate was found" in "\n".join(proc.stdout_lines)


def test_a_pipe_or_a_file_gets_no_such_line(tmp_path: Path) -> None:
    """Standard input that is not a terminal (a pipe, `docker logs ... |`): nothing said."""
    assert explain(b"").stderr == ""


def test_reason_prints_the_troubleshooting_section_a_hint_names() -> None:
    """`mt5-gate explain --reason timeout`, the command every timeout hint names, prints
    that section of TROUBLESHOOTING.md; an unknown name is a usage error listing them."""
    docs = (REPO / "docs" / "TROUBLESHOOTING.md").read_text()
    shown = run_gate(["explain", "--reason", "timeout"], log="text")
    assert shown.code == 0, shown.stderr
    assert shown.stdout.startswith("## timeout\n"), shown.stdout
    assert shown.stdout.strip() in docs
    assert "## unreachable" not in shown.stdout  # the section only
    unknown = run_gate(["explain", "--reason", "bogus"], log="text")
    assert unknown.code == 64
    assert unknown.stderr.count("\n") == 1, unknown.stderr
    assert "refused" in unknown.stderr
    both = run_gate(["explain", "--reason", "timeout", "--json"], log="text")
    assert both.code == 64, both.stdout
