"""How the simulated gateway answers, one function per bridge dialect (``sim --dialect``).

Each reproduces a kind of MT5 bridge found in the wild, so that tests, demos and users can
rehearse the gate's settings against it (docs/BRIDGES.md has the recipe for each):

- ``mt5-gate``: ``{"action": "PING"}`` → ``{"status": "OK", ...}``, and STATUS.
- ``heartbeat``: every request must carry ``action``, ``req_id``, ``timestamp`` (epoch
  seconds, a number) and ``payload`` (an object); ``HEARTBEAT`` answers ``{"req_id": ...,
  "status": "SUCCESS", "data": {"status": "alive"}, "error": null}``; anything else is
  ``{"status": "ERROR", "error": "Invalid request structure"}``.
- ``token`` (clotho2/Wolfe-Trading-Desk's bridge): every request must carry the shared
  ``token`` (else ``{"ok": false, "error": "unauthorized"}``); ``health`` answers
  ``{"ok": true, "balance": 10000.0}``, an unknown action ``"unknown_action"``.
- ``plain-ok``: answers the bare string ``OK`` (not JSON) to anything.
- ``trade-on-action`` (luzhengheng/MT5 Direct_Zmq v5): a message containing
  ``GET_SYMBOL_INFO`` is quoted, ``{"status":"OK","data":{"bid":...,"ask":...}}``; any
  other containing ``action`` or ``magic`` goes to OrderSend.
- ``no-safe-request`` (Direct_Zmq v4): no quote at all; anything containing ``action`` or
  ``magic`` goes to OrderSend (refused for its volume 0: ``{"status":"ERROR",
  "retcode":10014}``).
- ``ejtrader`` (ejtraderMT's EA): ``{"action":"ACCOUNT"}`` answers the account with
  ``trading_allowed`` and ``bot_trading`` as 0/1; any other action ``ERR_WRONG_ACTION``;
  ``TRADE`` is an order attempt (refused).
- ``pymetatrader`` (PyMetaTrader's broker and EA, as one REP): ``ACCOUNT`` answers
  ``OK|id=<login>|...``, ``PING`` ``OK|PONG``, an order command is an order attempt
  (``KO|...``), anything else ``KO|Unknown command``.

``--broker-state`` names what ejtrader's and pymetatrader's ACCOUNT reports (Algo Trading
off, expert trading off, not logged in: empty server, ``id=0``).

Every order attempt is logged as ``sim.order_attempt``, so a test can prove the gate never
placed one. The bridges with a second socket for their answers (``dwx``,
``mql5-json-api``) are in bridges.py.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

from entrypoint.log import events
from entrypoint.log.events import emit

TICK_SYMBOLS = {"EURUSD": 1.0850, "GBPUSD": 1.2650, "USDJPY": 151.20}
# The heartbeat bridge refuses requests whose timestamp is this far from its clock
# (replay protection), so a template must send a fresh "$now_epoch", not a constant.
HEARTBEAT_MAX_SKEW_S = 30.0
DEFAULT_TICK_HZ = 10.0  # sim --tick-hz
MT5_TRADE_RETCODE_DONE = 10009
MT5_TRADE_RETCODE_INVALID_VOLUME = 10014
# The bridges that answer on a second (PUSH) socket: bridges.py serves them.
TWO_SOCKET_DIALECTS = ("dwx", "mql5-json-api")
# What ``--broker-state`` may say, per dialect: dwx's CheckOpsStatus refusals (the EA answers
# "{'_response': 'WORD__ABORTED_COMMAND'}"), and the two switches MQL5-JSON-API reports.
BROKER_STATES: dict[str, tuple[str, ...]] = {
    "dwx": (
        "TRADING_IS_NOT_ALLOWED",
        "EA_IS_DISABLED",
        "TRADE_CONTEXT_BUSY",
        "DLLS_DISABLED",
        "LIBS_DISABLED",
        "NO_BROKER_CONNECTION",
    ),
    "mql5-json-api": ("algo_trading_off", "ea_trading_off"),
    "ejtrader": ("algo_trading_off", "ea_trading_off", "not_logged_in"),
    "pymetatrader": ("not_logged_in",),
}
# ``sim --dialect mt5linux`` (sim/mt5linux.py): an rpyc classic server, not ZeroMQ.
RPYC_DIALECTS = ("mt5linux",)
# Its --broker-state words: the gate's names for them (gateway/broker_states.py).
MT5LINUX_STATES = (
    "terminal_not_attached",
    "terminal_starting",
    "no_broker_connection",
    "algo_trading_off",
    "api_disabled",
    "not_logged_in",
    "investor_login",
    "account_expert_trading_off",
)


@dataclasses.dataclass
class SimState:
    """What the answers need beyond the request: start time, token, the order counter."""

    started: float
    log: Any
    token: str | None = None
    bad_status: bool = False
    orders: int = 0
    broker_state: str | None = None


def record_order(state: SimState, action: str | None, request: bytes) -> int:
    """Count and log one order attempt (``sim.order_attempt``); return its number."""
    state.orders += 1
    emit(
        state.log,
        events.SIM_ORDER_ATTEMPT,
        order=state.orders,
        action=action or None,
        request=request.decode("utf-8", "backslashreplace")[:200],
    )
    return state.orders


def quote(symbol: str) -> tuple[float, float] | None:
    """The simulator's fixed (bid, ask) for a symbol it knows: EURUSD 1.08501/1.08503."""
    price = TICK_SYMBOLS.get(symbol)
    return None if price is None else (round(price + 0.00001, 5), round(price + 0.00003, 5))


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def _parse(request: bytes) -> Any:
    try:
        return json.loads(request)
    except (ValueError, RecursionError):
        return None


