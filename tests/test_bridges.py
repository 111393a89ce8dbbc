"""Each bridge dialect of docs/BRIDGES.md, against the simulator speaking it, for real.

The recipes are read from the document itself, so what users copy is what is tested:
with its recipe and nothing else, each dialect gets the gate ready and the runner exec'd
in the gate's PID; without it, or with a refusal, the gate is never ready.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import GATE, REPO, Proc, base_env, run_gate, start_sim

RUNNER = [sys.executable, str(REPO / "tests" / "exec_probe.py")]
DOC_TOKEN_PATH = "/run/secrets/bridge_token"
TOKEN = "tok-3f9a1c77e2"
# Short enough to keep the suite fast; the refusals below are answered within
# milliseconds, so 1.5 s is several attempts, never a near miss.
NEVER_READY_TIMEOUT = ["--timeout", "1.5", "--backoff-initial", "0.1", "--backoff-max", "0.3"]


def recipes() -> dict[str, dict[str, str]]:
    """``# recipe: NAME`` env blocks of docs/BRIDGES.md, as variables."""
    text = (REPO / "docs" / "BRIDGES.md").read_text()
    found: dict[str, dict[str, str]] = {}
    for block in re.findall(r"```env\n(.*?)```", text, re.DOTALL):
        lines = block.strip().splitlines()
        name = lines[0].removeprefix("# recipe: ").strip()
        found[name] = dict(line.split("=", 1) for line in lines[1:])
    return found


RECIPES = recipes()


@contextmanager
def bridge(dialect: str, tmp_path: Path) -> Iterator[tuple[Proc, int]]:
    args = ["--dialect", dialect]
    if dialect == "token":
        token_file = tmp_path / "sim_token"
        token_file.write_text(TOKEN + "\n")
        args += ["--token-file", str(token_file)]
    sim, port = start_sim(*args)
    try:
        yield sim, port
    finally:
        sim.stop()


def recipe_env(dialect: str, port: int, tmp_path: Path, token: str = TOKEN
               ) -> dict[str, str]:
    """The recipe's variables, pointed at the simulator (and the token at a real file)."""
    token_file = tmp_path / "bridge_token"
    token_file.write_text(token + "\n")
    variables = {key: value.replace(DOC_TOKEN_PATH, str(token_file))
                 for key, value in RECIPES[dialect].items()}
    variables.update(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(port))
    return base_env(**variables)


def orders(sim: Proc) -> int:
    return sum(e["event"] == "sim.order_attempt" for e in sim.events())


def test_the_document_has_a_recipe_for_every_dialect_the_simulator_speaks() -> None:
    """BRIDGES.md and `sim --dialect` list the same dialects."""
    from entrypoint.commands.sim import DIALECT_NAMES
    from entrypoint.commands.sim_dialects import DIALECTS

    assert set(RECIPES) == set(DIALECT_NAMES) == set(DIALECTS)


@pytest.mark.parametrize("dialect", sorted(RECIPES))
def test_each_recipe_gets_the_gate_ready_and_execs_the_runner_in_its_pid(
        dialect: str, tmp_path: Path) -> None:
    """With the documented variables and nothing else: ready, then the same PID runs."""
    with bridge(dialect, tmp_path) as (sim, port):
        gate = Proc([*GATE, "wait", "--", *RUNNER], env=recipe_env(dialect, port, tmp_path))
        code = gate.wait(30)
        assert orders(sim) == 0
    assert code == 0, gate.stderr_lines
    start = gate.wait_for_event("gate.start")
    assert gate.wait_for_event("gate.ready")["attempt"] == 1
    assert f"ready pid={start['pid']}" in gate.stdout_lines


