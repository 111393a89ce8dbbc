"""Rehearsal: every preset against `mt5-gate sim --dialect NAME`, for real.

The recipes are proven against stand-ins written from each bridge's source
(test_wild_bridges.py); this module proves the simulator lets a user rehearse each of
them, and pins what the log says while a bridge answers "no": the refusal explained once,
the token never logged nor inherited, STATUS refusals shown, mesh and --also judged alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from entrypoint.gateway.presets import PRESETS
from entrypoint.sim.dialects import ALL_DIALECTS
from tests.support.bounds import EXIT_S, NEVER_READY_WAIT
from tests.support.cli import run_gate
from tests.support.helpers import EXEC_PROBE, base_env
from tests.support.processes import Proc, StartGate, StartSim

TOKEN = "tok-3f9a1c77e2"


def rehearse(
    sim: StartSim, dialect: str, tmp_path: Path, *extra: str
) -> tuple[Proc, dict[str, str]]:
    """The simulator speaking ``dialect``, and the variables that point its preset at it."""
    args = ["--dialect", dialect, *extra]
    if dialect == "token":
        token_file = tmp_path / "sim_token"
        token_file.write_text(TOKEN + "\n")
        args += ["--token-file", str(token_file)]
    proc, port = sim(*args)
    listening = proc.wait_for_event("sim.listening")
    env = {
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATE_BRIDGE": dialect,
    }
    if listening.get("pub_port"):  # mt5linux's rpyc server has no PUB port
        env["GATEWAY_PUB_PORT"] = str(listening["pub_port"])
    if listening.get("reply_port"):
        env["GATEWAY_REPLY_PORT"] = str(listening["reply_port"])
    if dialect == "token":
        gate_token = tmp_path / "gate_token"
        gate_token.write_text(TOKEN + "\n")
        env["GATE_PING_REQUEST"] = f'{{"action":"health","token":"$file:{gate_token}"}}'
    return proc, env


def orders(sim: Proc) -> int:
    return sum(e["event"] == "sim.order_attempt" for e in sim.events())


def test_the_simulator_speaks_every_preset() -> None:
    assert set(ALL_DIALECTS) == set(PRESETS)


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_each_preset_gets_its_simulated_bridge_ready_and_execs_the_runner(
    dialect: str, tmp_path: Path, sim: StartSim, gate: StartGate
) -> None:
    """GATE_BRIDGE=NAME against `sim --dialect NAME`: ready, the runner in the gate's PID,
    not one order attempted."""
    simulated, env = rehearse(sim, dialect, tmp_path)
    proc = gate("wait", "--", *EXEC_PROBE, env=base_env(**env))
    assert proc.wait(EXIT_S) == 0, proc.stderr_lines
    start = proc.wait_for_event("gate.start")
    assert f"ready pid={start['pid']}" in proc.stdout_lines
    assert orders(simulated) == 0


@pytest.mark.parametrize("dialect", ["heartbeat", "token", "plain-ok", "dwx"])
def test_without_its_preset_each_bridge_is_never_ready(
    dialect: str, tmp_path: Path, sim: StartSim
) -> None:
    """The defaults against another dialect: never ready, and the hint names the target."""
    _sim, env = rehearse(sim, dialect, tmp_path)
    port = env["GATEWAY_PORT"]
    ran = run_gate(["wait", "--host", "127.0.0.1", "--port", port, *NEVER_READY_WAIT])
    failed = [e for e in ran.events if e["event"] == "gate.attempt_failed"]
    assert ran.code in (69, 78)  # dwx's PULL is not a REP: a configuration error
    assert "gate.ready" not in {e["event"] for e in ran.events}
    assert f"127.0.0.1:{port}" in failed[0]["hint"]  # the real target, not 5555


def test_the_same_refusal_three_times_is_explained_once(tmp_path: Path, sim: StartSim) -> None:
    """The heartbeat bridge's "Invalid request structure": one gate.reply_rejected line."""
    _sim, env = rehearse(sim, "heartbeat", tmp_path)
    ran = run_gate(
        ["wait", "--host", "127.0.0.1", "--port", env["GATEWAY_PORT"], *NEVER_READY_WAIT]
    )
    rejected = [e for e in ran.events if e["event"] == "gate.reply_rejected"]
    assert len(rejected) == 1
    assert "Invalid request structure" in rejected[0]["reply"]
    assert "GATE_READY_WHEN" in rejected[0]["fix"]
    assert sum(e["event"] == "gate.attempt_failed" for e in ran.events) > 3  # it kept waiting