def _action(message: Any) -> str:
    return str(message.get("action", "")).upper() if isinstance(message, dict) else ""


def mt5_gate(request: bytes, state: SimState) -> bytes:
    message = _parse(request)
    if message is None:
        return _json({"status": "ERROR", "message": "request is not JSON"})
    action = _action(message)
    if state.bad_status:
        return _json({"status": "MAINTENANCE", "action": action})
    if action == "PING":
        return _json(
            {
                "status": "OK",
                "action": "PING",
                "message": "pong",
                "timestamp": now_iso(),
                "server": "mt5-gate-sim",
            }
        )
    if action == "STATUS":
        return _json(
            {
                "status": "OK",
                "action": "STATUS",
                "terminal_connected": True,
                "trade_allowed": True,
                "symbols": sorted(TICK_SYMBOLS),
                "uptime_s": round(time.monotonic() - state.started, 3),
                "timestamp": now_iso(),
            }
        )
    return _json({"status": "ERROR", "message": f"unknown action {action!r}"})


def heartbeat(request: bytes, state: SimState) -> bytes:
    message = _parse(request)
    req_id = message.get("req_id") if isinstance(message, dict) else None

    def error(text: str) -> bytes:
        return _json(
            {
                "req_id": req_id if isinstance(req_id, str) else None,
                "status": "ERROR",
                "data": None,
                "error": text,
            }
        )

    if not (
        isinstance(message, dict)
        and isinstance(message.get("action"), str)
        and isinstance(req_id, str)
        and req_id
        and isinstance(message.get("payload"), dict)
        and _is_epoch(message)
    ):
        return error("Invalid request structure")
    if abs(time.time() - float(message["timestamp"])) > HEARTBEAT_MAX_SKEW_S:
        return error("Stale request")
    action = message["action"].upper()
    if action == "HEARTBEAT":
        return _json(
            {"req_id": req_id, "status": "SUCCESS", "data": {"status": "alive"}, "error": None}
        )
    if action == "GET_ACCOUNT_INFO":
        return _json(
            {
                "req_id": req_id,
                "status": "SUCCESS",
                "data": {"login": 5001234, "balance": 10000.0, "currency": "USD"},
                "error": None,
            }
        )
    return error(f"Unknown action: {message['action']}")


def _is_epoch(message: dict[str, Any]) -> bool:
    stamp = message.get("timestamp")
    return isinstance(stamp, int | float) and not isinstance(stamp, bool) and math.isfinite(stamp)


# The token bridge's read-only actions: no account positions, so close_all sends nothing.
TOKEN_ANSWERS = {
    "health": {"ok": True, "balance": 10000.0},
    "positions": {"ok": True, "positions": []},
    "close_all": {"ok": True},
}


def token(request: bytes, state: SimState) -> bytes:
    """Its REP loop: decode, json.loads, compare the token, dispatch ``action`` exactly; an
    exception is answered with its text, as the bridge's ``except`` does."""
    try:
        message = json.loads(request.decode("utf-8"))
        if message.get("token") != state.token:
            return _json({"ok": False, "error": "unauthorized"})
        action = message.get("action")
        if action == "order_send":
            float(message.get("qty"))  # the bridge's own check: no qty is an error
            return _json({"ok": True, "order_id": record_order(state, action, request)})
        known = TOKEN_ANSWERS.get(action) if isinstance(action, str) else None
        return _json(known or {"ok": False, "error": "unknown_action"})
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        return _json({"ok": False, "error": str(exc)})


def plain_ok(_request: bytes, _state: SimState) -> bytes:
    return b"OK"


UNKNOWN_DIRECT_ZMQ = b'{"status":"ERROR","msg":"Unknown"}'


def _ea_value(text: str, key: str) -> str:
    """The EA's GetJsonValue: after the literal ``"key":`` and any spaces or colons, a quoted
    string, or the text up to the next , or }; "" when the key is missing."""
    start = text.find(f'"{key}":')
    if start < 0:
        return ""
    at = start + len(key) + 3
    while text[at : at + 1] in (" ", ":"):
        at += 1
    if text[at : at + 1] == '"':
        at += 1
        end = text.find('"', at)
    else:
        end = min((e for e in (text.find(",", at), text.find("}", at)) if e >= 0), default=-1)
    return "" if end < 0 else text[at:end]