@pytest.mark.parametrize("dialect", sorted(set(RECIPES) - {"mt5-gate", "trade-on-action"}))
def test_without_its_recipe_each_bridge_is_never_ready(dialect: str, tmp_path: Path) -> None:
    """The defaults against another dialect: not_ready on every attempt, then exit 69."""
    with bridge(dialect, tmp_path) as (_sim, port):
        code, events, _, _ = run_gate(["wait", "--host", "127.0.0.1", "--port", str(port),
                                       *NEVER_READY_TIMEOUT])
    failed = [e for e in events if e["event"] == "gate.attempt_failed"]
    assert code == 69
    assert {e["reason"] for e in failed} == {"not_ready"}
    assert "gate.ready" not in {e["event"] for e in events}
    assert "GATE_READY_WHEN" in failed[0]["hint"]
    assert f"127.0.0.1:{port}" in failed[0]["hint"]  # the real target, not 5555


def test_the_same_refusal_three_times_is_explained_once(tmp_path: Path) -> None:
    """The heartbeat bridge's "Invalid request structure": one gate.reply_rejected line."""
    with bridge("heartbeat", tmp_path) as (_sim, port):
        _code, events, _, _ = run_gate(["wait", "--host", "127.0.0.1", "--port", str(port),
                                        *NEVER_READY_TIMEOUT])
    rejected = [e for e in events if e["event"] == "gate.reply_rejected"]
    assert len(rejected) == 1
    assert "Invalid request structure" in rejected[0]["reply"]
    assert "GATE_READY_WHEN" in rejected[0]["fix"]
    attempts = sum(e["event"] == "gate.attempt_failed" for e in events)
    assert attempts > 3  # it kept waiting: a bridge can really be starting


def test_token_bridge_is_never_ready_without_its_token_or_with_a_wrong_one(
        tmp_path: Path) -> None:
    """No token, or another token: {"ok": false, "error": "unauthorized"}, never ready."""
    with bridge("token", tmp_path) as (_sim, port):
        missing = run_gate(["wait", "--host", "127.0.0.1", "--port", str(port),
                            *NEVER_READY_TIMEOUT])
        wrong = run_gate(["wait", *NEVER_READY_TIMEOUT],
                         env=recipe_env("token", port, tmp_path, token="not-the-token"))
    for code, events, _, _ in (missing, wrong):
        assert code == 69
        failed = [e for e in events if e["event"] == "gate.attempt_failed"]
        assert {e["reason"] for e in failed} == {"not_ready"}
        assert "unauthorized" in failed[0]["error"]


def test_the_token_is_never_logged_nor_inherited_by_the_runner(tmp_path: Path) -> None:
    """The token reaches the bridge, and nothing else: not the log, not the runner's env."""
    with bridge("token", tmp_path) as (_sim, port):
        code, events, stdout, _ = run_gate(["wait", "--", "env"],
                                           env=recipe_env("token", port, tmp_path))
        help_code, _, help_text, _ = run_gate(["wait", "--help"],
                                              env=recipe_env("token", port, tmp_path))
    assert (code, help_code) == (0, 0)
    assert "gate.ready" in {e["event"] for e in events}
    logged = " ".join(str(e) for e in events)
    assert "$file:" in logged  # the template is logged, with the path...
    for text in (logged, stdout, help_text):
        assert TOKEN not in text  # ...never the token


def test_trade_on_action_ea_gets_no_order_from_wait_health_or_probe(tmp_path: Path) -> None:
    """With the recipe, wait, health and probe (5 round trips) place zero orders."""
    with bridge("trade-on-action", tmp_path) as (sim, port):
        env = recipe_env("trade-on-action", port, tmp_path)
        results = [run_gate(["wait"], env=env)[0], run_gate(["health"], env=env)[0],
                   run_gate(["probe", "--pub-port", str(port)], env=env)[0]]
        requests = sum(e["event"] == "sim.request" for e in sim.events())
        placed = orders(sim)
    assert results == [0, 0, 0]
    assert requests >= 8  # wait 1, health 1, probe 1 + 5 round trips: all answered...
    assert placed == 0  # ...and not one of them was an order


def test_the_default_ping_is_an_order_on_a_trade_on_action_ea(tmp_path: Path) -> None:
    """Why the recipe exists: the default PING and STATUS are each sent to OrderSend."""
    with bridge("trade-on-action", tmp_path) as (sim, port):
        code, _, _, _ = run_gate(["wait", "--host", "127.0.0.1", "--port", str(port),
                                  "--timeout", "5"])
        placed = orders(sim)
    assert code == 0  # the EA's order confirmation passes the lenient default judgement
    assert placed == 2  # PING and STATUS: this is what docs/BRIDGES.md warns about


