"""Bad input is one line and a documented exit code: never 70, a traceback or a hang.

Durations are bounded when parsed; a JMESPath expression too deep is a usage error; a file
the gate is told to read must be a regular file (a FIFO would block ``open()`` forever,
before any deadline); a mesh file of binary bytes says so; a report that cannot be written
to stdout is exit 74; ``sim`` says why it cannot bind; the exit code never depends on
whether the log could be written; and ``explain`` stays linear in the targets it reads.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bounds import COMMAND_S, EXIT_S, after_deadline
from tests.support.cli import Ran, run_gate
from tests.support.helpers import base_env

LOOPBACK = "127.0.0.1"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound by this test and never listened on: refused, and no other
    process can take it while the test runs."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something already listens on."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    """A named pipe nobody writes to: ``open()`` for reading waits for a writer forever."""
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.fixture
def closed_pipe() -> Iterator[int]:
    """The write end of a pipe whose reader is gone: every write is EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "wb"):
        yield write_end


def buffered_env() -> dict[str, str]:
    """As the README's own-image recipe runs the gate: PYTHONUNBUFFERED unset, so a failed
    write stays in Python's buffer until its last flush at exit."""
    env = base_env()
    env.pop("PYTHONUNBUFFERED", None)
    return env


def one_error(ran: Ran, code: int, *words: str) -> str:
    """The run exited ``code`` with one gate.error line holding ``words``; that line."""
    errors = [e for e in ran.events if e.get("event") == "gate.error"]
    assert (ran.code, len(errors)) == (code, 1), (ran.code, ran.stdout, ran.stderr)
    message = str(errors[0]["error"])
    assert all(word in message for word in words), (words, message)
    assert errors[0]["exit_code"] == code, errors[0]
    return message


# --- durations --------------------------------------------------------------------------

# 1e10 s is 1e13 ms: past libzmq's C int of milliseconds (exit 70 before the bound); as
# --timeout, a wait of three centuries.
TOO_LONG = "1e10"


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        ("probe", "--connect-timeout"),
        ("probe", "--reply-timeout"),
        ("health", "--timeout"),
        ("wait", "--timeout"),
        ("wait", "--backoff-initial"),
        ("wait", "--backoff-max"),
    ],
)
def test_a_duration_past_a_day_is_refused_when_parsed(
    command: str, flag: str, closed_port: int
) -> None:
    ran = run_gate([command, "--host", LOOPBACK, "--port", str(closed_port), flag, TOO_LONG])
    if command == "health":  # its contract: one line on stdout, exit 1
        assert ran.code == 1, (ran.code, ran.stdout, ran.stderr)
        assert ran.stdout.startswith("unhealthy: invalid value for --timeout"), ran.stdout
        assert "at most 86400 seconds" in ran.stdout, ran.stdout
        return
    one_error(ran, 64, flag, "at most 86400 seconds")


def test_a_duration_variable_past_a_day_is_refused_too(closed_port: int) -> None:
    env = base_env(GATE_CONNECT_TIMEOUT=TOO_LONG)
    ran = run_gate(["probe", "--host", LOOPBACK, "--port", str(closed_port)], env)
    one_error(ran, 64, "GATE_CONNECT_TIMEOUT", "at most 86400 seconds")


def test_one_day_itself_is_accepted() -> None:
    from entrypoint.settings.options import MAX_DURATION_S, parse_seconds

    assert parse_seconds("86400") == MAX_DURATION_S == 86_400.0


def test_a_mesh_timeout_past_a_day_is_a_usage_error(tmp_path: Path) -> None:
    mesh = tmp_path / "mesh.toml"
    mesh.write_text(
        'include_defaults = false\ntimeout = 1e10\n[[check]]\nkind = "dns"\ntarget = "localhost"\n'
    )
    ran = run_gate(["mesh", "--file", str(mesh)])
    one_error(ran, 64, "at most 86400")


# --- JMESPath -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    ["(" * 3000 + "status" + ")" * 3000, "[" * 3000 + "status" + "]" * 3000, "!" * 3000 + "a"],
    ids=["parentheses", "brackets", "negations"],
)
def test_a_jmespath_expression_too_deep_is_a_usage_error(expression: str) -> None:
    # In process: a RecursionError would be exit 70 with "Traceback" in its gate.error.
    ran = run_gate(["probe", "--host", LOOPBACK, "--ready-when", expression], in_process=True)
    message = one_error(ran, 64, "--ready-when", "nested more than 64 levels")
    assert len(message) < 200, message  # one line, not the expression back


