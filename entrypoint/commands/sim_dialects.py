"""How the simulated gateway answers, one function per bridge dialect (``sim --dialect``).

Each reproduces a kind of MT5 bridge found in the wild, so that tests, demos and users can
rehearse the gate's settings against it (docs/BRIDGES.md has the recipe for each):

- ``mt5-gate``: ``{"action": "PING"}`` → ``{"status": "OK", ...}``, and STATUS.
- ``heartbeat``: every request must carry ``action``, ``req_id``, ``timestamp`` (epoch
  seconds, a number) and ``payload`` (an object); ``HEARTBEAT`` answers ``{"req_id": ...,
  "status": "SUCCESS", "data": {"status": "alive"}, "error": null}``; anything else is
  ``{"status": "ERROR", "error": "Invalid request structure"}``.
- ``token``: every request must carry the shared ``token``; without it ``{"ok": false,
  "error": "unauthorized"}``.
- ``plain-ok``: answers the bare string ``OK`` (not JSON) to anything.
- ``trade-on-action``: an EA that sends any request with an ``action`` key to OrderSend,
  except the read-only ``GET_SYMBOL_INFO``; every such order is logged as
  ``sim.order_attempt``, so a test can prove the gate never placed one.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import time
from collections.abc import Callable
from typing import Any

TICK_SYMBOLS = {"EURUSD": 1.0850, "GBPUSD": 1.2650, "USDJPY": 151.20}
# The heartbeat bridge refuses requests whose timestamp is this far from its clock
# (replay protection), so a template must send a fresh "$now_epoch", not a constant.
HEARTBEAT_MAX_SKEW_S = 30.0
READ_ONLY_ACTIONS = frozenset({"GET_SYMBOL_INFO"})
MT5_TRADE_RETCODE_DONE = 10009


@dataclasses.dataclass
class SimState:
    """What the answers need beyond the request: start time, token, the order counter."""

    started: float
    log: Any
    token: str | None = None
    bad_status: bool = False
    orders: int = 0


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
        return _json({"status": "OK", "action": "PING", "message": "pong",
                      "timestamp": now_iso(), "server": "mt5-gate-sim"})
    if action == "STATUS":
        return _json({"status": "OK", "action": "STATUS", "terminal_connected": True,
                      "trade_allowed": True, "symbols": sorted(TICK_SYMBOLS),
                      "uptime_s": round(time.monotonic() - state.started, 3),
                      "timestamp": now_iso()})
    return _json({"status": "ERROR", "message": f"unknown action {action!r}"})


def heartbeat(request: bytes, state: SimState) -> bytes:
    message = _parse(request)
    req_id = message.get("req_id") if isinstance(message, dict) else None

    def error(text: str) -> bytes:
        return _json({"req_id": req_id if isinstance(req_id, str) else None,
                      "status": "ERROR", "data": None, "error": text})

    if not (isinstance(message, dict) and isinstance(message.get("action"), str)
            and isinstance(req_id, str) and req_id
            and isinstance(message.get("payload"), dict) and _is_epoch(message)):
        return error("Invalid request structure")
    if abs(time.time() - float(message["timestamp"])) > HEARTBEAT_MAX_SKEW_S:
        return error("Stale request")
    action = message["action"].upper()
    if action == "HEARTBEAT":
        return _json({"req_id": req_id, "status": "SUCCESS", "data": {"status": "alive"},
                      "error": None})
    if action == "GET_ACCOUNT_INFO":
        return _json({"req_id": req_id, "status": "SUCCESS",
                      "data": {"login": 5001234, "balance": 10000.0, "currency": "USD"},
                      "error": None})
    return error(f"Unknown action: {message['action']}")


def _is_epoch(message: dict[str, Any]) -> bool:
    stamp = message.get("timestamp")
    return isinstance(stamp, int | float) and not isinstance(stamp, bool) and \
        math.isfinite(stamp)


def token(request: bytes, state: SimState) -> bytes:
    message = _parse(request)
    if not isinstance(message, dict) or message.get("token") != state.token:
        return _json({"ok": False, "error": "unauthorized"})
    action = _action(message)
    if action == "PING":
        return _json({"ok": True, "result": "pong", "error": None})
    if action == "STATUS":
        return _json({"ok": True, "result": {"terminal_connected": True}, "error": None})
    return _json({"ok": False, "error": f"unknown action {action!r}"})


def plain_ok(_request: bytes, _state: SimState) -> bytes:
    return b"OK"


def trade_on_action(request: bytes, state: SimState) -> bytes:
    message = _parse(request)
    if not isinstance(message, dict) or "action" not in message:
        return _json({"error": "no action"})
    action = _action(message)
    if action in READ_ONLY_ACTIONS:
        symbol = str(message.get("symbol", "EURUSD"))
        price = TICK_SYMBOLS.get(symbol)
        if price is None:
            return _json({"error": f"unknown symbol {symbol}"})
        return _json({"symbol": symbol, "bid": price, "ask": round(price + 0.0001, 5),
                      "digits": 5})
    # This EA's dispatcher: anything else with an "action" is an order.
    state.orders += 1
    state.log.warning("sim.order_attempt", order=state.orders, action=action or None,
                      request=request.decode("utf-8", "backslashreplace")[:200])
    return _json({"retcode": MT5_TRADE_RETCODE_DONE, "order": state.orders,
                  "comment": "Request executed"})


DIALECTS: dict[str, Callable[[bytes, SimState], bytes]] = {
    "mt5-gate": mt5_gate, "heartbeat": heartbeat, "token": token, "plain-ok": plain_ok,
    "trade-on-action": trade_on_action,
}
