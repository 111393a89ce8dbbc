"""Fail closed: no path from an unexpected error to the exec, and no raw traceback.

Each place on the path to the exec (the --also threads, the name-lookup thread, the
attempt hook, tenacity's wait, before_sleep and stop steps, the pause, the PING queued in
it, the --also check before each attempt, the --also thread's ready log, the ZeroMQ round
trip, STATUS, a log processor, a library's thread, a __del__) gets a failure injected
(tests/support/fault_injection.py); the gate must end with exit 70 and one JSON gate.error,
and the runner must never start. Then the inputs that used to slip through start-up
validation, and hostile start-up environments.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from entrypoint.process import fdlimit
from tests.support.bounds import FAST_WAIT, after_deadline
from tests.support.cli import Ran, run_gate
from tests.support.fault_injection import RUN
from tests.support.helpers import GATE, base_env, free_port, names, parse_lines
from tests.support.processes import StartSim, StartStandIn
from tests.support.sockets import held_closed_port


def injected(kind: str, args: list[str], timeout: float) -> Ran:
    """Run the gate with ``kind`` injected. ``timeout``: after_deadline(N) for the
    ``--timeout N`` in ``args``. Every stderr line must be JSON: a raw traceback fails."""
    return run_gate(
        args, command=[sys.executable, "-c", RUN, kind], timeout=timeout, internal_error=True
    )


@pytest.mark.parametrize(
    "kind",
    [
        "also-probe",
        "also-silent-death",
        "resolve",
        "attempt-hook",
        "pause",
        "watch-pause",
        "status",
        "log-processor",
        "stray-thread",
        "unraisable",
        "next-pause",
        "before-pause",
        "stop-rule",
        "before-attempt",
        "dependency-ready-log",
        "zmq-request",
    ],
)
def test_an_injected_failure_anywhere_on_the_path_ends_with_70_and_no_exec(
    kind: str, sim: StartSim
) -> None:
    port = free_port()
    # A gateway 0.5 s late, so the failure hooks (attempt log, pause, pending PING) run too.
    sim("--port", str(port), "--start-delay", "0.5", wait_listening=False)
    dependency = free_port()
    with _listener(dependency):
        host = "localhost" if kind == "resolve" else "127.0.0.1"
        ran = injected(
            kind,
            [
                "wait",
                "--host",
                host,
                "--port",
                str(port),
                *FAST_WAIT,
                "--timeout",
                "20",
                "--also",
                f"tcp://127.0.0.1:{dependency}",
                "--",
                "echo",
                "runner-started",
            ],
            timeout=after_deadline(20),
        )
    assert ran.code == 70, ran.events
    assert "runner-started" not in ran.stdout
    assert "gate.exec" not in [e["event"] for e in ran.events]
    errors = [e for e in ran.events if e["event"] == "gate.error"]
    assert len(errors) == 1
    assert errors[0]["exit_code"] == 70


def test_a_stop_signal_swallowed_by_a_finalizer_still_ends_the_wait() -> None:
    """SIGTERM handled while a __del__ runs: Python swallows the handler's exception there.
    The gate must still end with 143, not wait out its deadline (the cause of a rare hang
    of test_signals_at_random_moments_always_end_the_gate)."""
    ran = injected(
        "signal-in-finalizer",
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(held_closed_port()),
            *FAST_WAIT,
            "--timeout",
            "30",
            "--",
            "echo",
            "runner-started",
        ],
        timeout=after_deadline(30),
    )
    assert ran.code == 143
    assert ran.events[-1]["event"] == "gate.signal"
    assert ran.stdout == ""


@pytest.mark.parametrize("kind", ["signal-while-installing", "signal-in-finalizer-at-start"])
def test_a_stop_signal_while_the_gate_starts_is_never_lost(kind: str) -> None:
    """A SIGTERM while the stop handlers are being installed was a raw traceback and exit
    1 (the handler ran before the try that turns it into 143); one swallowed by a
    finalizer between __main__'s handlers and cli's was forgotten (cli's install cleared
    it), and the gate waited out its deadline. Both end with 143 and one gate.signal."""
    ran = injected(
        kind,
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(held_closed_port()),
            *FAST_WAIT,
            "--timeout",
            "5",
        ],
        timeout=after_deadline(5),
    )
    assert ran.code == 143, ran.events
    assert ran.events[-1]["event"] == "gate.signal"
    assert ran.events[-1]["signal"] == "SIGTERM"
    assert "gate.timeout" not in names(ran.events)


def _listener(port: int) -> Any:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    return sock


# --- inputs that used to pass validation and fail (open) later ---------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/\u00e9tat",
        "http://127.0.0.1:{port}/a b",
        "redis://127.0.0.1:{port}/0?socket_timeout=abc",
        "redis://127.0.0.1:{port}/notanumber",
        "redis://127.0.0.1:{port}/0?no_such_option=1",
        "redis://127.0.0.1:{port}/0?socket_timeout=-1",
        "postgresql://u@127.0.0.1:{port}/db?sslmode=bogus",
        "postgresql://u@127.0.0.1:{port}/db?connect_timeout=soon",
        "postgresql://u@127.0.0.1:{port}/db?no_such_option=1",
    ],
)
def test_an_also_url_its_client_would_reject_is_a_usage_error_at_start(
    url: str, sim: StartSim
) -> None:
    _sim, port = sim()
    ran = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *FAST_WAIT,
            "--also",
            url.format(port=held_closed_port()),
            "--",
            "echo",
            "runner-started",
        ]
    )
    assert ran.code == 64
    assert ran.stdout == ""
    assert len(ran.events) == 1
    assert "--also / GATE_ALSO" in ran.events[0]["error"]
    # Rejected at start, nothing attempted (~0.1 s, ~1.5 s loaded), not after a wait for the
    # dead dependency until the 600 s default deadline: 8 s of room for a loaded CPU.
    assert ran.took < 10, (ran.took, ran.events)


def test_a_host_with_a_control_character_is_a_usage_error() -> None:
    ran = run_gate(["wait", "--host", "gate\x01way", "--port", "5555"], in_process=True)
    assert ran.code == 64
    assert "GATEWAY_HOST" in ran.events[0]["error"]


# --- start-up environments ---------------------------------------------------------------


def _fds_script(path: str) -> str:
    return (
        "import os\nout = []\nfor fd in range(3):\n    try:\n        os.fstat(fd)\n"
        "        out.append(os.readlink(f'/proc/self/fd/{fd}'))\n    except OSError:\n"
        "        out.append('closed')\n"
        f"open({path!r}, 'w').write(repr(out))\n"
    )


def test_closed_stdio_still_waits_and_the_runner_gets_dev_null(
    sim: StartSim, tmp_path: Any
) -> None:
    """Started with fds 0, 1 and 2 closed: the gate used to die inside structlog; it now
    waits and execs, and the runner finds /dev/null on 0, 1 and 2."""
    _sim, port = sim()
    report = tmp_path / "fds"
    close_stdio = (
        "import os, sys; [os.close(fd) for fd in (0, 1, 2)]; os.execv(sys.argv[1], sys.argv[1:])"
    )
    done = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--",
            sys.executable,
            "-c",
            _fds_script(str(report)),
        ],
        command=[sys.executable, "-c", close_stdio, *GATE],
    )
    assert done.code == 0
    assert report.read_text() == repr(["/dev/null"] * 3)


@pytest.fixture
def unread_pipe() -> Iterator[int]:
    """The write end of a pipe whose read end is already closed (closed after the test)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    yield write_end
    os.close(write_end)


