"""Named bridge presets (``--bridge NAME`` / ``GATE_BRIDGE``): each public bridge's protocol
facts, read from its source, as option values.

A preset sets the transport, the default ports, the readiness request, the judgement and
the STATUS policy; any flag or variable still overrides each of them. "Ready" means the
strategy could trade now: a preset's request is the bridge's own side-effect-free
question whose answer says so (account data, algo trading on), never a bare heartbeat.
A preset also refuses, at start, a configured request that its bridge would route to
trading: ``TRADING``, one table, is what each bridge routes to trading and how it matches
a request; every door (wait, probe, health, mesh, ``--also ...?bridge=``) goes through
the settings, which apply it. Sources (repository, file, commit) are in docs/BRIDGES.md.
"""

import json
from collections.abc import Callable
from typing import Any, NamedTuple

from entrypoint.gateway.endpoint import HANDSHAKE, PUSH_PULL, REQ, REQ_PULL, RPYC, TRANSPORTS
from entrypoint.gateway.requests import RequestTemplate

# What a request looks like to the bridge: the rendered text, and its JSON object (or
# None for a text request). Rendered, so a "$file:" holding an action is judged too.
Matcher = Callable[["Sent", tuple[str, ...]], str | None]


class Sent:
    # A plain slotted class, not a NamedTuple: made for one check, never compared, and
    # each NamedTuple class costs every healthcheck ~0.1 ms to create.
    __slots__ = ("body", "text")

    def __init__(self, text: str, body: dict[str, Any] | None) -> None:
        self.text = text
        self.body = body

    @classmethod
    def of(cls, request: RequestTemplate) -> "Sent":
        text = request.render().decode()
        body = json.loads(text) if request.is_json else None
        return cls(text, body if isinstance(body, dict) else None)


def _normal(word: str) -> str:
    """Wider than any bridge's own test (they compare exactly): a case or white-space
    variant of a trading action is refused too, at no cost to a safe request."""
    return word.strip().casefold()


def _json_action(sent: Sent, actions: tuple[str, ...]) -> str | None:
    """The bridge reads the top-level ``action`` of a JSON object (clotho2/Wolfe:
    ``req.get("action") == "order_send"``; khramkov: ``message["action"] == "TRADE"``).
    Every key spelled ``action`` in any case is looked at, and every value that is text."""
    if sent.body is None:
        return None
    trading = {_normal(action): action for action in actions}
    for key, value in sent.body.items():
        if _normal(key) == "action" and isinstance(value, str) and _normal(value) in trading:
            return f'"action": "{trading[_normal(value)]}" is routed to trading'
    return None


def _dwx_command(sent: Sent, commands: tuple[str, ...]) -> str | None:
    """darwinex's EA splits the text on ";" and routes ``TRADE;OPEN``, ``TRADE;MODIFY`` and
    every ``TRADE;CLOSE...`` to OrderSend, OrderModify and OrderClose: a field that starts
    with one of them is refused (CLOSE_PARTIAL, CLOSE_MAGIC, CLOSE_ALL included)."""
    if sent.body is not None:
        return None
    fields = [field.strip().upper() for field in sent.text.split(";")]
    if fields[0] == "TRADE" and len(fields) > 1 and fields[1].startswith(commands):
        return f"{';'.join(fields[:2])} opens, modifies or closes orders"
    return None


def _any_word_but(sent: Sent, words: tuple[str, ...]) -> str | None:
    """luzhengheng's Direct_Zmq EA sends any message containing "action" or "magic" to
    OrderSend (a substring test on the whole message), v5 unless it holds GET_SYMBOL_INFO
    (matched exactly, as the EA does; the trigger words in any case)."""
    *triggers, exception = words
    text = sent.text
    if exception and exception in text:
        return None
    if any(word in text.casefold() for word in triggers):
        unless = f" unless it holds {exception}" if exception else ""
        return f'this EA sends every message with "action" or "magic" to OrderSend{unless}'
    return None


