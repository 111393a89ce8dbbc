"""`mt5-gate health`, the compose healthcheck, against real peers on loopback."""

from __future__ import annotations

import sys

from tests.support import servers
from tests.support.bounds import EXIT_S
from tests.support.cli import run_gate
from tests.support.helpers import base_env
from tests.support.processes import Spawn, StartGate, StartSim
from tests.support.sockets import held_closed_port


def test_health_healthy_and_unhealthy_with_one_short_line(sim: StartSim) -> None:
    """health: exit 0 with one line when the gateway answers, 1 with one line when not."""
    _simulator, port = sim()
    good = run_gate(["health"], base_env(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(port)))
    bad = run_gate(
        ["health"], base_env(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(held_closed_port()))
    )
    assert good.code == 0
    assert good.stdout.startswith("healthy: ")
    assert bad.code == 1
    assert bad.stdout.startswith("unhealthy: ")
    for done in (good, bad):
        assert done.stdout.count("\n") == 1
        assert len(done.stdout) <= 201
        assert done.stderr == ""


def test_health_is_bounded_by_its_timeout_not_gate_timeout() -> None:
    """A silent peer: health gives up at GATE_HEALTH_TIMEOUT (0.5 s), ignoring GATE_TIMEOUT."""
    with servers.tcp_server(servers.silent) as port:
        done = run_gate(
            ["health"],
            base_env(
                GATEWAY_HOST="127.0.0.1",
                GATEWAY_PORT=str(port),
                GATE_TIMEOUT="600",
                GATE_HEALTH_TIMEOUT="0.5",
            ),
        )
    assert done.code == 1
    assert "no_reply" in done.stdout
    # Given up at the 0.5 s GATE_HEALTH_TIMEOUT (+ start-up: ~0.1 s, ~1.5 s loaded), not at
    # health's 3 s default (never under 3 s, whatever the load) nor GATE_TIMEOUT's 600 s:
    # 2.5 s of room for start-up and exit.
    assert done.took < 3.0, (done.took, done.stdout, done.stderr[-2000:])


def test_health_against_a_frozen_gateway_is_no_reply_20_of_20_with_both_cores_busy(
    spawn: Spawn, gate: StartGate
) -> None:
    """A silent peer (a frozen gateway's kernel accepts, nobody answers) is no_reply every
    time, never a firewall "timeout", even with both cores busy: the connection stage can
    no longer spend the reply stage's share of the budget."""
    for _core in range(2):  # busy loops, killed after the test
        spawn([sys.executable, "-c", "while True: pass"])
    with servers.tcp_server(servers.silent) as port:
        env = base_env(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(port), GATE_HEALTH_TIMEOUT="1")
        verdicts = []
        for _batch in range(5):  # 4 at a time: 20 runs in about 5 health timeouts
            runs = [gate("health", env=env) for _ in range(4)]
            for run in runs:
                run.wait(timeout=EXIT_S)
            verdicts += ["\n".join(run.stdout_lines) for run in runs]
    reasons = [
        line.split()[2].rstrip(":") if line.startswith("unhealthy") else line for line in verdicts
    ]
    assert reasons == ["no_reply"] * 20, verdicts


def test_health_misconfiguration_is_1_never_64_or_2() -> None:
    """health with no host or a bad value: exit 1 and one line (Docker knows only 0/1)."""
    missing = run_gate(["health"])
    invalid = run_gate(["health", "--host", "127.0.0.1", "--port", "nope"])
    for done in (missing, invalid):
        assert done.code == 1
        assert done.stdout.startswith("unhealthy: ")
        assert done.stdout.count("\n") == 1
