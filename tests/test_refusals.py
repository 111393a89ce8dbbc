"""Every preset refuses its bridge's trading actions, at start, at every door.

One table (``presets.TRADING``) says what each bridge routes to trading and how it matches
a request; here every row is run preset by preset, with the variants the bridge would
still route (and case and white-space variants, refused on purpose), through ``wait``,
``probe``, ``mesh``, ``health`` and ``--also ...?bridge=``: exit 64 with one line (health:
one ``unhealthy:`` line, exit 1), and not one connection to the port.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoint.gateway.presets import PRESETS, TRADING
from entrypoint.gateway.requests import parse_request
from tests.standins.client import StandIn
from tests.support.cli import run_gate
from tests.support.helpers import base_env
from tests.support.processes import StartStandIn

TOKEN = "tok-3f9a1c77e2-wolfe"

# Requests each bridge routes to trading, as its source matches them, and the variants the
# gate refuses on top (another case, white space). "$TOKEN" becomes a $file: placeholder.
ROUTED: dict[str, list[str]] = {
    "token": [
        '{"action":"order_send","token":"$TOKEN","symbol":"EURUSD","side":"BUY","qty":0.01}',
        '{"action":"close_all","token":"$TOKEN","reason":"gate"}',
        '{"token":"$TOKEN","action":"order_send","qty":"1"}',
        '{"action":" ORDER_SEND ","token":"$TOKEN"}',
        '{"Action":"Close_All","token":"$TOKEN"}',
    ],
    "mql5-json-api": [
        '{"action":"TRADE","actionType":"ORDER_TYPE_BUY","symbol":"EURUSD","volume":0.01}',
        '{"action":"TRADE","actionType":"POSITION_CLOSE_ID","id":1}',
        '{"action":"trade "}',
    ],
    "dwx": [
        "TRADE;OPEN;0;EURUSD;0;0;0;0.01;123;gate;0",
        "TRADE;MODIFY;0;EURUSD;0;0;0;0.01;123;gate;42",
        "TRADE;CLOSE;0;EURUSD;0;0;0;0.01;123;gate;42",
        "TRADE;CLOSE_ALL",
        "TRADE;CLOSE_MAGIC;0;EURUSD;0;0;0;0;123",
        " trade ; close_partial ;1",
    ],
    "trade-on-action": [
        '{"action":"BUY","symbol":"EURUSD","volume":0.01}',
        '{"magic":42,"symbol":"EURUSD"}',
        '{"Action":"get_symbol_info"}',
    ],
    "no-safe-request": [
        '{"action":"PING"}',
        '{"magic":1}',
        "MAGIC;1",
    ],
    "heartbeat": [
        '{"action":"OPEN_ORDER","req_id":"1","timestamp":1,"payload":{"symbol":"EURUSD"}}',
        '{"action":"CLOSE_POSITION","req_id":"1","timestamp":1,"payload":{"ticket":1}}',
        '{"ACTION":" kill_switch ","req_id":"1","timestamp":1,"payload":{}}',
    ],
    "ejtrader": [
        '{"action":"TRADE","actionType":"ORDER_TYPE_BUY","symbol":"EURUSD","volume":0.01}',
        '{"action":"CONFIG","symbol":"EURUSD","chartTF":"M1"}',
        '{"Action":" trade "}',
    ],
    "pymetatrader": [
        "OPEN_ORDER;EURUSD;buy;0.01;0;0;0;0",
        "MODIFY_ORDER;1;0;0;0;0",
        "CANCEL_ORDER;1",
        "MODIFY_TRADE;1;0;0",
        " close_trade ;1",
        "SUB_BARS;EURUSD;M1",
        "UNSUB_ALL",
    ],
    # mt5linux serves the whole MetaTrader5 package: anything off its read-only list.
    "mt5linux": [
        "order_send",
        "shutdown",
        "login",
        "initialize",
        "terminal_info order_check",
        "symbol_select",
    ],
}
CASES = [(name, request) for name, requests in ROUTED.items() for request in requests]


def test_the_table_has_a_row_per_preset_and_every_trading_row_is_tested_here() -> None:
    assert set(TRADING) == set(PRESETS)
    trading = {name for name, row in TRADING.items() if row.words}
    assert trading == set(ROUTED), (trading, set(ROUTED))
    for name in trading:  # the table's own example is refused by its own row
        example = TRADING[name].example
        assert TRADING[name].refusal(parse_request(example, "--ping-request")), example


@pytest.fixture
def closed_listener() -> Iterator[socket.socket]:
    """A loopback port that listens and is never accepted from: a connection made to it
    waits in its backlog, where ``connections`` sees it."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    yield listener
    listener.close()


def connections(listener: socket.socket) -> int:
    count = 0
    while True:
        try:
            peer, _ = listener.accept()
        except BlockingIOError:
            return count
        peer.close()
        count += 1