def test_a_reasonably_nested_expression_is_still_accepted() -> None:
    from entrypoint.gateway.judgement import parse_judgement

    judgement = parse_judgement("((((status == 'OK') && !(!(ready)))))", "--ready-when")
    assert judgement.accepts({"status": "OK", "ready": True})


# --- files that are not regular files -------------------------------------------------------


def test_a_fifo_as_a_file_secret_is_refused_at_once(fifo: Path, closed_port: int) -> None:
    request = json.dumps({"action": "PING", "token": f"$file:{fifo}"})
    args = ["--host", LOOPBACK, "--port", str(closed_port), "--ping-request", request]
    ran = run_gate(["wait", "--timeout", "1", *args])  # before: open() blocked forever
    one_error(ran, 64, str(fifo), "a FIFO (named pipe), not a regular file")
    health = run_gate(["health", *args])
    assert health.code == 1, (health.code, health.stdout, health.stderr)
    assert health.stdout.startswith("unhealthy: --ping-request"), health.stdout
    assert "a FIFO (named pipe), not a regular file" in health.stdout, health.stdout


@pytest.mark.parametrize(
    "flag", ["--curve-server-key-file", "--curve-secret-key-file", "--curve-public-key-file"]
)
def test_a_fifo_as_a_curve_key_file_is_refused_at_once(
    flag: str, fifo: Path, tmp_path: Path
) -> None:
    import zmq

    public, secret = zmq.curve_keypair()
    (tmp_path / "server.key").write_bytes(public)
    (tmp_path / "client.key").write_bytes(secret)
    files = {
        "--curve-server-key-file": str(tmp_path / "server.key"),
        "--curve-secret-key-file": str(tmp_path / "client.key"),
    }
    files[flag] = str(fifo)
    args = [word for pair in files.items() for word in pair]
    ran = run_gate(["probe", "--host", LOOPBACK, *args])
    one_error(ran, 64, flag, "a FIFO (named pipe), not a regular file")


@pytest.mark.parametrize(
    ("path", "kind"),
    [("fifo", "a FIFO (named pipe)"), ("/dev/zero", "a character device"), ("/", "a directory")],
)
def test_a_mesh_file_must_be_a_regular_file(path: str, kind: str, fifo: Path) -> None:
    named = str(fifo) if path == "fifo" else path
    ran = run_gate(["mesh", "--file", named])
    one_error(ran, 64, f"mesh file {named}: {kind}, not a regular file")


def test_a_mesh_file_of_binary_bytes_is_a_usage_error(tmp_path: Path) -> None:
    mesh = tmp_path / "mesh.toml"
    mesh.write_bytes(b"timeout = 5\n\xff\xfe\x00\x81binary")
    ran = run_gate(["mesh", "--file", str(mesh)])
    one_error(ran, 64, f"mesh file {mesh}: not UTF-8 text")