def test_stderr_to_a_pipe_nobody_reads_still_execs(sim: StartSim, unread_pipe: int) -> None:
    """The log reader is gone (EPIPE on every write): the logs are lost, the job is not."""
    _sim, port = sim()
    done = run_gate(
        ["wait", "--host", "127.0.0.1", "--port", str(port), "--", "echo", "runner-started"],
        stderr=unread_pipe,
    )
    assert done.code == 0
    assert done.stdout == "runner-started\n"


@pytest.mark.parametrize(
    "limit",
    [
        (resource.RLIMIT_NOFILE, 16),
        (resource.RLIMIT_AS, 256 * 1024 * 1024),
        (resource.RLIMIT_AS, 64 * 1024 * 1024),
    ],
    ids=["16-fds", "256MiB-address-space", "64MiB-address-space"],
)
def test_tight_limits_work_or_end_with_a_clear_code(limit: tuple[int, int], sim: StartSim) -> None:
    """ulimit -n 16 or a small address space: either ready and exec'd, or one JSON line
    with a documented exit code; never a raw traceback, a hang or a started runner that
    was not ready."""
    _sim, port = sim()
    which, value = limit

    def restrict() -> None:
        resource.setrlimit(which, (value, value))

    # An internal error (70) is one JSON line with its traceback inside: allowed here.
    done = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *FAST_WAIT,
            "--timeout",
            "10",
            "--",
            "echo",
            "runner-started",
        ],
        timeout=after_deadline(10),
        log="text",
        internal_error=True,
        preexec_fn=restrict,
    )
    lines = done.stderr.splitlines()
    assert all(line.startswith("{") for line in lines), done.stderr
    events = [json.loads(line) for line in lines]
    if done.code == 0:
        assert done.stdout == "runner-started\n"
        assert "gate.ready" in [e["event"] for e in events]
    else:
        # Python itself may not start in 64 MiB (1: its own MemoryError before any code of
        # ours runs, which is not the gate's to report); anything after start-up is 70.
        assert done.code in (1, 70), done.stderr
        assert done.stdout == ""
    print(f"{limit}: exit {done.code}")


