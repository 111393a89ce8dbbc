"""The public bridges of docs/BRIDGES.md, each against a stand-in written from its source.

Every recipe is read from the document and run verbatim (only the host, ports and the
secret's path are pointed at the stand-in); the stand-ins in tests/standins/ reproduce
each bridge's sockets, routing, reply bytes, empty frames, timer and failure words. With
its recipe a bridge gets ready and the runner is exec'd; in each state in which it cannot
trade it is never ready, and the state is named with what to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zmq

from tests.standins.client import StandIn
from tests.support import servers
from tests.support.bounds import (
    EVENT_S,
    EXIT_S,
    NEVER_READY_S,
    NEVER_READY_WAIT,
    WATCHED_BACKOFF,
    after_deadline,
)
from tests.support.cli import run_gate
from tests.support.helpers import EXEC_PROBE, base_env, free_port, poll_until
from tests.support.processes import StartGate, StartSim, StartStandIn
from tests.support.recipes import (
    RECIPES,
    TOKEN,
    blocks,
    events_of,
    failures,
    recipe_env,
    start_ejtrader,
    start_pymetatrader,
)
from tests.support.sockets import ZmqSockets

# Recipes whose stand-in is not ZeroMQ: proven in their own module (mt5linux, an rpyc
# server: tests/test_mt5linux.py).
ZEROMQ_RECIPES = sorted(set(RECIPES) - {"mt5-gate", "mt5linux"})


def start_bridge(
    standin: StartStandIn, recipe: str, tmp_path: Path, *extra: str
) -> tuple[StandIn, dict[str, str]]:
    """The stand-in of ``recipe``'s bridge, and the variables that point the recipe at it."""
    if recipe == "dwx":
        ea = standin("dwx_ea", "--pull-port", "0", "--push-port", "0", "--pub-port", "0", *extra)
        ports = {
            "GATEWAY_PORT": ea.ports["pull"],
            "GATEWAY_REPLY_PORT": ea.ports["push"],
            "GATEWAY_PUB_PORT": ea.ports["pub"],
        }
    elif recipe == "mql5-json-api":
        ea = standin(
            "json_api_ea",
            "--system-port",
            "0",
            "--data-port",
            "0",
            "--live-port",
            "0",
            "--stream-port",
            "0",
            *extra,
        )
        ports = {"GATEWAY_PORT": ea.ports["system"], "GATEWAY_REPLY_PORT": ea.ports["data"]}
    elif recipe == "token":
        token_file = tmp_path / "bridge_side_token"
        token_file.write_text(TOKEN + "\n")
        ea = standin(
            "wolfe_bridge",
            "--port",
            "0",
            "--pub-port",
            "0",
            "--token-file",
            str(token_file),
            *extra,
        )
        ports = {"GATEWAY_PORT": ea.ports["rep"]}
    elif recipe == "ejtrader":
        return start_ejtrader(standin, *extra)
    elif recipe == "pymetatrader":
        return start_pymetatrader(standin, *extra)
    else:  # trade-on-action (v5) and no-safe-request (v4): luzhengheng's Direct_Zmq
        version = "v5" if recipe == "trade-on-action" else "v4"
        ea = standin(
            "direct_zmq_ea", "--version", version, "--port", "0", "--pub-port", "0", *extra
        )
        ports = {"GATEWAY_PORT": ea.ports["rep"]}
    return ea, {key: str(value) for key, value in ports.items()}


def test_the_document_names_a_recipe_for_every_preset() -> None:
    """Each public preset has a tested recipe; the rehearsal ones have a rehearsal block."""
    from entrypoint.gateway.presets import PRESETS

    assert set(PRESETS) == set(RECIPES) | set(blocks("rehearsal"))


@pytest.mark.parametrize("recipe", ZEROMQ_RECIPES)
def test_each_recipe_gets_its_bridge_ready_and_execs_the_runner_in_its_pid(
    recipe: str, tmp_path: Path, standin: StartStandIn, gate: StartGate
) -> None:
    """The recipe's lines and nothing else: ready, the runner in the gate's PID, and not
    one order attempted (with handshake, not one request received)."""
    ea, ports = start_bridge(standin, recipe, tmp_path)
    proc = gate("wait", "--", *EXEC_PROBE, env=recipe_env(recipe, ports, tmp_path))
    assert proc.wait(EXIT_S) == 0, proc.stderr_lines
    start = proc.wait_for_event("gate.start")
    assert proc.wait_for_event("gate.ready")["attempt"] == 1
    assert f"ready pid={start['pid']}" in proc.stdout_lines
    assert events_of(ea, "order_attempt") == []
    if recipe == "no-safe-request":
        assert events_of(ea, "request") == []


