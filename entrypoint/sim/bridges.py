"""``sim --dialect dwx`` and ``--dialect mql5-json-api``: bridges that answer on a second socket.

- ``dwx`` (darwinex/dwx-zeromq-connector's MT4 EA, the fork with GET_ACCOUNT_INFO):
  ``;``-separated commands come in on a PULL (``--port``); answers go out on a PUSH
  (``--reply-port``) as Python-literal dicts, each followed by a separate empty message (an
  unknown command gets only that empty message). The PUB (``--pub-port``) carries
  ``SYMBOL:|:bid;ask`` for the symbols a client asked for with TRACK_PRICES.
- ``mql5-json-api`` (khramkov/MQL5-JSON-API): a JSON request on the REP (``--port``, the
  System socket) is acknowledged there with the 2 bytes ``OK``, and answered on a PUSH
  (``--reply-port``, the Data socket) in compact JSON. Its PUB on ``--pub-port`` is the
  EA's experimental chart socket, bound and silent.

Both EAs send without blocking: an answer with no PULL connected is lost
(``sim.reply_dropped``), and so it is here. An empty request is never answered
(``sim.empty_request``): a REQ client that sent one is stuck, as against the real EA. The
simulator holds no positions: an order is logged (``sim.order_attempt``), confirmed, and
forgotten. The REP is a ROUTER, so that --reply-delay and --drop-first work as elsewhere.
"""

from __future__ import annotations

import argparse
import datetime
import heapq
import json
import math
import random
import time
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from entrypoint.errors import UsageError
from entrypoint.log import events
from entrypoint.log.events import emit
from entrypoint.log.logs import untrusted
from entrypoint.sim.dialects import (
    BROKER_STATES,
    DEFAULT_TICK_HZ,
    RPYC_DIALECTS,
    TICK_SYMBOLS,
    TWO_SOCKET_DIALECTS,
    SimState,
    mql_double,
    mql_int,
    quote,
    record_order,
)

# One step of an answer: ACK goes back on the request socket, PUSH out on the reply socket.
ACK, PUSH = "ack", "push"
Step = tuple[str, bytes]


def check_options(args: argparse.Namespace) -> None:
    """A flag that does not go with the chosen dialect is a usage error, never ignored."""
    if args.dialect in RPYC_DIALECTS:
        from entrypoint.sim.mt5linux import check_options as check_rpyc  # noqa: PLC0415

        check_rpyc(args)
        return
    if args.dialect not in TWO_SOCKET_DIALECTS:
        for flag, value, dialects in (
            ("--reply-port", args.reply_port, TWO_SOCKET_DIALECTS),
            ("--broker-state", args.broker_state, tuple(BROKER_STATES)),
        ):
            if value is not None and args.dialect not in dialects:
                raise UsageError(
                    f"{flag} goes with --dialect {' or '.join(dialects)}, not {args.dialect}"
                )
        _check_broker_state(args)
        return
    unsupported = {
        "--garbage": args.garbage,
        "--bad-status": args.bad_status,
        "--not-zmq": args.not_zmq,
        "--tick-hz": args.dialect == "mql5-json-api" and args.tick_hz is not None,
    }
    for flag, given in unsupported.items():
        if given:
            raise UsageError(f"{flag} is not simulated for --dialect {args.dialect}")
    if args.reply_port and args.reply_port in (args.port, args.pub_port):
        raise UsageError(f"--reply-port {args.reply_port} is already --port or --pub-port")
    _check_broker_state(args)


def _check_broker_state(args: argparse.Namespace) -> None:
    states = BROKER_STATES.get(args.dialect, ())
    if args.broker_state is not None and args.broker_state not in states:
        raise UsageError(
            f"--broker-state {args.broker_state!r} is not a state of --dialect "
            f"{args.dialect} (one of {', '.join(states)})"
        )


def _mt4_time(seconds: bool = False) -> str:
    """TimeToString's format (TimeToStr with TIME_SECONDS for ``seconds``), in UTC."""
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y.%m.%d %H:%M:%S" if seconds else "%Y.%m.%d %H:%M")


