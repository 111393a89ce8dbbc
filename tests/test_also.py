"""`mt5-gate wait --also URL`: every dependency must be ready before the exec."""

from __future__ import annotations

import socket

from tests.support.bounds import EXIT_S, FAST_WAIT
from tests.support.cli import run_gate
from tests.support.helpers import base_env, free_port
from tests.support.processes import StartGate, StartSim
from tests.support.real_servers import postgres_server, redis_server
from tests.support.sockets import held_closed_port


def test_all_dependencies_ready_then_exec(sim: StartSim) -> None:
    """Gateway + Redis + PostgreSQL + TCP + PUB: each logged ready, then the exec."""
    simulator, port = sim()
    pub_port = int(simulator.wait_for_event("sim.listening")["pub_port"])
    with redis_server("pw-redis") as redis_url, postgres_server() as pg_url:
        ran = run_gate(
            [
                "wait",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *FAST_WAIT,
                "--also",
                redis_url,
                "--also",
                pg_url,
                "--also",
                f"tcp://127.0.0.1:{port}",
                "--also",
                f"zmq+sub://127.0.0.1:{pub_port}",
                "--",
                "echo",
                "runner-started",
            ]
        )
    assert ran.code == 0
    assert ran.stdout.strip() == "runner-started"
    ready = {e["target"] for e in ran.events if e["event"] == "gate.dependency_ready"}
    assert len(ready) == 4
    assert ran.events[-1]["event"] == "gate.exec"
    text = repr(ran.events)
    assert "pw-redis" not in text
    assert "s3cret" not in text
    start = ran.events[0]
    assert start["event"] == "gate.start"
    assert any(":***@" in label for label in start["also"])


def test_late_dependency_is_waited_for(sim: StartSim, gate: StartGate) -> None:
    """A TCP dependency that starts listening later holds the exec until it does."""
    _simulator, port = sim()
    dep_port = free_port()
    proc = gate(
        "wait",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *FAST_WAIT,
        "--also",
        f"tcp://127.0.0.1:{dep_port}",
        "--",
        "echo",
        "go",
    )
    failed = proc.wait_for_event("gate.attempt_failed")
    assert failed["target"] == f"tcp://127.0.0.1:{dep_port}"
    assert failed["reason"] == "refused"
    assert proc.stdout_lines == []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", dep_port))
        listener.listen()
        assert proc.wait(timeout=EXIT_S) == 0
    assert proc.stdout_lines == ["go"]


def test_dead_dependency_ends_with_69_naming_the_target(sim: StartSim) -> None:
    """A dependency that never comes: gate.timeout names it, exit 69, runner never runs."""
    _simulator, port = sim()
    dead = f"tcp://127.0.0.1:{held_closed_port()}"
    ran = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *FAST_WAIT,
            "--timeout",
            "1",
            "--also",
            dead,
            "--",
            "echo",
            "must-not-run",
        ]
    )
    assert ran.code == 69
    assert ran.stdout == ""
    assert ran.events[-1]["event"] == "gate.timeout"
    assert ran.events[-1]["target"] == dead


def test_with_everything_down_the_timeout_names_the_gateway_every_time() -> None:
    """The gateway and a dependency both down: the deadline they share ends both waits at
    once, and gate.timeout names the gateway, not whichever thread noticed first (it named
    the dependency in some runs, so the same outage ended with a different last line)."""
    dead = f"tcp://127.0.0.1:{held_closed_port()}"
    for _run in range(4):  # the race went either way, about one run in three
        ran = run_gate(
            [
                "wait",
                "--host",
                "127.0.0.1",
                "--port",
                str(held_closed_port()),
                *FAST_WAIT,
                "--timeout",
                "0.5",
                "--also",
                dead,
            ]
        )
        assert ran.code == 69
        timeout = ran.events[-1]
        assert timeout["event"] == "gate.timeout"
        assert "target" not in timeout, timeout  # a dependency's timeout carries its target
        assert timeout["error"].startswith("the gateway did not answer"), timeout


def test_wrong_redis_password_is_a_configuration_error_78(sim: StartSim) -> None:
    """Credentials rejected three times: exit 78 quickly, password never logged."""
    _sim, port = sim()
    with redis_server("good-pw") as url:
        ran = run_gate(
            [
                "wait",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *FAST_WAIT,
                "--also",
                url.replace("good-pw", "bad-pw"),
            ]
        )
    assert ran.code == 78
    # Three rejected attempts (FAST_WAIT: ~0.5 s, plus start-up: ~1.5 s loaded) end it, not the
    # 600 s default deadline (run_gate's 30 s guard would stop that): 8 s of room.
    assert ran.took < 10, (ran.took, ran.events)
    assert ran.events[-1]["event"] == "gate.error"
    assert ran.events[-1]["reason"] == "auth"
    assert "bad-pw" not in repr(ran.events)


def test_gate_also_variable_is_comma_separated(sim: StartSim) -> None:
    """GATE_ALSO lists dependencies like repeated --also flags."""
    _simulator, port = sim()
    dead1, dead2 = f"tcp://127.0.0.1:{held_closed_port()}", f"tcp://127.0.0.1:{held_closed_port()}"
    ran = run_gate(
        ["wait", "--host", "127.0.0.1", "--port", str(port), *FAST_WAIT, "--timeout", "0.8"],
        env=base_env(GATE_ALSO=f"{dead1}, {dead2}"),
    )
    assert ran.code == 69
    assert ran.events[0]["also"] == [dead1, dead2]


def test_bad_dependency_url_is_a_usage_error() -> None:
    """An unknown scheme or a missing port fails at once with 64."""
    for url in ("ftp://x:1", "tcp://nohost", "zmq+sub://h:99999"):
        ran = run_gate(["wait", "--host", "127.0.0.1", "--also", url])
        assert ran.code == 64
        assert "--also / GATE_ALSO" in ran.events[0]["error"]
        # Rejected at start (~0.1 s, ~1.5 s loaded), not after waiting for 127.0.0.1:5555
        # until the 600 s default deadline; widened from 5 s to leave 8 s for a loaded CPU.
        assert ran.took < 10, (ran.took, ran.events)


def test_a_dependency_gets_its_own_hint_not_the_gateways(sim: StartSim) -> None:
    """A refused Redis or TCP dependency: the hint names the dependency and what the reason
    means for any service, never the MT5 bridge, Windows or its firewall."""
    _sim, port = sim()
    ran = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *FAST_WAIT,
            "--timeout",
            "1",
            "--also",
            f"tcp://127.0.0.1:{held_closed_port()}",
        ]
    )
    assert ran.code == 69
    failed = [e for e in ran.events if e["event"] == "gate.attempt_failed"]
    assert failed
    assert all(e["target"].startswith("tcp://") for e in failed)
    hint = failed[0]["hint"]
    assert "nothing listens on its port" in hint
    assert "mt5-gate explain --reason dependencies" in hint
    for gateway_word in ("MT5", "Windows", "netstat"):
        assert gateway_word not in hint
