"""Stand-in for luzhengheng/MT5's Direct_Zmq gateway EA (raw libzmq.dll, REP + PUB).

Written from (protocol facts only, no code taken): luzhengheng/MT5
``src/gateway/Direct_Zmq_v4.mq5`` at two commits:
  * ``--version v5`` @ 7f0fb1e486ada76535444ab48f4bffcab5e8764d (header "Direct_Zmq_v5",
    v5.00): adds the GET_SYMBOL_INFO quote request and ticket/deal in the fill reply;
  * ``--version v4`` @ 5253cdfb4bda62423eb4bf7c5848a8999a72cb24 (v4.00): no quote request.

Reproduced:
  * REP on ``--port`` (5555) and PUB on ``--pub-port`` (5556); no socket options.
  * ``EventSetTimer(1)``: one timer event a second (``--timer-ms``, default 1000) and ONE
    non-blocking receive per event. No market ticks are simulated, so OnTick never runs a
    second receive and the PUB never publishes.
  * The request read into a 4096-byte buffer (longer ones are cut), converted up to its
    first NUL, byte per char (ANSI code page, taken as Latin-1).
  * A 0-byte request (len 0, not > 0) is never answered: the REP stays in its must-send
    state and every later receive fails with EFSM, ignored by the EA (``wedged``).
  * Dispatch on case-sensitive substrings of the whole message: v5 first
    ``GET_SYMBOL_INFO`` -> ``{"status":"OK","data":{"bid":%.5f,"ask":%.5f}}`` or
    ``{"status":"ERROR","msg":"Symbol Not Found"}``; then, both versions, any message
    containing ``magic`` or ``action`` goes to OrderSend (an ``order_attempt`` line);
    anything else gets ``{"status":"ERROR","msg":"Unknown"}``.
  * Field lookup as the EA's GetJsonValue: the literal ``"key":`` (no space before the
    colon), spaces skipped, a quoted string up to the next quote, otherwise up to the next
    ``,`` or ``}``.
  * OrderSend outcome: no ``volume`` (or one that is <= 0) is rejected as
    ``{"status":"ERROR", "retcode":10014}`` (10014 INVALID_VOLUME is the stand-in's choice:
    the notes only say it is rejected); otherwise ``--order-retcode`` (default 10009):
    10008-10010 succeed -- v5 ``{"status":"FILLED","retcode":N,"ticket":T,"deal":D}``,
    v4 ``{"status":"FILLED", "retcode":N}`` -- and any other code gives the ERROR reply.
  * Replies are the reply string's bytes, no trailing NUL.

Differences: the EA's zmq_send passes flags 0 (blocking); this sends with ZMQ_DONTWAIT so a
stop is never held up (a REP reply only blocks when the requester's pipe is full). The EA
ignores a failed bind; here a failed bind prints ``bind_failed`` and exits 1.
Quotes come from ``--quote SYMBOL=BID/ASK`` (default EURUSD=1.08501/1.08503); the chart
symbol (``--chart-symbol``, EURUSD) stands in for a missing ``symbol``.
"""

from __future__ import annotations

import argparse
import re
import sys

import zmq

from tests import standins as rt

UNKNOWN = '{"status":"ERROR","msg":"Unknown"}'
NOT_FOUND = '{"status":"ERROR","msg":"Symbol Not Found"}'
BUFFER = 4096


def json_value(msg: str, key: str) -> str:
    """The EA's GetJsonValue: a naive scan for ``"key":``; "" when absent or unterminated."""
    search = f'"{key}":'
    start = msg.find(search)
    if start == -1:
        return ""
    start += len(search)
    while msg[start : start + 1] in (" ", ":"):
        start += 1
    if msg[start : start + 1] == '"':
        start += 1
        end = msg.find('"', start)
    else:
        end = msg.find(",", start)
        brace = msg.find("}", start)
        if end == -1 or (brace != -1 and brace < end):
            end = brace
    return "" if end == -1 else msg[start:end]


def string_to_double(text: str) -> float:
    match = re.match(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)", text)
    return float(match.group(1)) if match else 0.0