def test_status_refusal_is_shown_as_unavailable_with_its_reply(tmp_path: Path) -> None:
    """A STATUS the bridge refuses (heartbeat: Unknown action) is available: false."""
    with bridge("heartbeat", tmp_path) as (_sim, port):
        env = recipe_env("heartbeat", port, tmp_path)
        env["GATE_STATUS_REQUEST"] = ('{"action":"STATUS","req_id":"$uuid",'
                                      '"timestamp":"$now_epoch","payload":{}}')
        code, events, _, _ = run_gate(["wait"], env=env)
    status = next(e for e in events if e["event"] == "gate.status")
    assert code == 0
    assert status["available"] is False
    assert status["reason"] == "not_ready"
    assert "Unknown action: STATUS" in status["reply"]


def test_mesh_judges_the_gateway_ping_by_the_same_dialect(tmp_path: Path) -> None:
    """mesh's gateway PING check passes with the recipe, fails not_ready without it."""
    import json

    with bridge("heartbeat", tmp_path) as (_sim, port):
        with_recipe = run_gate(["mesh", "--json"], env=recipe_env("heartbeat", port, tmp_path))
        without = run_gate(["mesh", "--json", "--host", "127.0.0.1", "--port", str(port)])

    def gateway_ping(stdout: str) -> dict[str, object]:
        checks = json.loads(stdout)["checks"]
        return dict(next(c for c in checks if c["name"].startswith("gateway PING")))

    assert gateway_ping(with_recipe[2])["status"] == "pass"
    failed = gateway_ping(without[2])
    assert (failed["status"], failed["reason"]) == ("fail", "not_ready")


def test_also_zmq_req_is_asked_and_judged_like_the_gateway(tmp_path: Path) -> None:
    """--also zmq+req:// to a second heartbeat bridge: ready with the recipe; a bridge of
    another dialect there is never ready, and the timeout names it."""
    with bridge("heartbeat", tmp_path) as (_sim, port), \
            bridge("heartbeat", tmp_path) as (_other, other_port), \
            bridge("mt5-gate", tmp_path) as (_third, wrong_port):
        env = recipe_env("heartbeat", port, tmp_path)
        code, events, _, _ = run_gate(["wait", "--also", f"zmq+req://127.0.0.1:{other_port}"],
                                      env=env)
        bad_code, bad_events, _, _ = run_gate(
            ["wait", "--also", f"zmq+req://127.0.0.1:{wrong_port}", *NEVER_READY_TIMEOUT],
            env=env)
    assert code == 0
    ready = next(e for e in events if e["event"] == "gate.dependency_ready")
    assert "SUCCESS" in ready["detail"]
    assert bad_code == 69
    timeout = next(e for e in bad_events if e["event"] == "gate.timeout")
    assert timeout["target"] == f"zmq+req://127.0.0.1:{wrong_port}"
    assert timeout["last_reason"] == "not_ready"


def test_a_token_echoed_back_by_the_bridge_is_scrubbed_from_every_log_line(
        tmp_path: Path) -> None:
    """A bridge that quotes the request in its refusal: the log shows ***, not the token."""
    import json

    import zmq

    from tests import servers

    def echo_refusal(request: list[bytes]) -> list[bytes]:
        quoted = json.loads(request[0])
        return [json.dumps({"ok": False, "error": f"bad request {quoted}"}).encode()]

    with servers.zmq_server(zmq.ROUTER, echo_refusal) as port:
        env = recipe_env("token", port, tmp_path)
        _, events, _, _ = run_gate(["wait", *NEVER_READY_TIMEOUT], env=env)
        _, _, health, _ = run_gate(["health"], env=env)
    failed = next(e for e in events if e["event"] == "gate.attempt_failed")
    assert "***" in failed["error"]
    for text in (json.dumps(events), health):
        assert TOKEN not in text