def test_unwritable_home_and_tmp_change_nothing(sim: StartSim, tmp_path: Any) -> None:
    _sim, port = sim()
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    env = base_env(HOME=str(locked), TMPDIR=str(locked), XDG_CACHE_HOME=str(locked))
    ran = run_gate(
        ["wait", "--host", "127.0.0.1", "--port", str(port), "--", "echo", "runner-started"],
        env=env,
    )
    assert ran.code == 0
    assert ran.stdout == "runner-started\n"
    assert ran.events[-1]["event"] == "gate.exec"


# --- a low file-descriptor limit ---------------------------------------------------------


def _under_ulimit(limits: str, args: list[str], timeout: float) -> Ran:
    """The gate started by a real shell after ``limits`` (``ulimit`` commands). A ``ulimit``
    the shell refuses fails the test, not the gate."""
    done = run_gate(
        args,
        command=["sh", "-c", f'{limits} || exit 99; exec "$@"', "sh", *GATE],
        timeout=timeout,
        log="text",
    )
    assert done.code != 99, done.stderr
    # parse_lines fails on any line that is not JSON: libzmq's abort message would be one.
    return dataclasses.replace(done, events=parse_lines(done.stderr))


# The runner reports the limits it was given: they must be the ones the gate was given.
_REPORT_LIMITS = ["sh", "-c", 'echo "$(ulimit -Sn) $(ulimit -Hn)"']


def _wait_with_a_zmq_target(sim: StartSim, limits: str) -> tuple[Ran, int]:
    """The gate under ``limits``, with a ZeroMQ --also target (the heaviest kind), its
    runner reporting its limits: the run, and the need."""
    _sim, port = sim()
    _other, other_port = sim()
    also = f"zmq+req://127.0.0.1:{other_port}"
    ran = _under_ulimit(
        limits.format(needed=fdlimit.needed(1, 0)),
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *FAST_WAIT,
            "--timeout",
            "10",
            "--also",
            also,
            "--",
            *_REPORT_LIMITS,
        ],
        timeout=after_deadline(10),
    )
    return ran, fdlimit.needed(1, 0)