def _mt5_calls(sent: Sent, _words: tuple[str, ...]) -> str | None:
    """mt5linux serves the whole MetaTrader5 package: anything but the read-only calls
    (gateway/mt5linux.py) is refused, not only the trading ones named in the table."""
    from entrypoint.gateway import mt5linux  # noqa: PLC0415 - only for --bridge mt5linux

    if sent.body is not None:
        return "a JSON request is not a MetaTrader5 call"
    try:
        mt5linux.parse_calls(sent.text)
    except ValueError as exc:
        return str(exc)
    return None


class Trading(NamedTuple):
    """What one bridge routes to trading (``words``, as the bridge spells them), and how it
    matches a request against them (``match``)."""

    words: tuple[str, ...]
    match: Matcher
    example: str = ""  # a request the bridge would route to trading (docs, tests)

    def refusal(self, request: RequestTemplate) -> str | None:
        return self.match(Sent.of(request), self.words) if self.words else None


def _first_field(sent: Sent, commands: tuple[str, ...]) -> str | None:
    """AwesomeTrading/PyMetaTrader's EA splits the text on ";" and compares the first field
    exactly (``OPEN_ORDER;EURUSD;...``); its broker routes every first field that starts
    with SUB or UNSUB to the EA that publishes. A first field equal to one of ``commands``
    (``SUB_``/``UNSUB_`` as prefixes) is refused, any case, trimmed."""
    if sent.body is not None:
        return None
    first = _normal(sent.text.split(";", 1)[0]).upper()
    exact = {command for command in commands if not command.endswith("_")}
    prefixes = tuple(command for command in commands if command.endswith("_"))
    if first in exact:
        return f"{first} opens, modifies, cancels or closes orders"
    if first.startswith(prefixes):
        return f"{first} changes the EA's subscriptions"
    return None


def _nothing(_sent: Sent, _words: tuple[str, ...]) -> str | None:
    return None


# THE table: each preset's trading actions. The rehearsal dialects mt5-gate and plain-ok
# are mt5-gate sim's, which trade on nothing.
TRADING: dict[str, Trading] = {
    "mt5-gate": Trading((), _nothing),
    # luzhengheng/MT5's Work Order #022 gateway (src/gateway/zmq_service.py) speaks the
    # heartbeat envelope: OPEN_ORDER, CLOSE_POSITION and KILL_SWITCH (which closes every
    # position) reach the terminal.
    "heartbeat": Trading(
        ("OPEN_ORDER", "CLOSE_POSITION", "KILL_SWITCH"),
        _json_action,
        '{"action":"KILL_SWITCH","req_id":"1","timestamp":1,"payload":{}}',
    ),
    "plain-ok": Trading((), _nothing),
    # clotho2/Wolfe-Trading-Desk scripts/mt5_bridge_server.py: both call mt5.order_send.
    "token": Trading(
        ("order_send", "close_all"),
        _json_action,
        '{"action":"order_send","symbol":"EURUSD","side":"BUY","qty":0.01}',
    ),
    # khramkov/MQL5-JSON-API: "TRADE" goes to TradingModule (open, modify, close, cancel).
    "mql5-json-api": Trading(
        ("TRADE",), _json_action, '{"action":"TRADE","actionType":"ORDER_TYPE_BUY"}'
    ),
    # darwinex/dwx-zeromq-connector: TRADE;OPEN / MODIFY / CLOSE*.
    "dwx": Trading(
        ("OPEN", "MODIFY", "CLOSE"), _dwx_command, "TRADE;OPEN;0;EURUSD;0;0;0;0.01;1;x;0"
    ),
    # luzhengheng/MT5 Direct_Zmq v5 and v4 (the last word is the exception; v4 has none).
    "trade-on-action": Trading(
        ("action", "magic", "GET_SYMBOL_INFO"), _any_word_but, '{"action":"BUY","symbol":"EURUSD"}'
    ),
    "no-safe-request": Trading(("action", "magic", ""), _any_word_but, '{"action":"PING"}'),
    # ejtraderLabs' ejtraderMT.mq5: "TRADE" goes to TradingModule; "CONFIG" adds a symbol
    # subscription (a state change). An empty request is refused for every preset
    # (requests.parse_request): this EA never answers one and its REP stays stuck.
    "ejtrader": Trading(
        ("TRADE", "CONFIG"), _json_action, '{"action":"TRADE","actionType":"ORDER_TYPE_BUY"}'
    ),
    # AwesomeTrading/PyMetaTrader Server.mqh: the five order commands; SUB_*/UNSUB_* change
    # what the EA publishes.
    "pymetatrader": Trading(
        (
            "OPEN_ORDER",
            "MODIFY_ORDER",
            "CANCEL_ORDER",
            "MODIFY_TRADE",
            "CLOSE_TRADE",
            "SUB_",
            "UNSUB_",
        ),
        _first_field,
        "OPEN_ORDER;EURUSD;buy;0.01;0;0;0;0",
    ),
    # lucas-campagna/mt5linux: the MetaTrader5 package itself (order_send, shutdown...).
    "mt5linux": Trading(("order_send", "shutdown", "login"), _mt5_calls, "order_send"),
}