def test_the_mt5_gate_recipe_gets_the_simulator_ready(
    tmp_path: Path, sim: StartSim, gate: StartGate
) -> None:
    """The project's own dialect is spoken by the project's own simulator."""
    _sim, port = sim()
    proc = gate(
        "wait", "--", *EXEC_PROBE, env=recipe_env("mt5-gate", {"GATEWAY_PORT": str(port)}, tmp_path)
    )
    assert proc.wait(EXIT_S) == 0, proc.stderr_lines


@pytest.mark.parametrize(
    ("word", "state", "says"),
    [
        ("TRADING_IS_NOT_ALLOWED", "trading_not_allowed", "AutoTrading"),
        ("EA_IS_DISABLED", "ea_disabled", "AutoTrading"),
        ("TRADE_CONTEXT_BUSY", "trade_context_busy", "trade context"),
        ("DLLS_DISABLED", "dlls_disabled", "Allow DLL imports"),
        ("LIBS_DISABLED", "libs_disabled", "Allow imports of external experts"),
        ("NO_BROKER_CONNECTION", "no_broker_connection", "Login to Trade Account"),
    ],
)
def test_dwx_never_ready_while_its_permission_check_fails_and_says_why(
    word: str, state: str, says: str, tmp_path: Path, standin: StartStandIn
) -> None:
    """The EA answers HEARTBEAT in every state; the gate asks for account data, which is
    behind the check: not_ready, the state named, the bridge's words kept, what to do."""
    ea, ports = start_bridge(standin, "dwx", tmp_path, "--fail", word)
    ran = run_gate(
        ["wait", *NEVER_READY_WAIT],
        env=recipe_env("dwx", ports, tmp_path),
        timeout=after_deadline(NEVER_READY_S),
    )
    failed = failures(ran.events)
    assert ran.code == 69
    assert {e["reason"] for e in failed} == {"not_ready"}
    assert {e["broker_state"] for e in failed} == {state}
    assert f"{word}__ABORTED_COMMAND" in failed[0]["error"]  # the bridge's own words
    assert says in failed[0]["hint"]
    assert f"--reason broker-state-{state.replace('_', '-')}" in failed[0]["hint"]
    assert events_of(ea, "order_attempt") == []


def test_dwx_that_recovers_while_the_gate_waits_is_ready_at_the_next_attempt(
    tmp_path: Path, standin: StartStandIn, gate: StartGate
) -> None:
    """No broker connection, then the terminal logs in: the gate was waiting, not failing."""
    state = tmp_path / "dwx_state"
    state.write_text("NO_BROKER_CONNECTION\n")
    ea, ports = start_bridge(standin, "dwx", tmp_path, "--state-file", str(state))
    proc = gate("wait", *WATCHED_BACKOFF, "--", *EXEC_PROBE, env=recipe_env("dwx", ports, tmp_path))
    refused = proc.wait_for_event("gate.attempt_failed", EVENT_S)
    state.write_text("\n")
    assert proc.wait(EXIT_S) == 0
    assert refused["broker_state"] == "no_broker_connection"
    assert proc.wait_for_event("gate.ready")
    assert events_of(ea, "order_attempt") == []


def test_dwx_without_get_account_info_is_not_ready_and_says_what_it_knows(
    tmp_path: Path, standin: StartStandIn
) -> None:
    """darwinex's EA before GET_ACCOUNT_INFO answers it with the empty message alone."""
    _ea, ports = start_bridge(standin, "dwx", tmp_path, "--no-account-info")
    ran = run_gate(
        ["wait", *NEVER_READY_WAIT],
        env=recipe_env("dwx", ports, tmp_path),
        timeout=after_deadline(NEVER_READY_S),
    )
    assert ran.code == 69
    assert "TRADE;GET_OPEN_TRADES" in failures(ran.events)[0]["error"]
    fallback = recipe_env(
        "dwx",
        ports,
        tmp_path,
        GATE_PING_REQUEST="TRADE;GET_OPEN_TRADES",
        GATE_READY_WHEN="_action == 'OPEN_TRADES'",
    )
    assert run_gate(["wait"], env=fallback).code == 0