def test_explain_reads_a_named_pipe_as_the_stream_it_is(fifo: Path) -> None:
    """A FIFO stays allowed for explain (it reads streams): it waits for the writer, as
    `cat` would, and explains what the writer sent."""
    line = {"event": "gate.start", "level": "info", "target": "gw:5555", "pid": 7}
    with subprocess.Popen(
        [*base_command(), "explain", str(fifo)],
        env=base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        with open(fifo, "w") as writer:  # opens once explain has opened its end
            writer.write(json.dumps(line) + "\n")
        out, err = proc.communicate(timeout=EXIT_S)
    assert proc.returncode == 0, (proc.returncode, out, err)
    assert b"gw:5555" in out, out


def base_command() -> list[str]:
    from tests.support.helpers import GATE

    return list(GATE)


# --- writing: stdout full, stderr gone ------------------------------------------------------


def test_probe_with_stdout_on_a_full_device_exits_74(closed_port: int) -> None:
    with open("/dev/full", "wb") as full:
        ran = run_gate(
            ["probe", "--host", LOOPBACK, "--port", str(closed_port)],
            buffered_env(),
            stdout=full,
        )
    one_error(ran, 74, "mt5-gate probe: cannot write the report to stdout")


@pytest.mark.parametrize("args", [["--reason", "timeout"], ["-"]], ids=["reason", "log"])
def test_explain_with_stdout_on_a_full_device_exits_74(args: list[str]) -> None:
    log = json.dumps({"event": "gate.start", "level": "info", "target": "gw:5555"}) + "\n"
    with open("/dev/full", "wb") as full:
        ran = run_gate(
            ["explain", *args], buffered_env(), stdin=log.encode(), log="text", stdout=full
        )
    assert ran.code == 74, (ran.code, ran.stderr)
    assert ran.stderr == (
        "mt5-gate explain: cannot write the report to stdout: No space left on device\n"
    ), ran.stderr


def test_mesh_with_stdout_on_a_full_device_exits_74(closed_port: int) -> None:
    args = ["mesh", "--host", LOOPBACK, "--port", str(closed_port)]
    with open("/dev/full", "wb") as full:
        ran = run_gate(args, buffered_env(), timeout=COMMAND_S, stdout=full)
    one_error(ran, 74, "mt5-gate mesh: cannot write the report to stdout")


def test_health_with_stdout_on_a_full_device_keeps_its_verdict(closed_port: int) -> None:
    """Docker reads health's exit code: a line nobody can read does not change it."""
    with open("/dev/full", "wb") as full:
        ran = run_gate(
            ["health", "--host", LOOPBACK, "--port", str(closed_port)],
            buffered_env(),
            stdout=full,
        )
    assert (ran.code, ran.stderr) == (1, ""), (ran.code, ran.stderr)


def test_a_timeout_exits_69_with_stderr_on_a_full_device(closed_port: int) -> None:
    with open("/dev/full", "wb") as full:
        ran = run_gate(
            ["wait", "--host", LOOPBACK, "--port", str(closed_port), "--timeout", "0.5"],
            buffered_env(),
            timeout=after_deadline(0.5),
            stderr=full,
        )
    assert ran.code == 69, (ran.code, ran.stdout)


def test_a_timeout_exits_69_with_stderr_on_a_closed_pipe(
    closed_pipe: int, closed_port: int
) -> None:
    ran = run_gate(
        ["wait", "--host", LOOPBACK, "--port", str(closed_port), "--timeout", "0.5"],
        buffered_env(),
        timeout=after_deadline(0.5),
        stderr=closed_pipe,
    )
    assert ran.code == 69, (ran.code, ran.stdout)


# --- sim ----------------------------------------------------------------------------------


@pytest.mark.parametrize("not_zmq", [False, True], ids=["zmq", "not-zmq"])
def test_sim_on_a_busy_port_says_so_and_exits_69(busy_port: int, not_zmq: bool) -> None:
    args = ["sim", "--bind", LOOPBACK, "--port", str(busy_port), "--exit-after", "5"]
    ran = run_gate([*args, *(["--not-zmq"] if not_zmq else []), "--log-format", "json"])
    one_error(ran, 69, "mt5-gate sim: cannot bind", "Address already in use")


def test_sim_on_an_address_not_of_this_host_says_so_and_exits_69() -> None:
    # 192.0.2.1 (TEST-NET-1, RFC 5737) is never a local address: bind fails, nothing is sent.
    args = ["sim", "--bind", "192.0.2.1", "--port", "0", "--exit-after", "5"]
    ran = run_gate([*args, "--log-format", "json"])
    one_error(ran, 69, "cannot bind tcp://192.0.2.1:0", "Cannot assign requested address")


# --- explain is linear ----------------------------------------------------------------------


def test_explain_is_linear_in_the_number_of_targets() -> None:
    """40,000 distinct targets, one failed attempt each. Linear: ~1 s here; when every line
    scanned the phases before it (quadratic), 10,000 took 4-10 s and 40,000 60-212 s."""
    start = {
        "event": "gate.start",
        "level": "info",
        "target": "gw:5555",
        "timestamp": "2026-01-01T00:00:00Z",
    }
    lines = [json.dumps(start)] + [
        json.dumps(
            {
                "event": "gate.attempt_failed",
                "level": "warning",
                "reason": "refused",
                "target": f"tcp://dep{n}:1",
                "timestamp": "2026-01-01T00:00:01Z",
            }
        )
        for n in range(40_000)
    ]
    ran = run_gate(
        ["explain", "--json", "-"],
        stdin=("\n".join(lines) + "\n").encode(),
        log="text",
        timeout=COMMAND_S,
    )
    assert ran.code == 0, (ran.code, ran.stderr)
    # Behaviour bound: 30 s separates linear (~1 s, ~5 s on a loaded machine) from
    # quadratic (60-212 s); the hang guard above would only say "timed out".
    assert ran.took < 30, ran.took
    assert len(json.loads(ran.stdout)["runs"][-1]["phases"]) == 40_000