class Preset(NamedTuple):
    name: str
    summary: str
    values: dict[str, str]  # option field -> raw value, as a variable would give it
    handshake_socket: str = "req"  # what a handshake (and passive health) connects
    publishes: bool = True  # it has a PUB port (checked by default on a req transport)
    # Each request socket gets its own printable identity: the bridge routes its answer by
    # the identity turned into text (PyMetaTrader), so an automatic one would be lost.
    named_requests: bool = False
    # The broker state a silence means: the handshake done, never an answer (a broker
    # that holds the request for a worker that is not there).
    silent_state: str | None = None
    text_fields: bool = False  # replies are OK|key=value|... or KO|<text> (PyMetaTrader)

    def refuses(self, request: RequestTemplate) -> str | None:
        """Why this preset's bridge would trade on ``request``, or None (``TRADING``)."""
        return TRADING[self.name].refusal(request)


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("mt5-gate", "the gate's own PING/STATUS dialect (the default)", {}),
        Preset(
            "heartbeat",
            "luzhengheng/MT5's Work Order #022 gateway: a request envelope with HEARTBEAT",
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
        ),
        Preset(
            "ejtrader",
            "ejtraderLabs' ejtraderMT EA: one REP on 15557, ACCOUNT says whether it can trade",
            {
                "port": "15557",
                "ping_request": '{"action":"ACCOUNT"}',
                "status_request": "none",
                # As mql5-json-api (its ancestor), and logged in: the EA has no login field,
                # an empty server (null in its JSON) is a terminal with no account.
                "ready_when": "error == `false` && contains([`1`, `true`], trading_allowed) && "
                "contains([`1`, `true`], bot_trading) && length(server || '') > `0`",
            },
            publishes=False,
        ),
        Preset(
            "pymetatrader",
            "AwesomeTrading/PyMetaTrader: REQ to its broker, ACCOUNT answered OK|id=<login>|...",
            {
                "port": "22880",
                "pub_port": "22881",
                "ping_request": "ACCOUNT",
                "status_request": "none",
                "ready_when": "status == 'OK' && data.id != '0' && length(data.server || '') > `0`",
            },
            named_requests=True,
            silent_state="no_ea_attached",
            text_fields=True,
        ),
        Preset(
            "mt5linux",
            "lucas-campagna/mt5linux: the MetaTrader5 package behind an rpyc classic server",
            {
                "transport": RPYC,
                "port": "18812",
                "ping_request": "terminal_info account_info last_error version",
                "status_request": "none",
                # gateway/mt5linux.py READY_WHEN, spelled out: presets import no rpyc code.
                "ready_when": "terminal_info.connected == `true` && "
                "terminal_info.trade_allowed == `true` && "
                "terminal_info.tradeapi_disabled == `false` && "
                "account_info.trade_allowed == `true` && account_info.trade_expert == `true`",
            },
        ),
        Preset(
            "no-safe-request",
            "an EA that answers only trades: the handshake, no request",
            {"transport": HANDSHAKE, "status_request": "none"},
        ),
    )
}
DEFAULT_PRESET = PRESETS["mt5-gate"]
assert set(TRADING) == set(PRESETS), "every preset has its row of refusals"
assert all(p.values.get("transport", REQ) in TRANSPORTS for p in PRESETS.values())


def parse_bridge(text: str) -> Preset:
    name = text.strip().lower()
    if name not in PRESETS:
        raise ValueError(f"expected one of {', '.join(PRESETS)}")
    return PRESETS[name]