@pytest.mark.parametrize("state", ["TRADING_IS_NOT_ALLOWED", "NO_BROKER_CONNECTION"])
def test_a_simulated_broker_state_is_rehearsed_as_the_real_one(
    state: str, tmp_path: Path, sim: StartSim
) -> None:
    _sim, env = rehearse(sim, "dwx", tmp_path, "--broker-state", state)
    ran = run_gate(["wait", *NEVER_READY_WAIT], env=base_env(**env))
    failed = [e for e in ran.events if e["event"] == "gate.attempt_failed"]
    assert ran.code == 69
    assert {e["broker_state"] for e in failed} == {
        state.lower().replace("is_not_allowed", "not_allowed")
    }


def test_token_bridge_is_never_ready_without_its_token_or_with_a_wrong_one(
    tmp_path: Path, sim: StartSim
) -> None:
    """No token, or another token: {"ok": false, "error": "unauthorized"}, never ready."""
    _sim, env = rehearse(sim, "token", tmp_path)
    wrong_token = tmp_path / "wrong"
    wrong_token.write_text("not-the-token\n")
    missing = run_gate(
        ["wait", *NEVER_READY_WAIT],
        env=base_env(**{**env, "GATE_PING_REQUEST": '{"action":"health"}'}),
    )
    wrong = run_gate(
        ["wait", *NEVER_READY_WAIT],
        env=base_env(
            **{**env, "GATE_PING_REQUEST": f'{{"action":"health","token":"$file:{wrong_token}"}}'}
        ),
    )
    for ran in (missing, wrong):
        failed = [e for e in ran.events if e["event"] == "gate.attempt_failed"]
        assert ran.code == 69
        assert {e["reason"] for e in failed} == {"not_ready"}
        assert "unauthorized" in failed[0]["error"]


def test_the_token_is_never_logged_nor_inherited_by_the_runner(
    tmp_path: Path, sim: StartSim
) -> None:
    """The token reaches the bridge, and nothing else: not the log, not the runner's env."""
    _sim, env = rehearse(sim, "token", tmp_path)
    ran = run_gate(["wait", "--log-level", "debug", "--", "env"], env=base_env(**env))
    helped = run_gate(["wait", "--help"], env=base_env(**env))
    assert (ran.code, helped.code) == (0, 0)
    logged = " ".join(str(e) for e in ran.events)
    assert "$file:" in logged  # the template is logged, with the path...
    assert any(e["event"] == "gate.request" and "***" in e["request"] for e in ran.events)
    for text in (logged, ran.stdout, helped.stdout):
        assert TOKEN not in text  # ...never the token


def test_a_token_echoed_back_by_the_bridge_is_scrubbed_from_every_log_line(tmp_path: Path) -> None:
    """A bridge that quotes the request in its refusal: the log shows ***, not the token."""
    import zmq

    from tests.support import servers

    def echo_refusal(request: list[bytes]) -> list[bytes]:
        quoted = json.loads(request[0])
        return [json.dumps({"ok": False, "error": f"bad request {quoted}"}).encode()]

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with servers.zmq_server(zmq.ROUTER, echo_refusal) as port:
        env = base_env(
            GATEWAY_HOST="127.0.0.1",
            GATEWAY_PORT=str(port),
            GATE_PING_REQUEST=f'{{"action":"health","token":"$file:{token_file}"}}',
        )
        waited = run_gate(["wait", *NEVER_READY_WAIT], env=env)
        health = run_gate(["health"], env=env)
    failed = next(e for e in waited.events if e["event"] == "gate.attempt_failed")
    assert "***" in failed["error"]
    for text in (json.dumps(waited.events), health.stdout):
        assert TOKEN not in text