def mql_int(text: str) -> int:
    """MQL's StrToInteger: the leading whole number, else 0."""
    found = re.match(r"\s*[+-]?\d+", text)
    return int(found.group()) if found else 0


def mql_double(text: str) -> float:
    """MQL's StrToDouble: the leading decimal number, else 0.0."""
    found = re.match(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text)
    return float(found.group()) if found else 0.0


def _places_order(text: str) -> bool:
    return "action" in text or "magic" in text


def trade_on_action(request: bytes, state: SimState) -> bytes:
    """Direct_Zmq v5: substring matches on the raw message, as the EA does."""
    text = request.decode("utf-8", "replace")
    if "GET_SYMBOL_INFO" in text:
        prices = quote(_ea_value(text, "symbol") or "EURUSD")  # no symbol: the chart's
        if prices is None:
            return b'{"status":"ERROR","msg":"Symbol Not Found"}'
        return b'{"status":"OK","data":{"bid":%.5f,"ask":%.5f}}' % prices
    if not _places_order(text):
        return UNKNOWN_DIRECT_ZMQ
    ticket = record_order(state, _ea_value(text, "action"), request)
    if not mql_double(_ea_value(text, "volume")) > 0:  # MT5 refuses an order of volume 0
        return b'{"status":"ERROR", "retcode":%d}' % MT5_TRADE_RETCODE_INVALID_VOLUME
    return b'{"status":"FILLED","retcode":%d,"ticket":%d,"deal":%d}' % (
        MT5_TRADE_RETCODE_DONE,
        ticket,
        ticket,
    )


def no_safe_request(request: bytes, state: SimState) -> bytes:
    """Direct_Zmq v4: every request with ``action`` or ``magic`` is an order (refused)."""
    text = request.decode("utf-8", "replace")
    if not _places_order(text):
        return UNKNOWN_DIRECT_ZMQ
    record_order(state, _ea_value(text, "action"), request)
    return b'{"status":"ERROR", "retcode":%d}' % MT5_TRADE_RETCODE_INVALID_VOLUME


def ejtrader(request: bytes, state: SimState) -> bytes:
    """ejtraderMT.mq5's RequestHandler: the exact ``action`` of a JSON object."""
    message = _parse(request)
    action = message.get("action") if isinstance(message, dict) else None
    if action == "ACCOUNT":
        off, logged_in = state.broker_state, state.broker_state != "not_logged_in"
        return _json(
            {
                "error": False,
                "broker": "Simulated Markets" if logged_in else None,
                "currency": "USD" if logged_in else None,
                "server": "Sim-Demo" if logged_in else None,
                "trading_allowed": int(off != "algo_trading_off"),
                "bot_trading": int(logged_in and off != "ea_trading_off"),
                "balance": 10000.0 if logged_in else 0.0,
                "time": time.strftime("%Y.%m.%d %H:%M:%S", time.gmtime()),
            }
        )
    if action == "TRADE":
        record_order(state, action, request)
        code, text = 10027, "TRADE_RETCODE_CLIENT_DISABLES_AT"
    else:
        code, text = (
            (65537, "ERR_DESERIALIZATION") if message is None else (65538, "ERR_WRONG_ACTION")
        )
    return _json({"error": True, "lastError": str(code), "description": text, "function": "sim"})


_PYMETATRADER_ORDERS = ("OPEN_ORDER", "MODIFY_ORDER", "CANCEL_ORDER", "MODIFY_TRADE", "CLOSE_TRADE")


def pymetatrader(request: bytes, state: SimState) -> bytes:
    """PyMetaTrader's MTServer behind its broker: the first ``;`` field, compared exactly."""
    command = request.decode("utf-8", "replace").split(";", maxsplit=1)[0]
    if command == "PING":
        return b"OK|PONG"
    if command == "ACCOUNT":
        if state.broker_state == "not_logged_in":
            return b"OK|id=0|name=|company=|server=|type=real|currency=|deposit=0|margin=0"
        return (
            b"OK|id=5001234|name=Sim Trader|company=Simulated Markets|server=Sim-Demo"
            b"|type=demo|currency=USD|deposit=10000|margin=0|leverage=100|gmtoffset=0"
        )
    if command in _PYMETATRADER_ORDERS:
        record_order(state, command, request)
        return b"KO|Autotrading disabled by client"
    return b"KO|Unknown command"


# The bridges with one REQ/REP socket, each answer a function of the request.
DIALECTS: dict[str, Callable[[bytes, SimState], bytes]] = {
    "mt5-gate": mt5_gate,
    "heartbeat": heartbeat,
    "token": token,
    "plain-ok": plain_ok,
    "trade-on-action": trade_on_action,
    "no-safe-request": no_safe_request,
    "ejtrader": ejtrader,
    "pymetatrader": pymetatrader,
}
# Every dialect, as `sim --dialect` offers them (a test checks each is offered once).
ALL_DIALECTS: tuple[str, ...] = (*DIALECTS, *TWO_SOCKET_DIALECTS, *RPYC_DIALECTS)