DWX_FIELDS = 11  # the EA splits a command into a fixed string[11]
DWX_TIMEFRAMES = {
    1: "M1",
    5: "M5",
    15: "M15",
    30: "M30",
    60: "H1",
    240: "H4",
    1440: "D1",
    10080: "W1",
    43200: "MN1",
}
DWX_MAX_LOTS = 0.01  # the EA's MaximumLotSize input, at its default
DWX_BUY_TYPES = (0, 2, 4)  # OP_BUY, OP_BUYLIMIT, OP_BUYSTOP
DwxHandler = Callable[[list[str], bytes], str]


class Dwx:
    """The DWX EA's InterpretZmqMessage and CheckOpsStatus, for a terminal with no orders."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.tracked: list[str] = []
        self.prices = dict(TICK_SYMBOLS)
        self.rng = random.Random()
        self.trade: dict[str, DwxHandler] = {
            "OPEN": self._open,
            "MODIFY": self._modify,
            "CLOSE": self._close,
            "CLOSE_PARTIAL": self._close_partial,
            "CLOSE_MAGIC": self._close_magic,
            "CLOSE_ALL": self._close_all,
            "GET_OPEN_TRADES": self._open_trades,
            "GET_ACCOUNT_INFO": self._account,
        }
        self.other: dict[str, DwxHandler] = {
            "HIST": self._hist,
            "TRACK_PRICES": self._track_prices,
            "TRACK_RATES": self._track_rates,
        }

    def answer(self, request: bytes) -> list[Step]:
        fields = request.decode("utf-8", "replace").split(";")
        fields = (fields + [""] * DWX_FIELDS)[:DWX_FIELDS]
        reply = self._reply(fields, request)
        # MessageHandler returns an empty ZmqMsg, which OnTimer always sends after the reply.
        return [*([(PUSH, reply.encode())] if reply is not None else []), (PUSH, b"")]

    def _reply(self, fields: list[str], request: bytes) -> str | None:
        if fields[0] == "HEARTBEAT":  # answered before the checks, whatever the state
            return "{'_action': 'heartbeat', '_response': 'loud and clear!'}"
        handler = (self.trade if fields[0] == "TRADE" else {}).get(fields[1]) or self.other.get(
            fields[0]
        )
        if handler is None:
            return None  # unknown: only the empty message
        if self.state.broker_state is not None:
            return f"{{'_response': '{self.state.broker_state}__ABORTED_COMMAND'}}"
        return handler(fields, request)

    def _order(self, fields: list[str], request: bytes) -> int:
        return record_order(self.state, fields[1], request)

    def _open(self, fields: list[str], request: bytes) -> str:
        ticket = self._order(fields, request)
        head = "{'_action': 'EXECUTION'"
        if mql_double(fields[8]) > DWX_MAX_LOTS:
            return (
                head + ", '_response': 'LOT_SIZE_ERROR', 'response_value': 'MAX_LOT_SIZE_EXCEEDED'}"
            )
        symbol = "EURUSD" if fields[3] == "NULL" else fields[3]  # NULL: the chart's symbol
        prices = quote(symbol)
        if prices is None:
            return head + ", '_response': '4106', 'response_value': 'unknown symbol'}"
        kind = mql_int(fields[2])
        price = {0: prices[1], 1: prices[0]}.get(kind, mql_double(fields[4]))
        reply = (
            f"{head}, '_symbol': '{symbol}', '_magic': {mql_int(fields[9])}, "
            f"'_ticket': {ticket}, '_open_time': '{_mt4_time(seconds=True)}', "
            f"'_open_price': {price:.8f}"
        )
        stop_loss, take_profit = mql_double(fields[5]), mql_double(fields[6])
        if stop_loss or take_profit:  # DMA mode: stops in points, set by a modify at once
            way = 1 if kind in DWX_BUY_TYPES else -1
            digits = 3 if symbol.endswith("JPY") else 5
            point = 10.0**-digits
            reply += (
                f", '_sl': {round(price - stop_loss * way * point, digits):.8f}, "
                f"'_tp': {round(price + take_profit * way * point, digits):.8f}"
            )
        return reply + "}"

    def _modify(self, fields: list[str], request: bytes) -> str:
        self._order(fields, request)
        return "{'_action': 'MODIFY', '_response': 'NOT_FOUND'}"

    def _close(self, fields: list[str], request: bytes) -> str:
        self._order(fields, request)
        return f"{{'_action': 'CLOSE', '_ticket': {mql_int(fields[10])}, '_response': 'NOT_FOUND'}}"

    def _close_partial(self, fields: list[str], request: bytes) -> str:
        self._order(fields, request)
        return (
            f"{{'_action': 'CLOSE', '_ticket': {mql_int(fields[10])}, "
            "'_response': 'CLOSE_PARTIAL_FAILED'}"
        )

    def _close_magic(self, fields: list[str], request: bytes) -> str:
        self._order(fields, request)
        return (
            f"{{'_action': 'CLOSE_ALL_MAGIC', '_magic': {mql_int(fields[9])}, "
            "'_responses': {}, '_response': 'NOT_FOUND'}"
        )

    def _close_all(self, fields: list[str], request: bytes) -> str:
        self._order(fields, request)
        return "{'_action': 'CLOSE_ALL', '_responses': {}, '_response': 'NOT_FOUND'}"

    @staticmethod
    def _open_trades(_fields: list[str], _request: bytes) -> str:
        return "{'_action': 'OPEN_TRADES', '_trades': {}}"

    @staticmethod
    def _account(_fields: list[str], _request: bytes) -> str:
        # The fork's DWX_GetAccountInformation, spacing quirks and all.
        return (
            "{'_action': 'GET_ACCOUNT_INFORMATION', 'account_number':5001234, "
            f"'_data': [{{'currenttime': '{_mt4_time()}', 'account_name':'Sim Account', "
            f"'account_balance':{10000:.8f}, 'account_equity':{10000:.8f}, "
            f"'account_profit':{0:.8f}, 'account_free_margin':{10000:.8f}, "
            "'account_leverage' :100}]}"
        )

    @staticmethod
    def _hist(fields: list[str], _request: bytes) -> str:
        timeframe = DWX_TIMEFRAMES.get(mql_int(fields[2]), "UNKNOWN")
        return (
            f"{{'_action': 'HIST', '_symbol': '{fields[1]}_{timeframe}', "
            "'_response': 'NOT_AVAILABLE'}"
        )

    def _track_prices(self, fields: list[str], _request: bytes) -> str:
        # The fixed string[11]: always 10 "symbols", the empty ones among the errors.
        wanted = fields[1:]
        self.tracked = [symbol for symbol in wanted if symbol in TICK_SYMBOLS]
        errors = [symbol for symbol in wanted if symbol not in TICK_SYMBOLS]
        return (
            f"{{'_action': 'TRACK_PRICES', '_data': {{'symbol_count':{len(wanted)}, "
            f"'error_symbols':{_literal_list(errors)}}}}}"
        )

    @staticmethod
    def _track_rates(fields: list[str], _request: bytes) -> str:
        pairs = fields[1::2][: (DWX_FIELDS - 1) // 2]
        errors = [symbol for symbol in pairs if symbol not in TICK_SYMBOLS]
        return (
            f"{{'_action': 'TRACK_RATES', '_data': {{'instrument_count':{len(pairs)}, "
            f"'error_symbols':{_literal_list(errors)}}}}}"
        )

    def ticks(self) -> list[bytes]:
        """One price per tracked symbol, as the EA publishes them: ``SYMBOL:|:bid;ask``."""
        published = []
        for symbol in self.tracked:
            mid = self.prices[symbol] * (1 + self.rng.gauss(0, 0.00005))
            self.prices[symbol] = mid
            spread = mid * 0.00002
            published.append(f"{symbol}:|:{mid - spread:f};{mid + spread:f}".encode())
        return published


def _literal_list(items: list[str]) -> str:
    return "[" + ", ".join(f"'{item}'" for item in items) + "]"


def _compact(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _api_error(code: int, description: str, function: str = "RequestHandler") -> bytes:
    return _compact(
        {
            "error": code != 0,
            "lastError": str(code),
            "description": description,
            "function": function,
        }
    )


# What the terminal answers an order with, per --broker-state (MQL5 TRADE_RETCODE_*).
API_REFUSALS = {
    "algo_trading_off": (10027, "TRADE_RETCODE_CLIENT_DISABLES_AT"),
    "ea_trading_off": (10026, "TRADE_RETCODE_SERVER_DISABLES_AT"),
}


class JsonApi:
    """MQL5-JSON-API's RequestHandler: parse, ``OK`` on System, the answer on Data."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.handlers: dict[str, Callable[[dict[str, Any], bytes], bytes]] = {
            "ACCOUNT": self._account,
            "BALANCE": self._balance,
            "TRADE": self._trade,
            "POSITIONS": lambda _m, _r: _compact({"positions": []}),
            "ORDERS": lambda _m, _r: _compact({"error": False, "orders": []}),
            "CONFIG": lambda _m, _r: _api_error(0, "ERR_SUCCESS", "ScriptConfiguration"),
            "RESET": lambda _m, _r: _api_error(0, "ERR_SUCCESS", "ResetSubscriptionsAndIndicators"),
        }

    def answer(self, request: bytes) -> list[Step]:
        steps: list[Step] = []
        try:
            message = json.loads(request)
        except (ValueError, RecursionError):  # pushed before the OK, then the wrong action
            steps.append((PUSH, _api_error(65537, "ERR_DESERIALIZATION")))
            message = None
        steps.append((ACK, b"OK"))
        action = message.get("action") if isinstance(message, dict) else None
        handler = self.handlers.get(action) if isinstance(action, str) else None
        if handler is None or not isinstance(message, dict):
            steps.append((PUSH, _api_error(65538, "ERR_WRONG_ACTION")))
        else:
            steps.append((PUSH, handler(message, request)))
        return steps

    def _account(self, _message: dict[str, Any], _request: bytes) -> bytes:
        return _compact(
            {
                "error": False,
                "broker": "Sim Broker",
                "currency": "USD",
                "server": "Sim-Demo",
                "trading_allowed": int(self.state.broker_state != "algo_trading_off"),
                "bot_trading": int(self.state.broker_state != "ea_trading_off"),
                "balance": 10000.0,
                "equity": 10000.0,
                "margin": 0.0,
                "margin_free": 10000.0,
                "margin_level": 0.0,
            }
        )

    @staticmethod
    def _balance(_message: dict[str, Any], _request: bytes) -> bytes:
        return _compact(
            {"balance": 10000.0, "equity": 10000.0, "margin": 0.0, "margin_free": 10000.0}
        )

    def _trade(self, message: dict[str, Any], request: bytes) -> bytes:
        order = record_order(self.state, "TRADE", request)
        symbol, volume = message.get("symbol"), message.get("volume")
        prices = quote(symbol) if isinstance(symbol, str) else None
        volume = (
            float(volume)
            if isinstance(volume, int | float)
            and not isinstance(volume, bool)
            and math.isfinite(volume)
            else 0.0
        )
        refusal = API_REFUSALS.get(self.state.broker_state or "")
        if refusal is None and prices is None:
            refusal = (10013, "TRADE_RETCODE_INVALID")
        if refusal is None and not volume > 0:
            refusal = (10014, "TRADE_RETCODE_INVALID_VOLUME")
        bid, ask = prices or (0.0, 0.0)
        price = bid if "SELL" in str(message.get("actionType")) else ask
        retcode, text = refusal or (10009, "TRADE_RETCODE_DONE")
        return _compact(
            {  # "desription": the EA's own spelling
                "error": refusal is not None,
                "retcode": retcode,
                "desription": text,
                "order": 0 if refusal else order,
                "volume": 0.0 if refusal else volume,
                "price": 0.0 if refusal else price,
                "bid": bid,
                "ask": ask,
                "function": "TradingModule",
            }
        )