def parse_quote(text: str) -> tuple[str, float, float]:
    try:
        symbol, prices = text.split("=", 1)
        bid, ask = prices.split("/", 1)
        return symbol, float(bid), float(ask)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SYMBOL=BID/ASK, not {text!r}") from None


class DirectZmqEa:
    def __init__(self, args: argparse.Namespace, events: rt.Events, rep: rt.Socket) -> None:
        self.events, self.rep = events, rep
        self.v5: bool = args.version == "v5"
        self.chart_symbol: str = args.chart_symbol
        quotes: list[tuple[str, float, float]] = args.quote or [("EURUSD", 1.08501, 1.08503)]
        self.quotes = {symbol: (bid, ask) for symbol, bid, ask in quotes}
        self.order_retcode: int = args.order_retcode
        self.orders = 0

    def on_timer(self) -> None:
        try:
            data = self.rep.recv(zmq.DONTWAIT)
        except zmq.ZMQError:  # EAGAIN, or EFSM once wedged: zmq_recv's -1 is not > 0
            return
        self.events.received(data)
        if not data:
            self.events.emit("wedged")
            return
        msg = data[:BUFFER].split(b"\0", 1)[0].decode("latin-1")
        reply = self.reply_to(msg, data)
        rt.send_nowait(self.events, self.rep, "rep", reply.encode("latin-1"))

    def reply_to(self, msg: str, data: bytes) -> str:
        if self.v5 and "GET_SYMBOL_INFO" in msg:
            quote = self.quotes.get(json_value(msg, "symbol") or self.chart_symbol)
            if quote is None:
                return NOT_FOUND
            return f'{{"status":"OK","data":{{"bid":{quote[0]:.5f},"ask":{quote[1]:.5f}}}}}'
        if "magic" not in msg and "action" not in msg:
            return UNKNOWN
        self.events.order_attempt(data)
        volume = json_value(msg, "volume")
        retcode = self.order_retcode if volume and string_to_double(volume) > 0 else 10014
        if retcode not in (10008, 10009, 10010):
            return f'{{"status":"ERROR", "retcode":{retcode}}}'
        if not self.v5:
            return f'{{"status":"FILLED", "retcode":{retcode}}}'
        self.orders += 1
        ticket = 700000000 + self.orders
        return f'{{"status":"FILLED","retcode":{retcode},"ticket":{ticket},"deal":{ticket + 1}}}'


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = rt.common_parser(
        "python -m tests.standins.direct_zmq_ea", "luzhengheng/MT5 Direct_Zmq EA stand-in"
    )
    parser.add_argument("--version", choices=("v5", "v4"), default="v5")
    parser.add_argument("--port", type=int, default=5555, help="REP: requests and replies")
    parser.add_argument("--pub-port", type=int, default=5556, help="PUB: ticks (never sent)")
    parser.add_argument(
        "--timer-ms",
        type=rt.parse_ms,
        default=1000.0,
        help="OnTimer period (EventSetTimer(1): 1000 ms)",
    )
    parser.add_argument("--chart-symbol", default="EURUSD", help="the chart's _Symbol")
    parser.add_argument(
        "--quote",
        type=parse_quote,
        action="append",
        metavar="SYMBOL=BID/ASK",
        help="a symbol SymbolInfoTick knows (repeatable)",
    )
    parser.add_argument(
        "--order-retcode",
        type=int,
        default=10009,
        help="OrderSend's retcode for an order with a volume (10009 DONE)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    events, stopper = rt.Events(), rt.Stopper(args.exit_after)
    if not rt.begin(events, stopper, args.start_delay):
        return 0
    ctx = zmq.Context()
    try:
        rep, pub = ctx.socket(zmq.REP), ctx.socket(zmq.PUB)
        ports = rt.bind_all(
            events, args.bind, [("rep", rep, args.port), ("pub", pub, args.pub_port)]
        )
        if ports is None:
            return 1
        events.emit("listening", ports=ports)
        rt.run_timer(stopper, args.timer_ms / 1000, DirectZmqEa(args, events, rep).on_timer)
    finally:
        ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
