"""Named bridge presets (``--bridge NAME`` / ``GATE_BRIDGE``): each public bridge's protocol
facts, read from its source, as option values.

A preset sets the transport, the default ports, the readiness request, the judgement and
the STATUS policy; any flag or variable still overrides each of them. "Ready" means the
strategy could trade now: a preset's request is the bridge's own side-effect-free
question whose answer says so (account data, algo trading on), never a bare heartbeat.
A preset also refuses, at start, a configured request that its bridge would route to
trading. Sources (repository, file, commit) are in docs/BRIDGES.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from entrypoint.gateway.endpoint import HANDSHAKE, PUSH_PULL, REQ, REQ_PULL, TRANSPORTS
from entrypoint.gateway.requests import RequestTemplate

Refusal = Callable[[RequestTemplate], str | None]


def _no_refusal(_request: RequestTemplate) -> str | None:
    return None


class Preset(NamedTuple):
    name: str
    summary: str
    values: dict[str, str]  # option field -> raw value, as a variable would give it
    handshake_socket: str = "req"  # what a handshake (and passive health) connects
    refuses: Refusal = _no_refusal


def _dwx_trading(request: RequestTemplate) -> str | None:
    """darwinex/dwx-zeromq-connector routes ``TRADE;OPEN|MODIFY|CLOSE...`` to OrderSend,
    OrderModify and OrderClose (any CLOSE_* variant closes positions)."""
    if request.is_json:
        return None
    fields = [field.strip().upper() for field in request.text.split(";")]
    if (
        fields[0] == "TRADE"
        and len(fields) > 1
        and fields[1].startswith(("OPEN", "MODIFY", "CLOSE"))
    ):
        return f"{';'.join(fields[:2])} opens, modifies or closes orders"
    return None


def _json_api_trading(request: RequestTemplate) -> str | None:
    """khramkov/MQL5-JSON-API dispatches ``"action": "TRADE"`` to its trading module."""
    action = request.action()
    if request.is_json and action is not None and action.upper() == "TRADE":
        return '"action": "TRADE" places, modifies or closes orders'
    return None


def _trade_on_action(request: RequestTemplate) -> str | None:
    """luzhengheng/MT5's Direct_Zmq EA sends any message holding "action" or "magic" to
    OrderSend, unless it holds GET_SYMBOL_INFO (a substring test on the whole message)."""
    text = request.text
    if "GET_SYMBOL_INFO" not in text and ("action" in text or "magic" in text):
        return (
            'this EA sends every message with "action" or "magic" to OrderSend unless '
            "it holds GET_SYMBOL_INFO"
        )
    return None


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("mt5-gate", "the gate's own PING/STATUS dialect (the default)", {}),
        Preset(
            "heartbeat",
            "a request envelope with HEARTBEAT (mt5-gate sim --dialect heartbeat)",
            {
                "ping_request": '{"action":"HEARTBEAT","req_id":"$uuid","timestamp":"$now_epoch",'
                '"payload":{}}',
                "status_request": "none",
                "ready_when": "status == 'SUCCESS' && data.status == 'alive'",
            },
        ),
        Preset(
            "token",
            "clotho2/Wolfe-Trading-Desk's bridge: a token in every request, action health",
            {
                "port": "5557",
                "ping_request": '{"action":"health","token":"$file:/run/secrets/bridge_token"}',
                "status_request": "none",
                "ready_when": "ok == `true` && balance != null",
            },
        ),
        Preset(
            "plain-ok",
            "a REP that answers the bare string OK",
            {"status_request": "none", "ready_when": "@ == 'OK'"},
        ),
        Preset(
            "trade-on-action",
            "luzhengheng/MT5's Direct_Zmq EA: GET_SYMBOL_INFO, anything "
            "else with an action is an order",
            {
                "ping_request": '{"action":"GET_SYMBOL_INFO","symbol":"EURUSD"}',
                "status_request": "none",
                "ready_when": "status == 'OK' && data.bid > `0` && data.ask > `0`",
            },
            refuses=_trade_on_action,
        ),
        Preset(
            "dwx",
            "darwinex/dwx-zeromq-connector: PUSH/PULL text commands, Python-literal replies",
            {
                "transport": PUSH_PULL,
                "port": "32768",
                "reply_port": "32769",
                "pub_port": "32770",
                "ping_request": "TRADE;GET_ACCOUNT_INFO",
                "status_request": "none",
                "ready_when": "_action == 'GET_ACCOUNT_INFORMATION' && length(_data || `[]`) > `0`",
            },
            handshake_socket="push",
            refuses=_dwx_trading,
        ),
        Preset(
            "mql5-json-api",
            "khramkov/MQL5-JSON-API: REQ acknowledged with OK, the answer on the Data PUSH socket",
            {
                "transport": REQ_PULL,
                "port": "15555",
                "reply_port": "15556",
                "ping_request": '{"action":"ACCOUNT"}',
                "status_request": "none",
                # Inside && JMESPath takes 0 for true: the flags are compared, not tested.
                "ready_when": "error == `false` && contains([`1`, `true`], trading_allowed) && "
                "contains([`1`, `true`], bot_trading)",
            },
            refuses=_json_api_trading,
        ),
        Preset(
            "no-safe-request",
            "an EA that answers only trades: the handshake, no request",
            {"transport": HANDSHAKE, "status_request": "none"},
        ),
    )
}
DEFAULT_PRESET = PRESETS["mt5-gate"]
assert all(p.values.get("transport", REQ) in TRANSPORTS for p in PRESETS.values())


def parse_bridge(text: str) -> Preset:
    name = text.strip().lower()
    if name not in PRESETS:
        raise ValueError(f"expected one of {', '.join(PRESETS)}")
    return PRESETS[name]