@pytest.mark.parametrize(
    ("flag", "state"),
    [("--trading-allowed", "algo_trading_off"), ("--bot-trading", "ea_trading_off")],
)
def test_json_api_never_ready_while_algo_trading_is_off(
    flag: str, state: str, tmp_path: Path, standin: StartStandIn
) -> None:
    """The System socket says OK either way; ACCOUNT's flags decide, and name the state."""
    _ea, ports = start_bridge(standin, "mql5-json-api", tmp_path, flag, "0")
    ran = run_gate(
        ["wait", *NEVER_READY_WAIT],
        env=recipe_env("mql5-json-api", ports, tmp_path),
        timeout=after_deadline(NEVER_READY_S),
    )
    failed = failures(ran.events)
    assert ran.code == 69
    assert {e["broker_state"] for e in failed} == {state}
    assert '"trading_allowed"' in failed[0]["error"]


def test_plain_ok_on_json_api_would_be_ready_with_algo_trading_off(
    tmp_path: Path, standin: StartStandIn
) -> None:
    """Why the preset exists: the plain-ok rehearsal judgement takes the acknowledgement."""
    _ea, ports = start_bridge(standin, "mql5-json-api", tmp_path, "--trading-allowed", "0")
    env = base_env(
        **blocks("rehearsal")["plain-ok"]
        | {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": ports["GATEWAY_PORT"]}
    )
    assert run_gate(["wait", "--timeout", "5"], env=env).code == 0


def test_token_bridge_is_never_ready_with_a_wrong_token_or_without_an_account(
    tmp_path: Path, standin: StartStandIn
) -> None:
    """unauthorized, and {"ok": true, "balance": null}: neither is ready."""
    _ea, ports = start_bridge(standin, "token", tmp_path)
    wrong = run_gate(
        ["wait", *NEVER_READY_WAIT],
        env=recipe_env("token", ports, tmp_path, token="not-the-token"),
        timeout=after_deadline(NEVER_READY_S),
    )
    _ea2, ports2 = start_bridge(standin, "token", tmp_path, "--no-account")
    no_account = run_gate(
        ["wait", *NEVER_READY_WAIT],
        env=recipe_env("token", ports2, tmp_path),
        timeout=after_deadline(NEVER_READY_S),
    )
    assert wrong.code == no_account.code == 69
    assert "unauthorized" in failures(wrong.events)[0]["error"]
    assert '"balance": null' in failures(no_account.events)[0]["error"]
    assert TOKEN not in json.dumps(wrong.events + no_account.events)


def test_trade_on_action_ea_gets_no_order_from_wait_health_or_probe(
    tmp_path: Path, standin: StartStandIn
) -> None:
    """With the recipe, wait, health and probe (5 round trips) attempt zero orders; the
    default PING would have been one (the EA sends anything with "action" to OrderSend)."""
    ea, ports = start_bridge(standin, "trade-on-action", tmp_path, "--timer-ms", "50")
    env = recipe_env("trade-on-action", ports, tmp_path)
    codes = [
        run_gate(["wait"], env=env).code,
        run_gate(["health"], env=env).code,
        run_gate(["probe"], env=env).code,
    ]
    assert codes == [0, 0, 0]
    assert len(events_of(ea, "request")) >= 8
    assert events_of(ea, "order_attempt") == []
    default = base_env(GATEWAY_HOST="127.0.0.1", **ports)
    run_gate(["wait", "--timeout", "3"], env=default, timeout=after_deadline(3))
    assert len(events_of(ea, "order_attempt")) >= 1  # this is what the recipe prevents


@pytest.mark.parametrize(
    ("bridge", "request_text"),
    [
        ("dwx", "TRADE;OPEN;0;EURUSD;0;50;50;mt5-gate;0.01;123;0"),
        ("dwx", "TRADE;CLOSE_ALL"),
        ("mql5-json-api", '{"action":"TRADE","actionType":"ORDER_TYPE_BUY","symbol":"EURUSD"}'),
        ("trade-on-action", '{"action":"PING"}'),
    ],
)
def test_a_preset_refuses_a_request_its_bridge_routes_to_trading(
    bridge: str, request_text: str
) -> None:
    """Exit 64 and one line, before anything is sent."""
    ran = run_gate(
        ["wait", "--host", "127.0.0.1", "--bridge", bridge, "--ping-request", request_text]
    )
    assert ran.code == 64
    assert len(ran.events) == 1
    assert "refuses the request" in ran.events[0]["error"]


def test_every_request_sent_is_logged_and_every_reply_judged_while_waiting(
    tmp_path: Path, standin: StartStandIn, gate: StartGate
) -> None:
    """A bridge that refuses for a while and one that comes up late: the gate's
    gate.request lines match, one for one, the requests the bridge received."""
    state = tmp_path / "dwx_state"
    state.write_text("TRADE_CONTEXT_BUSY\n")
    ea, ports = start_bridge(standin, "dwx", tmp_path, "--state-file", str(state))
    proc = gate(
        "wait",
        "--log-level",
        "debug",
        "--backoff-initial",
        "0.2",
        "--backoff-max",
        "0.4",
        env=recipe_env("dwx", ports, tmp_path),
    )
    poll_until(lambda: len(failures(proc.events())) >= 3, EVENT_S)
    state.write_text("\n")
    assert proc.wait(EXIT_S) == 0
    sent = [e for e in proc.events() if e["event"] == "gate.request"]
    received = events_of(ea, "request")
    assert len(sent) == len(received) >= 3
    assert {e["request"] for e in sent} == {'"TRADE;GET_ACCOUNT_INFO"'}
    judged = [
        e
        for e in proc.events()
        if e["event"] in ("gate.attempt_failed", "gate.ready", "gate.reply")
    ]
    assert len(judged) == len(sent)  # every reply judged in exactly one line


@pytest.mark.parametrize("recipe", ["token", "mql5-json-api"])
def test_no_request_goes_unlogged_while_a_bridge_refuses(
    recipe: str, tmp_path: Path, standin: StartStandIn
) -> None:
    """A bridge that never gets ready (no account; algo trading off) for the whole wait,
    pauses included: one gate.request line for each request the bridge received."""
    flag = ["--no-account"] if recipe == "token" else ["--trading-allowed", "0"]
    ea, ports = start_bridge(standin, recipe, tmp_path, *flag)
    ran = run_gate(
        ["wait", "--log-level", "debug", *NEVER_READY_WAIT],
        env=recipe_env(recipe, ports, tmp_path),
        timeout=after_deadline(NEVER_READY_S),
    )
    sent = [e for e in ran.events if e["event"] == "gate.request"]
    assert ran.code == 69
    assert len(sent) == len(events_of(ea, "request"))
    # Both kinds were sent (so at least two requests): a loaded machine may fit only a few
    # into the 2 s; how many does not matter, that each is logged does.
    assert {e["via"] for e in sent} == {"attempt", "pause"}


@pytest.mark.parametrize("recipe", ["dwx", "mql5-json-api"])
def test_a_two_socket_bridge_that_binds_during_a_pause_is_noticed_in_the_pause(
    recipe: str, tmp_path: Path, standin: StartStandIn, gate: StartGate
) -> None:
    """The gate waits, a long pause starts, the bridge binds: ready well before the pause
    would have ended (the request is sent once both sockets are connected)."""
    ports = [free_port() for _ in range(3)] if recipe == "dwx" else [free_port() for _ in range(2)]
    names = ["GATEWAY_PORT", "GATEWAY_REPLY_PORT", "GATEWAY_PUB_PORT"]
    env = recipe_env(recipe, dict(zip(names, map(str, ports), strict=False)), tmp_path)
    proc = gate("wait", "--backoff-initial", "20", "--backoff-max", "20", env=env)
    failed = proc.wait_for_event("gate.attempt_failed", EVENT_S)
    # A pause of at least 10 s has begun: far longer than a stand-in takes to start
    # (under 2 s with both cores busy).
    assert failed["next_retry_s"] >= 10
    if recipe == "dwx":
        standin(
            "dwx_ea",
            "--pull-port",
            str(ports[0]),
            "--push-port",
            str(ports[1]),
            "--pub-port",
            str(ports[2]),
        )
    else:
        standin(
            "json_api_ea",
            "--system-port",
            str(ports[0]),
            "--data-port",
            str(ports[1]),
            "--live-port",
            "0",
            "--stream-port",
            "0",
        )
    assert proc.wait(EXIT_S) == 0
    ready = proc.wait_for_event("gate.ready")
    assert ready["via"] == "pause"
    # Noticed in the pause: the attempt counter did not move (10 s pause vs ~0.1 s).
    assert ready["attempt"] == 1


class Strategy:
    """The strategy's own client of a two-socket bridge: it sends requests in turn and
    records every answer it receives on its PULL."""

    def __init__(self, recipe: str, ports: dict[str, str], sockets: ZmqSockets) -> None:
        self.recipe = recipe
        self.pull = sockets(zmq.PULL)
        self.pull.connect(f"tcp://127.0.0.1:{ports['GATEWAY_REPLY_PORT']}")
        self.requests = sockets(zmq.PUSH if recipe == "dwx" else zmq.REQ)
        self.requests.connect(f"tcp://127.0.0.1:{ports['GATEWAY_PORT']}")
        self.asked: list[str] = []
        self.answers: list[str] = []

    def ask(self, n: int, timeout_s: float = EVENT_S) -> None:
        """Request n (alternating two kinds), and read its answer, within a deadline."""
        if self.recipe == "dwx":
            text = "HEARTBEAT;" if n % 2 else "TRADE;GET_OPEN_TRADES"
            self.requests.send_string(text)
        else:
            text = '{"action":"ACCOUNT"}' if n % 2 else f'{{"action":"TAG_{n}"}}'
            self.requests.send_string(text)
            assert self.requests.poll(int(EVENT_S * 1000)), "no OK"
            assert self.requests.recv() == b"OK"
        self.asked.append(text)
        while True:
            assert self.pull.poll(int(timeout_s * 1000)), f"answer {n} never arrived"
            message = self.pull.recv()
            if message:
                self.answers.append(message.decode())
                return

    def extra(self) -> list[bytes]:
        """Anything on the PULL that was not read as an answer (after a short grace)."""
        left = []
        while self.pull.poll(200):
            message = self.pull.recv()
            if message:
                left.append(message)
        return left


def _expected(recipe: str, asked: str) -> str:
    if recipe == "dwx":
        return "heartbeat" if asked.startswith("HEARTBEAT") else "OPEN_TRADES"
    return '"trading_allowed"' if "ACCOUNT" in asked else "ERR_WRONG_ACTION"


@pytest.mark.parametrize("recipe", ["dwx", "mql5-json-api"])
def test_health_never_disturbs_a_running_strategy_on_a_two_socket_bridge(
    recipe: str, tmp_path: Path, standin: StartStandIn, gate: StartGate, zmq_sockets: ZmqSockets
) -> None:
    """The strategy sends requests of two kinds in turn while health runs again and
    again: each answer it asked for arrives, in order, and nothing else does; health
    stays healthy and the bridge receives only the strategy's requests."""
    ea, ports = start_bridge(standin, recipe, tmp_path)
    env = recipe_env(recipe, ports, tmp_path)
    strategy = Strategy(recipe, ports, zmq_sockets)
    healths = []
    for n in range(12):
        healths.append(gate("health", env=env))
        strategy.ask(n)
    codes = [proc.wait(EXIT_S) for proc in healths]
    extra = strategy.extra()
    assert codes == [0] * 12, healths[0].stdout_lines
    assert all("passive" in proc.stdout_lines[0] for proc in healths)
    assert [
        _expected(recipe, asked) in answer
        for asked, answer in zip(strategy.asked, strategy.answers, strict=True)
    ] == [True] * 12
    assert extra == []
    assert len(events_of(ea, "request")) == 12  # the strategy's, and no other


def test_a_check_on_the_reply_port_would_take_the_strategys_answers(
    tmp_path: Path, standin: StartStandIn, zmq_sockets: ZmqSockets
) -> None:
    """Why health is passive, and proof that the test above can fail: one more PULL on
    khramkov's Data port (what a non-passive healthcheck connects) and the strategy's
    answers are dealt round-robin between the two: some never reach the strategy."""
    from zmq.utils.monitor import recv_monitor_message

    _ea, ports = start_bridge(standin, "mql5-json-api", tmp_path)
    strategy = Strategy("mql5-json-api", ports, zmq_sockets)
    intruder = zmq_sockets(zmq.PULL)
    monitor = intruder.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    intruder.connect(f"tcp://127.0.0.1:{ports['GATEWAY_REPLY_PORT']}")
    assert monitor.poll(int(EVENT_S * 1000)), "the intruder never connected"
    assert recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED
    missing = 0
    for n in range(4):
        try:
            strategy.ask(n, timeout_s=3.0)
        except AssertionError:
            missing += 1
    taken = 0
    while intruder.poll(200):
        intruder.recv()
        taken += 1
    assert missing >= 1  # the strategy's own answers, dealt to the intruder
    assert taken >= 1


def test_explain_names_the_broker_state_and_what_to_do(
    tmp_path: Path, standin: StartStandIn
) -> None:
    """The log of a wait that never got ready because DLLs are not allowed, explained."""
    _ea, ports = start_bridge(standin, "dwx", tmp_path, "--fail", "DLLS_DISABLED")
    env = recipe_env("dwx", ports, tmp_path)
    done = run_gate(["wait", *NEVER_READY_WAIT], env=env, timeout=after_deadline(NEVER_READY_S))
    log = tmp_path / "gate.log"
    log.write_text("\n".join(json.dumps(e) for e in done.events) + "\n")
    ran = run_gate(["explain", str(log)])
    assert ran.code == 0
    assert "broker state: dlls_disabled" in ran.stdout
    assert "Allow DLL imports" in ran.stdout


def test_probe_names_the_broker_state_as_its_fix(tmp_path: Path, standin: StartStandIn) -> None:
    _ea, ports = start_bridge(standin, "mql5-json-api", tmp_path, "--bot-trading", "0")
    ran = run_gate(["probe"], env=recipe_env("mql5-json-api", ports, tmp_path))
    assert ran.code == 1
    assert "fix: ea_trading_off" in ran.stdout
    assert "Allow Algo Trading" in ran.stdout


def test_health_names_a_broker_state_on_a_req_bridge(tmp_path: Path) -> None:
    """A REP bridge answering darwinex's words: health's one line names the state."""

    def refuse(_request: list[bytes]) -> list[bytes]:
        return [b"{'_response': 'NO_BROKER_CONNECTION__ABORTED_COMMAND'}"]

    with servers.zmq_server(zmq.ROUTER, refuse) as port:
        ran = run_gate(
            [
                "health",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--ping-request",
                "TRADE;GET_ACCOUNT_INFO",
            ]
        )
    assert ran.code == 1
    assert "no_broker_connection" in ran.stdout
    assert "Login to Trade Account" in ran.stdout


def test_also_takes_a_two_socket_bridge_by_url(
    tmp_path: Path, standin: StartStandIn, sim: StartSim
) -> None:
    """--also zmq+req://host:port?bridge=dwx&reply_port=N waits for it with its own preset."""
    _ea, ports = start_bridge(standin, "dwx", tmp_path)
    _sim, port = sim()
    url = (
        f"zmq+req://127.0.0.1:{ports['GATEWAY_PORT']}?bridge=dwx"
        f"&reply_port={ports['GATEWAY_REPLY_PORT']}"
    )
    ran = run_gate(["wait", "--host", "127.0.0.1", "--port", str(port), "--also", url])
    assert ran.code == 0, ran.events
    ready = [e for e in ran.events if e["event"] == "gate.dependency_ready"]
    assert "GET_ACCOUNT_INFORMATION" in ready[0]["detail"]
    bad = run_gate(
        ["wait", "--host", "127.0.0.1", "--also", "zmq+req://127.0.0.1:1?bridge=dwx&colour=red"]
    )
    assert bad.code == 64


def test_mesh_checks_a_preset_bridge_with_its_transport(
    tmp_path: Path, standin: StartStandIn
) -> None:
    _ea, ports = start_bridge(standin, "dwx", tmp_path)
    ran = run_gate(["mesh", "--json"], env=recipe_env("dwx", ports, tmp_path))
    checks = {
        c["name"].split(" ")[1]: c["status"]
        for c in json.loads(ran.stdout)["checks"]
        if c["name"].startswith("gateway")
    }
    assert checks == {"PING": "pass", "PUB": "pass"}, ran.stdout
    assert ran.code in (0, 1)


def test_an_ea_with_no_safe_request_gets_no_request_from_probe_or_health(
    tmp_path: Path, standin: StartStandIn
) -> None:
    """The handshake recipe: probe and health pass on the handshake alone, and the EA,
    which would take any request with an action for an order, receives nothing."""
    ea, ports = start_bridge(standin, "no-safe-request", tmp_path)
    env = recipe_env("no-safe-request", ports, tmp_path)
    probe = run_gate(["probe"], env=env)
    health = run_gate(["health"], env=env)
    assert (probe.code, health.code) == (0, 0), probe.stdout
    assert "no request sent" in probe.stdout
    assert "passive" in health.stdout
    assert events_of(ea, "request") == []
