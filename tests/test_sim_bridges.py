"""`mt5-gate sim` speaking the real bridges' wire protocols, talked to with real pyzmq sockets.

The two-socket bridges (dwx: PULL commands / PUSH replies; mql5-json-api: REP System /
PUSH Data) and the one-socket bridges whose replies must match the EAs' bytes. The reply
PULL is connected, and the simulator's ``sim.reply_peer`` event awaited, before anything is
sent: a bridge's PUSH drops what it sends while no PULL is connected (as the EAs' do).
"""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.support.bounds import EVENT_S, EXIT_S
from tests.support.cli import run_gate
from tests.support.helpers import poll_until
from tests.support.processes import Proc, StartSim
from tests.support.sockets import Curve, ZmqSockets

WAIT_MS = int(EVENT_S * 1000)
HEARTBEAT_REPLY = b"{'_action': 'heartbeat', '_response': 'loud and clear!'}"
OPEN = b"TRADE;OPEN;0;EURUSD;0.0;0;0;dwx-zeromq;0.01;123456;0"


def events(sim: Proc, name: str) -> list[dict[str, Any]]:
    return [e for e in sim.events() if e["event"] == name]


def logged_through(sim: Proc, n: int) -> list[dict[str, Any]]:
    """The simulator's events once its log shows request ``n`` (an order attempt is logged
    after its request and before its answer, so every earlier one is there too)."""
    poll_until(lambda: any(e.get("n") == n for e in events(sim, "sim.request")), EVENT_S)
    return sim.events()


def orders(sim: Proc, through: int, expected: int = 0) -> list[dict[str, Any]]:
    """The order attempts logged by request ``through``. An attempt is logged after its
    request's line, so ``expected`` ones are polled for (the log is read on a thread that
    may lag on a loaded machine); more than that still shows, fewer fails the poll."""
    logged_through(sim, through)

    def attempts() -> list[dict[str, Any]]:
        return [e for e in sim.events() if e["event"] == "sim.order_attempt"]

    if expected:
        poll_until(lambda: len(attempts()) >= expected, EVENT_S)
    return attempts()


class Bridge:
    """Client sockets for a two-socket bridge: ``send`` to ``--port``, ``receive`` from the
    reply PULL on ``--reply-port`` (connected first, once the simulator saw it)."""

    def __init__(
        self, zmq_sockets: ZmqSockets, sim: Proc, kind: int, curve: Curve | None = None
    ) -> None:
        listening = sim.wait_for_event("sim.listening", timeout=EVENT_S)
        self.sim = sim
        self.pub_port = int(listening["pub_port"])
        self.replies = zmq_sockets(zmq.PULL, curve)
        peers = len(events(sim, "sim.reply_peer"))
        self.replies.connect(f"tcp://127.0.0.1:{listening['reply_port']}")
        poll_until(lambda: len(events(sim, "sim.reply_peer")) > peers, EVENT_S)
        self.requests = zmq_sockets(kind, curve)
        self.requests.connect(f"tcp://127.0.0.1:{listening['port']}")

    def send(self, request: bytes) -> None:
        self.requests.send(request)

    def receive(self) -> bytes:
        assert self.replies.poll(WAIT_MS), "no message on the reply socket"
        return bytes(self.replies.recv())

    def ack(self) -> bytes:
        assert self.requests.poll(WAIT_MS), "no reply on the request socket"
        return bytes(self.requests.recv())


def dwx(zmq_sockets: ZmqSockets, sim: StartSim, *args: str) -> Bridge:
    simulator, _ = sim("--dialect", "dwx", *args)
    return Bridge(zmq_sockets, simulator, zmq.PUSH)


def json_api(zmq_sockets: ZmqSockets, sim: StartSim, *args: str) -> Bridge:
    simulator, _ = sim("--dialect", "mql5-json-api", *args)
    return Bridge(zmq_sockets, simulator, zmq.REQ)


def ask(bridge: Bridge, request: bytes) -> tuple[bytes, bytes]:
    """dwx: one command, its reply and the empty message that always follows it."""
    bridge.send(request)
    return bridge.receive(), bridge.receive()


