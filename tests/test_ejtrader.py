"""``--bridge ejtrader``: ejtraderMT's EA, against its stand-in (tests/standins/ejtrader_ea.py).

The recipe of docs/BRIDGES.md, verbatim, in every state: healthy (ready, the runner
exec'd), Algo Trading off, expert trading off, not logged in (never ready, the state named
with what to do) with ``wait``, ``health`` and ``probe``; no STATUS, no TRADE, no CONFIG
and no empty request ever reaches the EA.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.bounds import EXIT_S, NEVER_READY_S, NEVER_READY_WAIT, after_deadline
from tests.support.cli import run_gate
from tests.support.helpers import EXEC_PROBE
from tests.support.processes import StartGate, StartSim, StartStandIn
from tests.support.recipes import (
    events_of,
    failures,
    recipe_env,
    start_ejtrader,
)

REFUSING = [
    ("trading_allowed=0", "algo_trading_off", "Algo Trading"),
    ("bot_trading=0", "ea_trading_off", "Allow Algo Trading"),
    ("logged_in=0", "not_logged_in", "Login to Trade Account"),
]


def test_the_recipe_is_ready_and_sends_only_account(
    tmp_path: Path, standin: StartStandIn, gate: StartGate
) -> None:
    ea, ports = start_ejtrader(standin)
    env = recipe_env("ejtrader", ports, tmp_path)
    proc = gate("wait", "--", *EXEC_PROBE, env=env)
    assert proc.wait(EXIT_S) == 0, proc.stderr_lines
    assert proc.wait_for_event("gate.ready")["attempt"] == 1
    health, probe = run_gate(["health"], env=env), run_gate(["probe"], env=env)
    assert (health.code, probe.code) == (0, 0), (health.stdout, probe.stdout)
    assert "answered ACCOUNT" in health.stdout
    sent = {e["bytes"] for e in events_of(ea, "request")}
    assert sent == {'{"action":"ACCOUNT"}'}, sent  # no STATUS: the EA knows none
    assert events_of(ea, "wedged") == []


@pytest.mark.parametrize(("line", "state", "says"), REFUSING)
def test_never_ready_in_a_refusing_state_and_each_door_names_it(
    line: str, state: str, says: str, tmp_path: Path, standin: StartStandIn
) -> None:
    state_file = tmp_path / "ea_state"
    state_file.write_text(line + "\n")
    _ea, ports = start_ejtrader(standin, "--state-file", str(state_file))
    env = recipe_env("ejtrader", ports, tmp_path)
    ran = run_gate(["wait", *NEVER_READY_WAIT], env=env, timeout=after_deadline(NEVER_READY_S))
    failed = failures(ran.events)
    assert ran.code == 69, ran.events
    assert {e["reason"] for e in failed} == {"not_ready"}, failed
    assert {e["broker_state"] for e in failed} == {state}, failed
    assert says in failed[0]["hint"], failed[0]
    assert '"server"' in failed[0]["error"]  # the EA's own reply is kept
    health = run_gate(["health"], env=env)
    assert health.code == 1, health.stdout
    assert state in health.stdout, health.stdout
    probe = run_gate(["probe"], env=env)
    assert probe.code == 1, probe.stdout
    assert f"fix: {state}" in probe.stdout, probe.stdout


def test_a_terminal_that_logs_in_while_the_gate_waits_is_ready_at_the_next_attempt(
    tmp_path: Path, standin: StartStandIn, gate: StartGate
) -> None:
    state_file = tmp_path / "ea_state"
    state_file.write_text("logged_in=0\n")
    _ea, ports = start_ejtrader(standin, "--state-file", str(state_file))
    env = recipe_env("ejtrader", ports, tmp_path)
    proc = gate(
        "wait", "--backoff-initial", "0.1", "--backoff-max", "0.3", "--", *EXEC_PROBE, env=env
    )
    assert proc.wait_for_event("gate.attempt_failed")["broker_state"] == "not_logged_in"
    state_file.write_text("\n")
    assert proc.wait(EXIT_S) == 0, proc.stderr_lines


@pytest.mark.parametrize(
    "request_text",
    [
        '{"action":"TRADE","actionType":"ORDER_TYPE_BUY","symbol":"EURUSD","volume":0.01}',
        '{"action":"CONFIG","symbol":"EURUSD","chartTF":"M1"}',
        "",
        "   ",
    ],
)
@pytest.mark.parametrize("command", ["wait", "health", "probe"])
def test_trade_config_and_an_empty_request_never_reach_the_ea(
    request_text: str, command: str, tmp_path: Path, standin: StartStandIn
) -> None:
    """Refused at start, in one line (health: its one unhealthy line, exit 1); the EA
    receives nothing, so its single REP is never wedged. (An empty variable is an unset
    one: the flag is how an empty request can be asked for.)"""
    ea, ports = start_ejtrader(standin)
    env = recipe_env("ejtrader", ports, tmp_path)
    ran = run_gate([command, "--ping-request", request_text], env=env)
    said = (ran.stdout + ran.stderr).strip().splitlines()
    assert ran.code == (1 if command == "health" else 64), (ran.code, said)
    assert len(said) == 1, said
    assert events_of(ea, "request") == []
    fine = run_gate(["health"], env=recipe_env("ejtrader", ports, tmp_path))
    assert fine.code == 0, fine.stdout  # the EA still answers: nothing wedged it


def test_what_an_empty_request_would_do_to_the_ea(tmp_path: Path, standin: StartStandIn) -> None:
    """Why the refusal matters: the stand-in, like the EA, never answers an empty frame,
    and from then on nobody gets an answer (the recipe's health included)."""
    import zmq

    ea, ports = start_ejtrader(standin)
    with zmq.Context() as ctx, ctx.socket(zmq.REQ) as req:
        req.setsockopt(zmq.LINGER, 0)
        req.connect(f"tcp://127.0.0.1:{ports['GATEWAY_PORT']}")
        req.send(b"")
        ea.wait_for(lambda e: e["event"] == "wedged")
    env = recipe_env("ejtrader", ports, tmp_path, GATE_REPLY_TIMEOUT="1")
    health = run_gate(["health"], env=env)
    assert health.code == 1, health.stdout
    assert "no_reply" in health.stdout, health.stdout


@pytest.mark.parametrize("state", ["algo_trading_off", "ea_trading_off", "not_logged_in"])
def test_the_simulator_rehearses_each_refusing_state(state: str, sim: StartSim) -> None:
    """`mt5-gate sim --dialect ejtrader --broker-state STATE`: the preset is never ready
    against it, and names the state."""
    _simulator, port = sim("--dialect", "ejtrader", "--broker-state", state)
    env = {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port), "GATE_BRIDGE": "ejtrader"}
    ran = run_gate(["wait", *NEVER_READY_WAIT], env=env, timeout=after_deadline(NEVER_READY_S))
    assert ran.code == 69, ran.events
    assert {e["broker_state"] for e in failures(ran.events)} == {state}
