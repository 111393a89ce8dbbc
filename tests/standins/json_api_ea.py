"""Stand-in for the MQL5-JSON-API expert (JsonAPI.mq5, khramkov's design).

Written from (protocol facts only, no code taken): undali/MQL5-JSON-API (fork of
khramkov/MQL5-JSON-API) ``Experts/JsonAPI.mq5`` and ``Include/MQL5-JSON_API/Broker.mqh``
@ bcb6ab251cb38ad51669275cd2f551fa95cd2122.

Reproduced:
  * REP "system" on ``--system-port`` (15555); PUSH "data" (15556), "live" (15557) and
    "stream" (15558); linger 1000 and SNDHWM 1000 set before binding, as the EA does.
  * The 1 ms timer (``--timer-ms``), ONE non-blocking REP receive per tick; every send
    ZMQ_DONTWAIT and fire-and-forget (with no PULL peer a data reply is dropped).
  * Parse the JSON first (failure: ERR_DESERIALIZATION pushed on data at once), then
    exactly ``OK`` (2 bytes, no NUL) on the REP, then dispatch on the exact ``action``; an
    unknown or missing one pushes ERR_WRONG_ACTION (a parse failure: two data messages).
  * An EMPTY request is taken and never answered: the REP stays in its must-send state and
    every later receive fails with EFSM, ignored by the EA (``wedged``).
  * JAson-style output: compact, insertion key order, integers as integers, doubles with 8
    decimals, empty strings as ``null``. ACCOUNT's exact keys (trading_allowed and
    bot_trading as JSON ints), BALANCE (no ``error`` key), POSITIONS ``{"positions":[]}``,
    ORDERS ``{"error":false,"orders":[]}``, CONFIG / RESET success objects, TRADE's result
    with its misspelled ``desription`` key.
  * ``--trading-allowed`` / ``--bot-trading``, and ``--state-file`` lines such as
    ``trading_allowed=0``, ``bot_trading=0``, ``logged_in=0`` (logged out: account strings
    null, money 0), re-read when the file changes; keys it lacks take the flag values.

TRADE (an ``order_attempt`` line for every known actionType; the retcodes are the
stand-in's choice, the EA only relays the terminal's): trading disallowed 10027
CLIENT_DISABLES_AT, logged out 10031 CONNECTION, bot trading off 10026 SERVER_DISABLES_AT;
position/order management finds nothing (retcode 0: CTrade returns before sending); volume
<= 0 gives 10014 INVALID_VOLUME; else 10009 DONE (market) or 10008 PLACED (pending). An
unknown actionType pushes ERR_WRONG_ACTION (function TradingModule), then the retcode-0
error result, with no attempt.

Left out: the optional INDICATOR (PUSH 15559) and CHART (PULL 15560, PUB 15562) sockets;
HISTORY, INDICATOR and CHART get their ``OK`` but no data message (``not_reproduced`` is
printed); nothing is streamed on live or stream; the symbol checks (error 4301) in CONFIG
and TRADE; JAson's leniency (any text Python's json rejects is a parse failure; JSON that
is not an object has no action); MT5 alerts.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import zmq

from tests import standins as rt

MARKET = ("ORDER_TYPE_BUY", "ORDER_TYPE_SELL")
PENDING = (
    "ORDER_TYPE_BUY_LIMIT",
    "ORDER_TYPE_SELL_LIMIT",
    "ORDER_TYPE_BUY_STOP",
    "ORDER_TYPE_SELL_STOP",
)
MANAGE = (
    "POSITION_MODIFY",
    "POSITION_PARTIAL",
    "POSITION_CLOSE_ID",
    "POSITION_CLOSE_SYMBOL",
    "ORDER_MODIFY",
    "ORDER_CANCEL",
)
RETCODES = {
    10008: "TRADE_RETCODE_PLACED",
    10009: "TRADE_RETCODE_DONE",
    10014: "TRADE_RETCODE_INVALID_VOLUME",
    10026: "TRADE_RETCODE_SERVER_DISABLES_AT",
    10027: "TRADE_RETCODE_CLIENT_DISABLES_AT",
    10031: "TRADE_RETCODE_CONNECTION",
}
STATE_KEYS = ("trading_allowed", "bot_trading", "logged_in")
BID, ASK, BALANCE = 1.08501, 1.08503, 10000.0


def javal(value: Any) -> str:
    if value is None or value == "":
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.8f}"
    if isinstance(value, list):
        return "[" + ",".join(javal(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def serialize(*pairs: tuple[str, Any]) -> bytes:
    return ("{" + ",".join(f'"{key}":{javal(value)}' for key, value in pairs) + "}").encode()


def done_or_error(code: int, function: str, description: str) -> bytes:
    return serialize(
        ("error", code != 0),
        ("lastError", str(code)),
        ("description", description),
        ("function", function),
    )


FIXED = {
    "CONFIG": done_or_error(0, "ScriptConfiguration", "ERR_SUCCESS"),
    "RESET": done_or_error(0, "ResetSubscriptionsAndIndicators", "ERR_SUCCESS"),
    "POSITIONS": serialize(("positions", [])),
    "ORDERS": serialize(("error", False), ("orders", [])),
}


def to_str(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else json.dumps(value)


def to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


class JsonApiEa:
    def __init__(
        self, args: argparse.Namespace, events: rt.Events, system: rt.Socket, data: rt.Socket
    ) -> None:
        self.events, self.system, self.data = events, system, data
        self.defaults = {
            "trading_allowed": args.trading_allowed,
            "bot_trading": args.bot_trading,
            "logged_in": 1,
        }
        self.state = dict(self.defaults)
        self.control = rt.WatchedFile(args.state_file)
        self.next_ticket = 500000000

    def refresh(self) -> None:
        switches = rt.read_switches(self.control, self.defaults, STATE_KEYS, self.events)
        if switches is not None:
            self.state = switches

    def on_timer(self) -> None:
        self.refresh()
        try:
            request = self.system.recv(zmq.DONTWAIT)
        except zmq.ZMQError:  # EAGAIN, or EFSM once wedged: the EA ignores recv's result
            return
        self.events.received(request)
        if not request:
            self.events.emit("wedged")
            return
        self.handle(request)

    def push(self, payload: bytes) -> None:
        rt.send_nowait(self.events, self.data, "data", payload)

    def handle(self, request: bytes) -> None:
        try:
            message: Any = json.loads(request.decode("utf-8", errors="replace"))
        except ValueError:
            message = None
            self.push(done_or_error(65537, "RequestHandler", "ERR_DESERIALIZATION"))
        rt.send_nowait(self.events, self.system, "system", b"OK")
        fields: dict[str, Any] = message if isinstance(message, dict) else {}
        action = fields.get("action")
        if action == "ACCOUNT":
            self.push(self.account())
        elif action == "BALANCE":
            self.push(serialize(*self.money()[:4]))
        elif isinstance(action, str) and action in FIXED:
            self.push(FIXED[action])
        elif action == "TRADE":
            self.trade(fields, request)
        elif action in ("HISTORY", "INDICATOR", "CHART"):
            self.events.emit("not_reproduced", action=action)
        else:
            self.push(done_or_error(65538, "RequestHandler", "ERR_WRONG_ACTION"))

    def money(self) -> list[tuple[str, Any]]:
        balance = BALANCE if self.state["logged_in"] else 0.0
        return [
            ("balance", balance),
            ("equity", balance),
            ("margin", 0.0),
            ("margin_free", balance),
            ("margin_level", 0.0),
        ]

    def account(self) -> bytes:
        logged_in = bool(self.state["logged_in"])
        return serialize(
            ("error", False),
            ("broker", "Stand-in Markets Ltd" if logged_in else ""),
            ("currency", "USD" if logged_in else ""),
            ("server", "StandIn-Demo" if logged_in else ""),
            ("trading_allowed", self.state["trading_allowed"]),
            ("bot_trading", self.state["bot_trading"] if logged_in else 0),
            *self.money(),
        )

    def trade(self, fields: dict[str, Any], request: bytes) -> None:
        kind = to_str(fields.get("actionType"))
        if kind not in MARKET + PENDING + MANAGE:
            self.push(done_or_error(65538, "TradingModule", "ERR_WRONG_ACTION"))
            self.push(self.result(0))
            return
        self.events.order_attempt(request)
        volume = to_float(fields.get("volume"))
        if not self.state["trading_allowed"]:
            self.push(self.result(10027))
        elif not self.state["logged_in"]:
            self.push(self.result(10031))
        elif not self.state["bot_trading"]:
            self.push(self.result(10026))
        elif kind in MANAGE:
            self.push(self.result(0))
        elif volume <= 0:
            self.push(self.result(10014))
        else:
            self.next_ticket += 1
            price = BID if kind == "ORDER_TYPE_SELL" else ASK
            if kind in PENDING:
                price = to_float(fields.get("price"))
            code = 10009 if kind in MARKET else 10008
            self.push(
                self.result(
                    code, order=self.next_ticket, volume=volume, price=price, bid=BID, ask=ASK
                )
            )

    def result(
        self,
        code: int,
        *,
        order: int = 0,
        volume: float = 0.0,
        price: float = 0.0,
        bid: float = 0.0,
        ask: float = 0.0,
    ) -> bytes:
        return serialize(
            ("error", code not in (10008, 10009)),
            ("retcode", code),
            ("desription", RETCODES.get(code, f"TRADE_RETCODE_UNKNOWN={code}")),
            ("order", order),
            ("volume", volume),
            ("price", price),
            ("bid", bid),
            ("ask", ask),
            ("function", "TradingModule"),
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = rt.common_parser("python -m tests.standins.json_api_ea", "MQL5-JSON-API EA stand-in")
    parser.add_argument("--system-port", type=int, default=15555, help="REP: requests, OK")
    parser.add_argument("--data-port", type=int, default=15556, help="PUSH: replies")
    parser.add_argument("--live-port", type=int, default=15557, help="PUSH: live (unused)")
    parser.add_argument("--stream-port", type=int, default=15558, help="PUSH: stream (unused)")
    parser.add_argument("--timer-ms", type=rt.parse_ms, default=1.0, help="timer period (1 ms)")
    parser.add_argument("--trading-allowed", type=int, choices=(0, 1), default=1)
    parser.add_argument("--bot-trading", type=int, choices=(0, 1), default=1)
    parser.add_argument(
        "--state-file",
        default=None,
        metavar="PATH",
        help="key=value lines (trading_allowed, bot_trading, logged_in)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    events, stopper = rt.Events(), rt.Stopper(args.exit_after)
    if not rt.begin(events, stopper, args.start_delay):
        return 0
    ctx = zmq.Context()
    try:
        system = ctx.socket(zmq.REP)
        pushes = [ctx.socket(zmq.PUSH) for _ in range(3)]
        for sock in (system, *pushes):
            sock.setsockopt(zmq.LINGER, 1000)
            sock.setsockopt(zmq.SNDHWM, 1000)
        ports = rt.bind_all(
            events,
            args.bind,
            [
                ("system", system, args.system_port),
                ("data", pushes[0], args.data_port),
                ("live", pushes[1], args.live_port),
                ("stream", pushes[2], args.stream_port),
            ],
        )
        if ports is None:
            return 1
        events.emit("listening", ports=ports)
        ea = JsonApiEa(args, events, system, pushes[0])
        rt.run_timer(stopper, args.timer_ms / 1000, ea.on_timer)
    finally:
        ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