def test_every_dialect_is_offered_and_each_broker_state_belongs_to_a_dialect() -> None:
    """`sim --dialect` offers every dialect the simulator serves, once."""
    from entrypoint.sim import dialects as sim_dialects

    offered = sim_dialects.ALL_DIALECTS
    assert len(set(offered)) == len(offered)
    assert set(offered) == (
        set(sim_dialects.DIALECTS)
        | set(sim_dialects.TWO_SOCKET_DIALECTS)
        | set(sim_dialects.RPYC_DIALECTS)
    )
    assert set(sim_dialects.BROKER_STATES) <= set(offered)


def test_dwx_account_info_is_the_forks_literal_then_an_empty_message(
    zmq_sockets: ZmqSockets, sim: StartSim
) -> None:
    """TRADE;GET_ACCOUNT_INFO: GET_ACCOUNT_INFORMATION with its spacing quirks, then b''."""
    bridge = dwx(zmq_sockets, sim)
    reply, empty = ask(bridge, b"TRADE;GET_ACCOUNT_INFO")
    account = ast.literal_eval(reply.decode())  # the client eval()s it
    assert empty == b""
    assert account["_action"] == "GET_ACCOUNT_INFORMATION"
    assert isinstance(account["account_number"], int)
    assert account["_data"][0]["account_balance"] == 10000.0
    assert b"'account_balance':10000.00000000, " in reply
    assert b"'account_leverage' :" in reply
    assert ask(bridge, b"TRADE;GET_OPEN_TRADES") == (
        b"{'_action': 'OPEN_TRADES', '_trades': {}}",
        b"",
    )
    assert ask(bridge, b"HEARTBEAT;") == (HEARTBEAT_REPLY, b"")


def test_dwx_unknown_command_gets_only_the_empty_message(
    zmq_sockets: ZmqSockets, sim: StartSim
) -> None:
    """An unknown command: b'' alone (the heartbeat right after is the next message)."""
    bridge = dwx(zmq_sockets, sim)
    bridge.send(b"DATA;EURUSD")
    assert bridge.receive() == b""
    assert ask(bridge, b"HEARTBEAT") == (HEARTBEAT_REPLY, b"")


def test_dwx_broker_state_refuses_every_recognised_command(
    zmq_sockets: ZmqSockets, sim: StartSim
) -> None:
    """--broker-state WORD: {'_response': 'WORD__ABORTED_COMMAND'}; no order is attempted."""
    bridge = dwx(zmq_sockets, sim, "--broker-state", "NO_BROKER_CONNECTION")
    refusal = b"{'_response': 'NO_BROKER_CONNECTION__ABORTED_COMMAND'}"
    for command in (
        b"TRADE;GET_ACCOUNT_INFO",
        b"TRADE;GET_OPEN_TRADES",
        OPEN,
        b"HIST;EURUSD;1;2020.01.01 00:00;2020.01.02 00:00",
    ):
        assert ask(bridge, command) == (refusal, b"")
    bridge.send(b"NOPE")  # unknown stays unknown: not refused, not answered
    assert bridge.receive() == b""
    assert orders(bridge.sim, through=5) == []


def test_dwx_heartbeat_is_answered_whatever_the_broker_state(
    zmq_sockets: ZmqSockets, sim: StartSim
) -> None:
    """HEARTBEAT is handled before CheckOpsStatus: loud and clear, even while disabled."""
    bridge = dwx(zmq_sockets, sim, "--broker-state", "EA_IS_DISABLED")
    assert ask(bridge, b"HEARTBEAT;") == (HEARTBEAT_REPLY, b"")
    assert (
        ask(bridge, b"TRADE;GET_OPEN_TRADES")[0]
        == b"{'_response': 'EA_IS_DISABLED__ABORTED_COMMAND'}"
    )


