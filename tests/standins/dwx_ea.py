"""Stand-in for the DWX ZeroMQ Server EA (MT4), v2.0.1 RC8.

Written from (protocol facts only, no code taken):
  * darwinex/dwx-zeromq-connector ``v2.0.1/mql4/DWX_ZeroMQ_Server_v2.0.1_RC8.mq4``
    @ 1395cbb2e122d2f948d1b2dc034d9c90068f9814 (the primary EA: ``--no-account-info``)
  * PinkPanther-ny/dwx-zeromq-connector, same path,
    @ f06a0192a7a27fe83dc4010a2f751ece051466d5 (the fork with ``TRADE;GET_ACCOUNT_INFO``,
    action 11, permission-gated like the rest; the default here)

Reproduced:
  * PULL bound on ``--pull-port`` (commands, 32768), PUSH on ``--push-port`` (replies,
    32769), PUB on ``--pub-port`` (32770), bound in the EA's order (PUSH, PULL, PUB); HWM 1
    and linger 0 set *after* each bind as the EA does; context BLOCKY off.
  * The 1 ms millisecond timer (``--timer-ms``); ONE non-blocking PULL receive per tick.
  * The message cut at its first NUL, decoded byte-per-char (the EA's ANSI code page,
    taken as Latin-1), split on ';' into exactly 11 fields (missing ones empty, extra ones
    dropped), matched exactly and case-sensitively.
  * ``HEARTBEAT`` answered first and outside the permission check.
  * The ordered six-step permission check for every other recognised command: first
    failure only, ``{'_response': '<WORD>__ABORTED_COMMAND'}`` (``--fail`` / ``--state-file``).
  * Every non-empty request: the reply (if any), then a separate 0-byte message; unknown
    commands get only the 0-byte message; a 0-byte request gets nothing at all.
  * Sends with ZMQ_DONTWAIT; with no PULL peer the message is dropped, never queued.
  * Replies byte for byte: single-quoted, 8-decimal doubles; GET_ACCOUNT_INFORMATION with
    its irregular spacing and ``YYYY.MM.DD HH:MM`` time (UTC here, server time in MT4).

The stand-in holds no orders, positions or history, so (after the check passes):
  * OPEN: lots above MaximumLotSize (0.01, the EA's input default) gives LOT_SIZE_ERROR;
    otherwise the OrderSend-failure reply with ``--order-error`` (default 132, "market is
    closed"). Success replies are not produced.
  * MODIFY / CLOSE / CLOSE_MAGIC / CLOSE_ALL: the EA's "not found" replies. CLOSE_PARTIAL:
    ``CLOSE_PARTIAL_FAILED`` (inferred: it depends on MT4's OrderType() with no selection).
  * An ``order_attempt`` line is printed for every TRADE OPEN/MODIFY/CLOSE* that passed the
    check (the EA entered its order code), including OPEN refused for its lot size.
  * GET_OPEN_TRADES: empty ``_trades``; HIST: ``NOT_AVAILABLE`` (no 200 ms retries);
    TRACK_PRICES / TRACK_RATES: every non-empty name counts as selectable, the empty slots
    of the 11-field array are listed in ``error_symbols``.

Left out: PUB publishing (the socket is bound but never sends), the 500 ms OnTick price
refresh, ``EA_IS_STOPPED`` (the EA sends it on its PULL socket, so it never reaches the wire).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import zmq

from tests import standins as rt

CHECKS = (
    "TRADING_IS_NOT_ALLOWED",
    "EA_IS_DISABLED",
    "TRADE_CONTEXT_BUSY",
    "DLLS_DISABLED",
    "LIBS_DISABLED",
    "NO_BROKER_CONNECTION",
)
HEARTBEAT = "{'_action': 'heartbeat', '_response': 'loud and clear!'}"
TRADE_ACTIONS = {
    "OPEN": 1,
    "MODIFY": 2,
    "CLOSE": 3,
    "CLOSE_PARTIAL": 4,
    "CLOSE_MAGIC": 5,
    "CLOSE_ALL": 6,
    "GET_OPEN_TRADES": 7,
    "GET_ACCOUNT_INFO": 11,
}
OTHER_ACTIONS = {"HIST": 8, "TRACK_PRICES": 9, "TRACK_RATES": 10}
TIMEFRAMES = {
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
ERRORS = {
    2: "common error",
    6: "no connection with trade server",
    129: "invalid price",
    130: "invalid stops",
    131: "invalid trade volume",
    132: "market is closed",
    133: "trade is disabled",
    134: "not enough money",
    146: "trade context is busy",
}
FIXED = {
    2: "'_action': 'MODIFY', '_response': 'NOT_FOUND'",
    6: "'_action': 'CLOSE_ALL', '_responses': {}, '_response': 'NOT_FOUND'",
    7: "'_action': 'OPEN_TRADES', '_trades': {}",
}
MAXIMUM_LOT_SIZE = 0.01
ACCOUNT = {
    "number": 12345678,
    "name": "DWX Stand-in",
    "balance": 10000.0,
    "equity": 10000.0,
    "profit": 0.0,
    "free_margin": 10000.0,
    "leverage": 100,
}


def str_to_int(text: str) -> int:
    """MQL4 StrToInteger: the leading integer, 0 when there is none."""
    match = re.match(r"\s*([+-]?\d+)", text)
    return int(match.group(1)) if match else 0


def str_to_double(text: str) -> float:
    """MQL4 StrToDouble: the leading number, 0.0 when there is none."""
    match = re.match(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)", text)
    return float(match.group(1)) if match else 0.0


def fields_of(data: bytes) -> list[str]:
    text = data.split(b"\0", 1)[0].decode("latin-1")
    parts = text.split(";")[:11]
    return parts + [""] * (11 - len(parts))


def name_list(names: Sequence[str]) -> str:
    return "[" + ", ".join(f"'{name}'" for name in names) + "]"


class DwxEa:
    def __init__(
        self, args: argparse.Namespace, events: rt.Events, pull: rt.Socket, push: rt.Socket
    ) -> None:
        self.events, self.pull, self.push = events, pull, push
        self.account_info: bool = not args.no_account_info
        self.order_error: int = args.order_error
        self.default_word: str = args.fail or ""
        self.word = self.default_word
        self.state = rt.WatchedFile(args.state_file)

    def on_timer(self) -> None:
        if self.state.changed():
            self.word = self.default_word
            if self.state.text is not None:
                word = self.state.text.strip()
                if word and word not in CHECKS:
                    self.events.emit("bad_state", content=word)
                    word = ""
                self.word = word
        data = rt.recv_nowait(self.pull)
        if data is None:
            return
        self.events.received(data)
        if not data:
            return
        for reply in self.interpret(data):
            rt.send_nowait(self.events, self.push, "push", reply.encode("utf-8"))
        rt.send_nowait(self.events, self.push, "push", b"")

    def interpret(self, data: bytes) -> list[str]:
        fields = fields_of(data)
        replies = [HEARTBEAT] if fields[0] == "HEARTBEAT" else []
        if fields[0] == "TRADE":
            action = TRADE_ACTIONS.get(fields[1], 0)
            if action == 11 and not self.account_info:
                action = 0
        else:
            action = OTHER_ACTIONS.get(fields[0], 0)
        if action == 0:
            return replies
        if self.word:
            return [*replies, f"{{'_response': '{self.word}__ABORTED_COMMAND'}}"]
        if action <= 6:
            self.events.order_attempt(data)
        return [*replies, "{" + self.command(action, fields) + "}"]

    def command(self, action: int, f: list[str]) -> str:
        if action in FIXED:
            return FIXED[action]
        if action == 1:
            if str_to_double(f[8]) > MAXIMUM_LOT_SIZE:
                return (
                    "'_action': 'EXECUTION', '_response': 'LOT_SIZE_ERROR', "
                    "'response_value': 'MAX_LOT_SIZE_EXCEEDED'"
                )
            return (
                f"'_action': 'EXECUTION', '_response': '{self.order_error}', "
                f"'response_value': '{ERRORS[self.order_error]}'"
            )
        if action in (3, 4):
            word = "NOT_FOUND" if action == 3 else "CLOSE_PARTIAL_FAILED"
            return f"'_action': 'CLOSE', '_ticket': {str_to_int(f[10])}, '_response': '{word}'"
        if action == 5:
            return (
                f"'_action': 'CLOSE_ALL_MAGIC', '_magic': {str_to_int(f[9])}, "
                "'_responses': {}, '_response': 'NOT_FOUND'"
            )
        return self.data_command(action, f)

    def data_command(self, action: int, f: list[str]) -> str:
        if action == 8:
            timeframe = TIMEFRAMES.get(str_to_int(f[2]), "UNKNOWN")
            return (
                f"'_action': 'HIST', '_symbol': '{f[1]}_{timeframe}', '_response': 'NOT_AVAILABLE'"
            )
        if action == 9:
            failed: list[str] = [name for name in f[1:] if not name]
            return (
                "'_action': 'TRACK_PRICES', '_data': {'symbol_count':"
                f"{len(f) - 1}, 'error_symbols':{name_list(failed)}}}"
            )
        if action == 10:
            count = (len(f) - 1) // 2
            failed = [f[2 * i + 1] for i in range(count) if not f[2 * i + 1]]
            return (
                "'_action': 'TRACK_RATES', '_data': {'instrument_count':"
                f"{count}, 'error_symbols':{name_list(failed)}}}"
            )
        return self.account()

    def account(self) -> str:
        now = datetime.now(UTC).strftime("%Y.%m.%d %H:%M")
        return (
            f"'_action': 'GET_ACCOUNT_INFORMATION', 'account_number':{ACCOUNT['number']}"
            f", '_data': [{{'currenttime': '{now}', 'account_name':'{ACCOUNT['name']}'"
            f", 'account_balance':{ACCOUNT['balance']:.8f}"
            f", 'account_equity':{ACCOUNT['equity']:.8f}"
            f", 'account_profit':{ACCOUNT['profit']:.8f}"
            f", 'account_free_margin':{ACCOUNT['free_margin']:.8f}"
            f", 'account_leverage' :{ACCOUNT['leverage']}}}]"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = rt.common_parser("python -m tests.standins.dwx_ea", "DWX ZeroMQ Server EA stand-in")
    parser.add_argument("--pull-port", type=int, default=32768, help="EA PULL: commands in")
    parser.add_argument("--push-port", type=int, default=32769, help="EA PUSH: replies out")
    parser.add_argument("--pub-port", type=int, default=32770, help="EA PUB (never sends)")
    parser.add_argument("--timer-ms", type=rt.parse_ms, default=1.0, help="timer period (1 ms)")
    parser.add_argument(
        "--fail",
        choices=CHECKS,
        default=None,
        help="the first permission check that fails (default: all pass)",
    )
    parser.add_argument(
        "--state-file",
        default=None,
        metavar="PATH",
        help="file holding the failing WORD (empty: all pass); re-read on "
        "change, overrides --fail while it exists",
    )
    parser.add_argument(
        "--no-account-info",
        action="store_true",
        help="behave as the primary darwinex EA: GET_ACCOUNT_INFO unknown",
    )
    parser.add_argument(
        "--order-error",
        type=int,
        choices=sorted(ERRORS),
        default=132,
        help="MT4 error code OrderSend fails with (default 132)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    events, stopper = rt.Events(), rt.Stopper(args.exit_after)
    if not rt.begin(events, stopper, args.start_delay):
        return 0
    ctx = zmq.Context()
    ctx.set(zmq.BLOCKY, 0)
    try:
        push, pull, pub = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL), ctx.socket(zmq.PUB)

        def options(name: str, sock: rt.Socket) -> None:
            sock.setsockopt(zmq.RCVHWM if name == "pull" else zmq.SNDHWM, 1)
            sock.setsockopt(zmq.LINGER, 0)

        ports = rt.bind_all(
            events,
            args.bind,
            [
                ("push", push, args.push_port),
                ("pull", pull, args.pull_port),
                ("pub", pub, args.pub_port),
            ],
            options,
        )
        if ports is None:
            return 1
        events.emit("listening", ports={k: ports[k] for k in ("pull", "push", "pub")})
        rt.run_timer(stopper, args.timer_ms / 1000, DwxEa(args, events, pull, push).on_timer)
    finally:
        ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