def test_the_default_ping_is_an_order_on_a_trade_on_action_ea(
    tmp_path: Path, sim: StartSim
) -> None:
    """Why the preset exists: the default PING goes to OrderSend on every attempt."""
    simulated, env = rehearse(sim, "trade-on-action", tmp_path)
    ran = run_gate(
        ["wait", "--host", "127.0.0.1", "--port", env["GATEWAY_PORT"], *NEVER_READY_WAIT]
    )
    assert ran.code == 69  # the EA refuses the "order" (no volume): never ready...
    assert orders(simulated) >= 2  # ...and every attempt was an order attempt


def test_status_refusal_is_shown_as_unavailable_with_its_reply(
    tmp_path: Path, sim: StartSim
) -> None:
    """A STATUS the bridge refuses (heartbeat: Unknown action) is available: false."""
    _sim, env = rehearse(sim, "heartbeat", tmp_path)
    env["GATE_STATUS_REQUEST"] = (
        '{"action":"STATUS","req_id":"$uuid","timestamp":"$now_epoch","payload":{}}'
    )
    ran = run_gate(["wait"], env=base_env(**env))
    status = next(e for e in ran.events if e["event"] == "gate.status")
    assert ran.code == 0
    assert status["available"] is False
    assert status["reason"] == "not_ready"
    assert "Unknown action: STATUS" in status["reply"]


def test_mesh_judges_the_gateway_ping_by_the_same_dialect(tmp_path: Path, sim: StartSim) -> None:
    """mesh's gateway PING check passes with the preset, fails not_ready without it."""
    _sim, env = rehearse(sim, "heartbeat", tmp_path)
    with_preset = run_gate(["mesh", "--json"], env=base_env(**env))
    without = run_gate(["mesh", "--json", "--host", "127.0.0.1", "--port", env["GATEWAY_PORT"]])

    def gateway_ping(stdout: str) -> dict[str, Any]:
        checks = json.loads(stdout)["checks"]
        return dict(next(c for c in checks if c["name"].startswith("gateway PING")))

    assert gateway_ping(with_preset.stdout)["status"] == "pass"
    failed = gateway_ping(without.stdout)
    assert (failed["status"], failed["reason"]) == ("fail", "not_ready")


def test_also_zmq_req_is_asked_and_judged_like_the_gateway(tmp_path: Path, sim: StartSim) -> None:
    """--also zmq+req:// to a second heartbeat bridge: ready with the preset; a bridge of
    another dialect there is never ready, and the timeout names it."""
    _sim, env = rehearse(sim, "heartbeat", tmp_path)
    _other, other = rehearse(sim, "heartbeat", tmp_path)
    _third, wrong_port = sim()
    good = run_gate(
        ["wait", "--also", f"zmq+req://127.0.0.1:{other['GATEWAY_PORT']}"], env=base_env(**env)
    )
    bad = run_gate(
        ["wait", "--also", f"zmq+req://127.0.0.1:{wrong_port}", *NEVER_READY_WAIT],
        env=base_env(**env),
    )
    assert good.code == 0
    ready = next(e for e in good.events if e["event"] == "gate.dependency_ready")
    assert "SUCCESS" in ready["detail"]
    assert bad.code == 69
    timeout = next(e for e in bad.events if e["event"] == "gate.timeout")
    assert timeout["target"] == f"zmq+req://127.0.0.1:{wrong_port}"
    assert timeout["last_reason"] == "not_ready"