def test_dwx_trade_commands_are_order_attempts(zmq_sockets: ZmqSockets, sim: StartSim) -> None:
    """OPEN, MODIFY and CLOSE are each logged as sim.order_attempt and answered."""
    bridge = dwx(zmq_sockets, sim)
    opened, _ = ask(bridge, OPEN)
    execution = ast.literal_eval(opened.decode())
    closed, _ = ask(bridge, b"TRADE;CLOSE;0;EURUSD;0;0;0;c;0.01;123456;42")
    modified, _ = ask(bridge, b"TRADE;MODIFY;0;EURUSD;0;10;10;c;0.01;123456;42")
    assert (execution["_action"], execution["_symbol"], execution["_ticket"]) == (
        "EXECUTION",
        "EURUSD",
        1,
    )
    assert closed == b"{'_action': 'CLOSE', '_ticket': 42, '_response': 'NOT_FOUND'}"
    assert modified == b"{'_action': 'MODIFY', '_response': 'NOT_FOUND'}"
    assert [e["action"] for e in orders(bridge.sim, through=3, expected=3)] == [
        "OPEN",
        "CLOSE",
        "MODIFY",
    ]


def test_dwx_reply_with_no_pull_connected_is_dropped_not_queued(
    zmq_sockets: ZmqSockets, sim: StartSim
) -> None:
    """Non-blocking sends: with no PULL peer the reply is lost (sim.reply_dropped), and a
    PULL that connects later gets only what is sent after it came."""
    simulator, port = sim("--dialect", "dwx")
    early = zmq_sockets(zmq.PUSH)
    early.connect(f"tcp://127.0.0.1:{port}")
    early.send(b"TRADE;GET_ACCOUNT_INFO")
    dropped = simulator.wait_for_event("sim.reply_dropped", timeout=EVENT_S)
    assert dropped["messages"] == 2  # the reply and its empty message
    bridge = Bridge(zmq_sockets, simulator, zmq.PUSH)
    assert ask(bridge, b"HEARTBEAT;") == (HEARTBEAT_REPLY, b"")