def serve_bridge(
    args: argparse.Namespace,
    log: Any,
    state: SimState,
    bind: Callable[[int, int], Any],
    stop_at: float,
) -> None:
    """Bind the bridge's sockets with ``bind(kind, port)`` and answer until ``stop_at``."""
    dwx = args.dialect == "dwx"
    requests = bind(zmq.PULL if dwx else zmq.ROUTER, args.port)
    replies = bind(zmq.PUSH, args.reply_port or 0)
    pub = bind(zmq.PUB, args.pub_port)
    monitor = replies.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
    emit(
        log,
        events.SIM_LISTENING,
        mode="zmq",
        port=_bound_port(requests),
        reply_port=_bound_port(replies),
        pub_port=_bound_port(pub),
        curve=args.curve_secret_key_file is not None,
        dialect=args.dialect,
    )
    loop = _BridgeLoop(args, log, Dwx(state) if dwx else JsonApi(state))
    loop.run(requests, replies, pub, monitor, stop_at)


class _BridgeLoop:
    def __init__(self, args: argparse.Namespace, log: Any, bridge: Dwx | JsonApi) -> None:
        self.args = args
        self.log = log
        self.bridge = bridge
        self.requests = 0
        self.delayed: list[tuple[float, int, list[bytes], list[Step]]] = []

    def run(self, requests: Any, replies: Any, pub: Any, monitor: Any, stop_at: float) -> None:
        hz = DEFAULT_TICK_HZ if self.args.tick_hz is None else self.args.tick_hz
        tick_every = 1.0 / hz if hz > 0 and isinstance(self.bridge, Dwx) else math.inf
        next_tick = time.monotonic() if tick_every < math.inf else math.inf
        poller = zmq.Poller()
        poller.register(requests, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        while True:
            now = time.monotonic()
            if now >= stop_at:
                return
            while self.delayed and self.delayed[0][0] <= now:
                _due, n, envelope, steps = heapq.heappop(self.delayed)
                self._send(n, envelope, steps, requests, replies)
            if now >= next_tick and isinstance(self.bridge, Dwx):
                for tick in self.bridge.ticks():
                    pub.send(tick, zmq.NOBLOCK)  # a PUB never blocks: no subscriber, no copy
                next_tick = max(next_tick + tick_every, now)
            wake = min(
                stop_at,
                next_tick,
                self.delayed[0][0] if self.delayed else math.inf,
                time.monotonic() + 1.0,
            )  # nothing due (no ticks, no end): a bound
            ready = dict(poller.poll(max(0, int((wake - time.monotonic()) * 1000)) + 1))
            if monitor in ready:
                event = recv_monitor_message(monitor)
                connected = event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED
                emit(
                    self.log,
                    events.SIM_REPLY_PEER,
                    state="connected" if connected else "disconnected",
                )
            if requests in ready:
                self._take(requests.recv_multipart())

    def _take(self, frames: list[bytes]) -> None:
        envelope, request = frames[:-1], frames[-1]
        if not request:  # the EAs test size() > 0 first: nothing at all is sent back
            emit(self.log, events.SIM_EMPTY_REQUEST)
            return
        self.requests += 1
        emit(self.log, events.SIM_REQUEST, n=self.requests, request=untrusted(request, 120))
        if self.requests <= self.args.drop_first:
            return  # taken, never answered
        due = time.monotonic() + self.args.reply_delay
        heapq.heappush(self.delayed, (due, self.requests, envelope, self.bridge.answer(request)))

    def _send(
        self, n: int, envelope: list[bytes], steps: list[Step], requests: Any, replies: Any
    ) -> None:
        dropped = 0
        for where, body in steps:
            if where == ACK:  # a ROUTER drops a reply to a client that has gone
                requests.send_multipart([*envelope, body], zmq.NOBLOCK)
                continue
            try:
                replies.send(body, zmq.NOBLOCK)
            except zmq.Again:
                dropped += 1
        if dropped:
            emit(
                self.log,
                events.SIM_REPLY_DROPPED,
                n=n,
                messages=dropped,
                reason="no PULL connected to the reply port (or it is full)",
            )


def _bound_port(sock: Any) -> int:
    return int(sock.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])