@pytest.mark.parametrize("soft", [8, 9, 10, 11, 12])
def test_a_low_soft_fd_limit_is_raised_and_the_runner_gets_it_back(
    soft: int, sim: StartSim
) -> None:
    """`ulimit -Sn 8` used to kill the gate inside libzmq (exit 134, non-JSON stderr) or
    end it with "please report this as a bug". The gate raises its soft limit, waits, and
    the runner starts with the soft limit the gate was started with."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard_text = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    ran, _ = _wait_with_a_zmq_target(sim, f"ulimit -Sn {soft}")
    assert ran.code == 0, ran.events
    assert ran.stdout == f"{soft} {hard_text}\n"
    assert "gate.dependency_ready" in [e["event"] for e in ran.events]
    assert ran.events[-1]["event"] == "gate.exec"


def test_a_hard_fd_limit_just_high_enough_is_used(sim: StartSim) -> None:
    """Soft 8 under a hard limit of exactly what the gate needs: raised to it, and back."""
    ran, needed = _wait_with_a_zmq_target(sim, "ulimit -Sn 8 && ulimit -Hn {needed}")
    assert ran.code == 0, ran.events
    assert ran.stdout == f"8 {needed}\n"


def test_ulimit_16_is_enough_for_the_gate_alone(sim: StartSim) -> None:
    """`ulimit -n 16` (hard and soft), the gate with no --also target: it waits and execs."""
    _sim, port = sim()
    ran = _under_ulimit(
        "ulimit -n 16",
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *FAST_WAIT,
            "--timeout",
            "10",
            "--",
            *_REPORT_LIMITS,
        ],
        timeout=after_deadline(10),
    )
    assert ran.code == 0, ran.events
    assert ran.stdout == "16 16\n"
    assert ran.events[-1]["event"] == "gate.exec"


def test_a_two_socket_bridge_needs_its_reply_socket_counted(standin: StartStandIn) -> None:
    """`ulimit -n 16` is enough for `req`, not for a two-socket bridge: one plain exit-70
    line naming the need, never libzmq's abort or "report this as a bug"; with that many
    it waits and execs."""
    need = fdlimit.needed(0, 0, reply_sockets=1)
    ea = standin("dwx_ea", "--pull-port", "0", "--push-port", "0", "--pub-port", "0")
    args = [
        "wait",
        "--host",
        "127.0.0.1",
        "--bridge",
        "dwx",
        "--port",
        str(ea.ports["pull"]),
        "--reply-port",
        str(ea.ports["push"]),
        *FAST_WAIT,
        "--timeout",
        "10",
        "--",
        *_REPORT_LIMITS,
    ]
    low = _under_ulimit("ulimit -n 16", args, timeout=after_deadline(10))
    enough = _under_ulimit(f"ulimit -n {need}", args, timeout=after_deadline(10))
    assert low.code == 70
    assert f"needs {need} open files" in low.events[-1]["error"]
    assert "report this" not in low.events[-1]["error"]
    assert enough.code == 0, enough.events
    assert enough.stdout == f"{need} {need}\n"


# With a tcp:// --also target the gate needs fdlimit.needed(0, 1) = 20.
@pytest.mark.parametrize(
    "limits",
    [
        "ulimit -n 8",
        "ulimit -Sn 8 && ulimit -Hn 8",
        "ulimit -n 12",
        "ulimit -n 16",
        "ulimit -Sn 8 && ulimit -Hn 19",
    ],
)
def test_a_hard_fd_limit_too_low_is_one_plain_error_not_a_crash_or_a_bug(
    limits: str, sim: StartSim
) -> None:
    """The hard limit leaves the gate too few file descriptors for its configuration: exit
    70 at start with one JSON gate.error that says so (the number needed, `ulimit -n`), not
    "a bug"; nothing attempted, and the runner never started."""
    _sim, port = sim()
    needed = fdlimit.needed(0, 1)
    assert needed == 20
    ran = _under_ulimit(
        limits,
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *FAST_WAIT,
            "--timeout",
            "10",
            "--also",
            f"tcp://127.0.0.1:{port}",
            "--",
            "echo",
            "runner-started",
        ],
        timeout=after_deadline(10),
    )
    assert ran.code == 70, ran.events
    assert ran.stdout == ""
    assert [e["event"] for e in ran.events] == ["gate.error"]
    error = ran.events[0]
    assert error["exit_code"] == 70
    assert "file-descriptor limit is too low" in error["error"]
    assert f"needs {needed}" in error["error"]
    assert f"ulimit -n {needed}" in error["hint"]
    assert "bug" not in json.dumps(error)
    assert "exception" not in error  # the environment's fault: no traceback to show


# --- port 0 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:0/",
        "https://127.0.0.1:0/",
        "http://127.0.0.1:00/",
        "redis://127.0.0.1:0",
        "rediss://127.0.0.1:0/0",
        "postgresql://u@127.0.0.1:0/db",
        "postgres://u@127.0.0.1/db?port=0",
        "tcp://127.0.0.1:0",
        "zmq+req://127.0.0.1:0",
        "zmq+sub://127.0.0.1:0",
    ],
)
def test_port_0_is_a_usage_error_for_every_also_kind(url: str) -> None:
    """Nothing listens on port 0: http:// and redis:// used to accept it and wait out the
    deadline (exit 69), while tcp:// and zmq refused it at start. Now every kind does.
    In-process: a wait that started would hang here until the test's timeout."""
    ran = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(held_closed_port()),
            *FAST_WAIT,
            "--timeout",
            "30",
            "--also",
            url,
            "--",
            "echo",
            "runner-started",
        ],
        in_process=True,
    )
    assert ran.code == 64, ran.events
    assert ran.stdout == ""
    assert len(ran.events) == 1
    assert "--also / GATE_ALSO" in ran.events[0]["error"]


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        ("http", "http://127.0.0.1:0/"),
        ("redis", "redis://127.0.0.1:0"),
        ("postgres", "postgresql://u@127.0.0.1:0/db"),
        ("tcp", "127.0.0.1:0"),
        ("zmq_ping", "127.0.0.1:0"),
    ],
)
def test_port_0_is_a_usage_error_in_a_mesh_file(kind: str, target: str) -> None:
    from entrypoint.commands.mesh import build_checks
    from entrypoint.errors import UsageError

    with pytest.raises(UsageError, match="port"):
        build_checks(
            None,
            {},
            {"include_defaults": False, "check": [{"kind": kind, "target": target}]},
            "mesh.toml",
        )