def test_dwx_publishes_the_symbols_a_client_tracks(zmq_sockets: ZmqSockets, sim: StartSim) -> None:
    """TRACK_PRICES;EURUSD, then SYMBOL:|:bid;ask on the PUB port, as the EA publishes."""
    bridge = dwx(zmq_sockets, sim)
    sub = zmq_sockets(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://127.0.0.1:{bridge.pub_port}")
    reply, _ = ask(bridge, b"TRACK_PRICES;EURUSD")
    assert ast.literal_eval(reply.decode())["_data"]["symbol_count"] == 10  # string[11]
    assert sub.poll(WAIT_MS), "no tick on the PUB port"
    symbol, prices = sub.recv().decode().split(":|:")
    bid, ask_price = (float(price) for price in prices.split(";"))
    assert symbol == "EURUSD"
    assert ask_price > bid > 0


def test_dwx_speaks_curve_on_all_three_sockets(
    zmq_sockets: ZmqSockets, sim: StartSim, tmp_path: Path
) -> None:
    """--curve-secret-key-file secures the PULL, the PUSH and the PUB alike."""
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    (tmp_path / "server.secret").write_bytes(server_secret + b"\n")
    simulator, _ = sim(
        "--dialect", "dwx", "--curve-secret-key-file", str(tmp_path / "server.secret")
    )
    bridge = Bridge(zmq_sockets, simulator, zmq.PUSH, (server_public, client_public, client_secret))
    assert ask(bridge, b"HEARTBEAT;") == (HEARTBEAT_REPLY, b"")
    assert simulator.wait_for_event("sim.listening")["curve"] is True


ACCOUNT_KEYS = [
    "error",
    "broker",
    "currency",
    "server",
    "trading_allowed",
    "bot_trading",
    "balance",
    "equity",
    "margin",
    "margin_free",
    "margin_level",
]


def test_json_api_says_ok_on_system_and_answers_account_on_data(
    zmq_sockets: ZmqSockets, sim: StartSim
) -> None:
    """The client's request (15 keys, unset ones null): b'OK' on REP, compact JSON on Data."""
    bridge = json_api(zmq_sockets, sim)
    request = dict.fromkeys(
        [
            "action",
            "actionType",
            "symbol",
            "chartTF",
            "fromDate",
            "toDate",
            "id",
            "magic",
            "volume",
            "price",
            "stoploss",
            "takeprofit",
            "expiration",
            "deviation",
            "comment",
        ]
    )
    bridge.send(json.dumps({**request, "action": "ACCOUNT"}).encode())
    assert bridge.ack() == b"OK"
    data = bridge.receive()
    account = json.loads(data)
    assert data.startswith(
        b'{"error":false,"broker":"Sim Broker","currency":"USD",'
        b'"server":"Sim-Demo","trading_allowed":1,"bot_trading":1,'
        b'"balance":10000.0,'
    )
    assert list(account) == ACCOUNT_KEYS
    bridge.send(b'{"action": "CONFIGURE"}')  # the real name is CONFIG
    assert bridge.ack() == b"OK"
    assert bridge.receive() == (
        b'{"error":true,"lastError":"65538",'
        b'"description":"ERR_WRONG_ACTION","function":"RequestHandler"}'
    )


@pytest.mark.parametrize(
    ("state", "switches", "retcode"),
    [
        ("algo_trading_off", {"trading_allowed": 0, "bot_trading": 1}, 10027),
        ("ea_trading_off", {"trading_allowed": 1, "bot_trading": 0}, 10026),
    ],
)
def test_json_api_broker_state_is_reported_and_refuses_trades(
    zmq_sockets: ZmqSockets, sim: StartSim, state: str, switches: dict[str, int], retcode: int
) -> None:
    """--broker-state: ACCOUNT reports the switch as 0; a TRADE is attempted and refused."""
    bridge = json_api(zmq_sockets, sim, "--broker-state", state)
    bridge.send(b'{"action": "ACCOUNT"}')
    assert bridge.ack() == b"OK"
    account = json.loads(bridge.receive())
    bridge.send(
        b'{"action": "TRADE", "actionType": "ORDER_TYPE_BUY", "symbol": "EURUSD", "volume": 0.01}'
    )
    assert bridge.ack() == b"OK"
    trade = json.loads(bridge.receive())
    assert {key: account[key] for key in switches} == switches
    assert (trade["error"], trade["retcode"], trade["order"]) == (True, retcode, 0)
    assert len(orders(bridge.sim, through=2, expected=1)) == 1  # attempted, then refused


def test_json_api_never_answers_an_empty_request(zmq_sockets: ZmqSockets, sim: StartSim) -> None:
    """b'' on System: taken, never answered (sim.empty_request); the next client's answer
    is the next message on Data."""
    bridge = json_api(zmq_sockets, sim)
    bridge.send(b"")
    bridge.sim.wait_for_event("sim.empty_request", timeout=EVENT_S)
    other = zmq_sockets(zmq.REQ)
    other.connect(bridge.requests.getsockopt_string(zmq.LAST_ENDPOINT))
    other.send(b'{"action": "BALANCE"}')
    assert other.poll(WAIT_MS)
    assert other.recv() == b"OK"
    assert (
        bridge.receive()
        == b'{"balance":10000.0,"equity":10000.0,"margin":0.0,"margin_free":10000.0}'
    )
    assert bridge.requests.poll(0) == 0
    logged_through(bridge.sim, 1)  # the BALANCE: the empty one is not counted
    assert [e["n"] for e in events(bridge.sim, "sim.request")] == [1]


def test_json_api_reply_delay_holds_back_both_the_ok_and_the_data(
    zmq_sockets: ZmqSockets, sim: StartSim
) -> None:
    """--reply-delay S: the OK and the Data answer each come S seconds late, never sooner."""
    bridge = json_api(zmq_sockets, sim, "--reply-delay", "0.5")
    sent = time.monotonic()
    bridge.send(b'{"action": "BALANCE"}')
    assert bridge.ack() == b"OK"
    assert json.loads(bridge.receive())["balance"] == 10000.0
    assert time.monotonic() - sent >= 0.5  # a lower bound: the delay is a timer, not a race


def test_a_two_socket_bridge_exits_after_its_time(sim: StartSim) -> None:
    """--exit-after ends dwx like the others: code 0, sim.stopped."""
    simulator, _ = sim("--dialect", "dwx", "--exit-after", "1")
    assert simulator.wait(timeout=EXIT_S) == 0
    assert simulator.wait_for_event("sim.stopped")["reason"] == "exit_after"


def test_trade_on_action_quotes_nested_and_sends_the_rest_to_ordersend(
    zmq_sockets: ZmqSockets, sim: StartSim
) -> None:
    """Direct_Zmq v5: GET_SYMBOL_INFO → prices under data with 5 decimals; any other
    message with action or magic is an order (refused for volume 0); else Unknown."""
    simulator, port = sim("--dialect", "trade-on-action")
    assert simulator.wait_for_event("sim.listening")["reply_port"] is None  # one socket
    assert (
        zmq_sockets.request(port, b'{"action":"GET_SYMBOL_INFO","symbol":"EURUSD"}')
        == b'{"status":"OK","data":{"bid":1.08501,"ask":1.08503}}'
    )
    assert (
        zmq_sockets.request(port, b'{"action": "GET_SYMBOL_INFO", "symbol": "USDJPY"}')
        == b'{"status":"OK","data":{"bid":151.20001,"ask":151.20003}}'
    )
    assert (
        zmq_sockets.request(port, b'{"action": "PING"}') == b'{"status":"ERROR", "retcode":10014}'
    )
    filled = json.loads(zmq_sockets.request(port, b'{"magic": 7, "volume": 0.01}'))
    assert zmq_sockets.request(port, b'{"hello": 1}') == b'{"status":"ERROR","msg":"Unknown"}'
    assert (filled["status"], filled["retcode"]) == ("FILLED", 10009)
    assert [e["action"] for e in orders(simulator, through=5, expected=2)] == ["PING", None]


def test_no_safe_request_has_no_request_free_of_an_order(
    zmq_sockets: ZmqSockets, sim: StartSim
) -> None:
    """Direct_Zmq v4: even the quote request is an order attempt."""
    simulator, port = sim("--dialect", "no-safe-request")
    for payload in (b'{"action": "PING"}', b'{"action":"GET_SYMBOL_INFO"}'):
        assert zmq_sockets.request(port, payload) == b'{"status":"ERROR", "retcode":10014}'
    assert zmq_sockets.request(port, b'{"cmd": "status"}') == b'{"status":"ERROR","msg":"Unknown"}'
    assert len(orders(simulator, through=3, expected=2)) == 2


def test_token_bridge_answers_health_unknown_action_and_unauthorized(
    zmq_sockets: ZmqSockets, sim: StartSim, tmp_path: Path
) -> None:
    """clotho2's bridge: health → ok and balance; PING → unknown_action; no or a wrong
    token → unauthorized (json.dumps spacing, as the bridge sends it)."""
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    _simulator, port = sim("--dialect", "token", "--token-file", str(token_file))
    assert (
        zmq_sockets.request(port, b'{"action": "health", "token": "s3cret"}')
        == b'{"ok": true, "balance": 10000.0}'
    )
    assert (
        zmq_sockets.request(port, b'{"action": "PING", "token": "s3cret"}')
        == b'{"ok": false, "error": "unknown_action"}'
    )
    for payload in (b'{"action": "health"}', b'{"action": "health", "token": "guess"}'):
        assert zmq_sockets.request(port, payload) == b'{"ok": false, "error": "unauthorized"}'


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--dialect", "plain-ok", "--reply-port", "0"], "--reply-port"),
        (["--broker-state", "EA_IS_DISABLED"], "--broker-state"),
        (["--dialect", "dwx", "--broker-state", "algo_trading_off"], "algo_trading_off"),
        (
            ["--dialect", "mql5-json-api", "--broker-state", "NO_BROKER_CONNECTION"],
            "NO_BROKER_CONNECTION",
        ),
        (["--dialect", "dwx", "--garbage"], "--garbage"),
        (["--dialect", "dwx", "--bad-status"], "--bad-status"),
        (["--dialect", "mql5-json-api", "--not-zmq"], "--not-zmq"),
        (["--dialect", "mql5-json-api", "--tick-hz", "5"], "--tick-hz"),
        (["--dialect", "dwx", "--port", "5600", "--reply-port", "5600"], "--reply-port 5600"),
    ],
)
def test_flags_that_do_not_fit_the_dialect_are_one_line_usage_errors(
    args: list[str], named: str
) -> None:
    """Exit 64 and one gate.error line naming the flag or word, before anything is bound."""
    ran = run_gate(["sim", "--port", "0", "--pub-port", "0", *args])
    assert ran.code == 64
    assert len(ran.events) == 1
    assert ran.events[0]["event"] == "gate.error"
    assert named in ran.events[0]["error"]
