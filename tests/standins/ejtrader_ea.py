"""Stand-in for ejtraderMT's current expert (ejtraderMT.mq5, one REP socket).

Written from (protocol facts only, no code taken): ejtraderLabs/Metatrader5-Docker
``Metatrader/MQL5/Experts/ejtraderMT.mq5`` @ e598b9ca993841fc52b0d737fb9780c36db5d62a (the
file last changed at f643da5b224a241be630078e49ae26ab70ad104c).

Reproduced:
  * One REP "system" bound on ``--port`` (15557); no PUB, no PUSH: the EA's other ports
    are gone since its single-socket version.
  * The 1 ms timer (``--timer-ms``), ONE non-blocking receive per tick. A request is
    handled only when its frame is not empty: an EMPTY request is taken and never answered,
    so the REP stays in its must-send state and every later receive fails (EFSM), ignored
    by the EA: nobody gets an answer again (``wedged``).
  * The JSON parsed, then dispatched on the exact top-level ``action``: ``ACCOUNT`` answers
    ``error, broker, currency, server, trading_allowed, bot_trading, balance, equity,
    margin, margin_free, margin_level, time`` in that order (JAson: integers from
    TERMINAL_TRADE_ALLOWED and ACCOUNT_TRADE_EXPERT, empty strings as null, the server
    time as ``YYYY.MM.DD hh:mm:ss``). An unknown or missing action (STATUS, PING) answers
    the ERR_WRONG_ACTION error object; text that is not JSON, ERR_DESERIALIZATION.
  * ``TRADE`` is an ``order_attempt`` line and ``CONFIG`` a ``subscription_change`` line
    (it adds a symbol subscription): the gate must never send either.
  * ``--trading-allowed`` / ``--bot-trading``, and ``--state-file`` lines
    ``trading_allowed=0``, ``bot_trading=0``, ``logged_in=0`` (no account: strings null,
    money 0, bot_trading 0), re-read when the file changes.

Left out: SYMBOLINFO, LISTSYMBOLS, BALANCE, HISTORY, POSITIONS, ORDERS and CALENDAR answer
the error object with ``not_reproduced`` printed; the price stream; the bind retries.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import zmq

from tests import standins as rt
from tests.standins.json_api_ea import done_or_error, serialize

STATE_KEYS = ("trading_allowed", "bot_trading", "logged_in")
READ_ONLY = (
    "SYMBOLINFO",
    "LISTSYMBOLS",
    "LISTSYMBOLSDETAILS",
    "BALANCE",
    "HISTORY",
    "POSITIONS",
    "ORDERS",
    "CALENDAR",
)
BALANCE = 10000.0


class EjtraderEa:
    def __init__(self, args: argparse.Namespace, events: rt.Events, system: rt.Socket) -> None:
        self.events, self.system = events, system
        self.defaults = {
            "trading_allowed": args.trading_allowed,
            "bot_trading": args.bot_trading,
            "logged_in": 1,
        }
        self.state = dict(self.defaults)
        self.control = rt.WatchedFile(args.state_file)

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
        rt.send_nowait(self.events, self.system, "system", self.answer(request))

    def answer(self, request: bytes) -> bytes:
        try:
            message: Any = json.loads(request.decode("utf-8", errors="replace"))
        except ValueError:
            return done_or_error(65537, "RequestHandler", "ERR_DESERIALIZATION")
        action = message.get("action") if isinstance(message, dict) else None
        if action == "ACCOUNT":
            return self.account()
        if action == "TRADE":
            self.events.order_attempt(request)
            return done_or_error(10027, "TradingModule", "TRADE_RETCODE_CLIENT_DISABLES_AT")
        if action == "CONFIG":
            self.events.emit("subscription_change", request=rt.shown(request))
            return done_or_error(0, "ScriptConfiguration", "ERR_SUCCESS")
        if action in READ_ONLY:
            self.events.emit("not_reproduced", action=action)
        return done_or_error(65538, "RequestHandler", "ERR_WRONG_ACTION")

    def account(self) -> bytes:
        logged_in = bool(self.state["logged_in"])
        balance = BALANCE if logged_in else 0.0
        return serialize(
            ("error", False),
            ("broker", "Stand-in Markets Ltd" if logged_in else ""),
            ("currency", "USD" if logged_in else ""),
            ("server", "StandIn-Demo" if logged_in else ""),
            ("trading_allowed", self.state["trading_allowed"]),
            ("bot_trading", self.state["bot_trading"] if logged_in else 0),
            ("balance", balance),
            ("equity", balance),
            ("margin", 0.0),
            ("margin_free", balance),
            ("margin_level", 0.0),
            ("time", time.strftime("%Y.%m.%d %H:%M:%S", time.gmtime())),
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = rt.common_parser("python -m tests.standins.ejtrader_ea", "ejtraderMT EA stand-in")
    parser.add_argument("--port", type=int, default=15557, help="REP: requests and answers")
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
        system.setsockopt(zmq.LINGER, 1000)
        ports = rt.bind_all(events, args.bind, [("system", system, args.port)])
        if ports is None:
            return 1
        events.emit("listening", ports=ports)
        ea = EjtraderEa(args, events, system)
        rt.run_timer(stopper, args.timer_ms / 1000, ea.on_timer)
    finally:
        ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