def env_for(name: str, request: str, port: int, tmp_path: Path) -> dict[str, str]:
    token = tmp_path / "bridge_token"
    token.write_text(TOKEN + "\n")
    env = {
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATE_BRIDGE": name,
        "GATE_PING_REQUEST": request.replace('"$TOKEN"', f'"$file:{token}"'),
    }
    if name == "no-safe-request":  # it sends nothing unless told to: then it refuses
        env["GATE_TRANSPORT"] = "req"
    if PRESETS[name].values.get("reply_port"):
        env["GATEWAY_REPLY_PORT"] = str(port)
    return env


@pytest.mark.parametrize(("name", "request_text"), CASES)
@pytest.mark.parametrize("command", ["wait", "probe", "mesh"])
def test_each_preset_refuses_its_trading_requests_in_one_line_before_connecting(
    name: str,
    request_text: str,
    command: str,
    tmp_path: Path,
    closed_listener: socket.socket,
) -> None:
    port = closed_listener.getsockname()[1]
    ran = run_gate([command], env_for(name, request_text, port, tmp_path), in_process=True)
    lines = ran.stderr.strip().splitlines()
    assert (ran.code, len(lines)) == (64, 1), (ran.code, ran.stderr, ran.stdout)
    error = json.loads(lines[0])["error"]
    assert f"--bridge {name} refuses the request" in error, error
    assert TOKEN not in ran.stderr + ran.stdout
    assert connections(closed_listener) == 0


@pytest.mark.parametrize(("name", "request_text"), CASES)
def test_health_says_the_refusal_as_its_one_unhealthy_line(
    name: str, request_text: str, tmp_path: Path, closed_listener: socket.socket
) -> None:
    port = closed_listener.getsockname()[1]
    ran = run_gate(["health"], env_for(name, request_text, port, tmp_path), in_process=True)
    said = (ran.stdout + ran.stderr).strip().splitlines()
    assert ran.code == 1, (ran.code, said)
    assert len(said) == 1, said
    assert said[0].startswith("unhealthy: "), said
    assert f"--bridge {name} refuses the request" in said[0], said
    assert connections(closed_listener) == 0


def test_also_with_a_preset_refuses_what_that_bridge_would_trade_on(
    closed_listener: socket.socket,
) -> None:
    """A URL names no request, so the preset's own (or the default PING) is what it would
    send: no-safe-request's EA trades on that one, and the URL is refused before any
    connection, the gateway's included."""
    port = closed_listener.getsockname()[1]
    url = f"zmq+req://127.0.0.1:{port}?bridge=no-safe-request&transport=req"
    env = {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port)}
    ran = run_gate(["wait", "--also", url], env, in_process=True)
    lines = ran.stderr.strip().splitlines()
    assert (ran.code, len(lines)) == (64, 1), (ran.code, ran.stderr)
    error = json.loads(lines[0])["error"]
    # A usage error names a URL's query keys only: the preset's name is a query value.
    assert "?bridge=***&transport=***': --bridge *** refuses the request" in error, error
    assert 'sends every message with "action" or "magic" to OrderSend' in error, error
    assert connections(closed_listener) == 0


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_presets_own_requests_are_not_refused(name: str, tmp_path: Path) -> None:
    token = tmp_path / "bridge_token"
    token.write_text(TOKEN + "\n")
    for field in ("ping_request", "status_request"):
        text = PRESETS[name].values.get(field)
        if text in (None, "none"):
            continue
        own = parse_request(text.replace("/run/secrets/bridge_token", str(token)), field)
        assert PRESETS[name].refuses(own) is None, (name, text)


def _events(bridge: StandIn, name: str) -> list[dict[str, object]]:
    return [e for e in bridge.events() if e.get("event") == name]


def test_the_wolfe_bridge_gets_no_order_from_any_door(
    tmp_path: Path, standin: StartStandIn
) -> None:
    """clotho2/Wolfe's bridge (its stand-in, with the right token) fills order_send and
    close_all: no door of the gate sends either. Its own health request is still answered,
    and a --also naming the token preset sends that request, not the environment's."""
    bridge_token = tmp_path / "bridge_side_token"
    bridge_token.write_text(TOKEN + "\n")
    bridge = standin(
        "wolfe_bridge", "--port", "0", "--pub-port", "0", "--token-file", str(bridge_token)
    )
    port = int(bridge.ports["rep"])
    codes = {}
    for request in ROUTED["token"][:2]:
        env = base_env(**env_for("token", request, port, tmp_path))
        for command in ("wait", "probe", "mesh", "health"):
            codes[command, request[:22]] = run_gate([command], env, log="text").code
    assert set(codes.values()) <= {64, 1}, codes
    assert all(code == 1 for (command, _), code in codes.items() if command == "health")
    assert _events(bridge, "request") == []
    # The preset's own request (health) is answered: the bridge was there to trade on.
    ready = base_env(**env_for("token", '{"action":"health","token":"$TOKEN"}', port, tmp_path))
    assert run_gate(["wait"], ready).code == 0
    assert len(_events(bridge, "request")) >= 1
    assert _events(bridge, "order_attempt") == []
