"""Stand-in for Wolfe-Trading-Desk's MT5 bridge server (Python, MetaTrader5 module + pyzmq).

Written from (protocol facts only, no code taken): clotho2/Wolfe-Trading-Desk
``scripts/mt5_bridge_server.py`` @ 8122d0139da1ba3f345f8fa86fe6dc4e37b6cfad.

Reproduced:
  * REP on ``--port`` (5557) and PUB on ``--pub-port`` (5556), linger 0.
  * No timer: the responder blocks in recv (here a poll with a 100 ms timeout, so a stop
    is noticed) and answers every request on the same REP socket, one reply each.
  * The request decoded as strict UTF-8 and parsed with ``json.loads``; its ``token`` must
    equal the bridge's token exactly (``--token-file``, stripped; default ``change-me``,
    the bridge's own default for BRIDGE_TOKEN), else ``{"ok": false, "error":
    "unauthorized"}``.
  * ``health`` -> ``{"ok": true, "balance": 10000.0}`` (``--balance``), or ``"balance": null``
    with ``--no-account`` (account_info() is None); ``positions`` -> ``{"ok": true,
    "positions": []}``; ``close_all`` -> ``{"ok": true}`` (no positions to close);
    ``order_send`` -> reads symbol, side and ``float(qty)`` then OrderSend (an
    ``order_attempt`` line) -> ``{"ok": true, "order_id": N}`` when ``--order-retcode`` is
    10009 (the default), ``{"ok": false, "error": "<retcode>"}`` otherwise, and ``"unknown"``
    with ``--order-retcode none`` (order_send returned None); any other action ->
    ``{"ok": false, "error": "unknown_action"}``.
  * Any exception while handling (bad UTF-8, bad JSON, a non-object, a bad qty) ->
    ``{"ok": false, "error": "<the exception's text>"}``, so an empty request is answered too.
  * Python json.dumps default separators: a space after ':' and ','.

``close_all`` is reported as an ``order_attempt`` although the stand-in holds no positions
(it is the command that closes them). Left out: the PUB tick publisher (every 0.2 s, with
the token in each tick); the socket is bound but never sends. The reply is sent with
ZMQ_DONTWAIT (the bridge's send_string blocks, which on a REP only matters when the
requester's pipe is full).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import zmq

from tests import standins as rt


def parse_retcode(text: str) -> int | None:
    if text == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an integer retcode or 'none'") from None


class WolfeBridge:
    def __init__(
        self, args: argparse.Namespace, events: rt.Events, rep: rt.Socket, token: str
    ) -> None:
        self.events, self.rep, self.token = events, rep, token
        self.balance: float | None = None if args.no_account else args.balance
        self.order_retcode: int | None = args.order_retcode
        self.orders = 0

    def reply(self, body: dict[str, Any]) -> None:
        rt.send_nowait(self.events, self.rep, "rep", json.dumps(body).encode("utf-8"))

    def serve_one(self) -> None:
        data = self.rep.recv()
        self.events.received(data)
        try:
            self.handle(data)
        except Exception as exc:  # noqa: BLE001 -- the bridge answers any failure with its text
            self.reply({"ok": False, "error": str(exc)})

    def handle(self, data: bytes) -> None:
        request: Any = json.loads(data.decode("utf-8"))
        if request.get("token") != self.token:
            self.reply({"ok": False, "error": "unauthorized"})
            return
        action = request.get("action")
        if action == "health":
            self.reply({"ok": True, "balance": self.balance})
        elif action == "positions":
            self.reply({"ok": True, "positions": []})
        elif action == "close_all":
            self.events.order_attempt(data)
            self.reply({"ok": True})
        elif action == "order_send":
            float(request.get("qty"))  # raises, as the bridge's does, on a missing or bad qty
            self.events.order_attempt(data)
            if self.order_retcode == 10009:
                self.orders += 1
                self.reply({"ok": True, "order_id": 800000000 + self.orders})
            else:
                code = "unknown" if self.order_retcode is None else str(self.order_retcode)
                self.reply({"ok": False, "error": code})
        else:
            self.reply({"ok": False, "error": "unknown_action"})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = rt.common_parser(
        "python -m tests.standins.wolfe_bridge", "Wolfe-Trading-Desk MT5 bridge server stand-in"
    )
    parser.add_argument("--port", type=int, default=5557, help="REP: requests and replies")
    parser.add_argument("--pub-port", type=int, default=5556, help="PUB: ticks (never sent)")
    parser.add_argument(
        "--token-file",
        default=None,
        metavar="PATH",
        help="file holding the token (stripped); default token 'change-me'",
    )
    parser.add_argument("--balance", type=float, default=10000.0)
    parser.add_argument(
        "--no-account",
        action="store_true",
        help="account_info() is None: health reports a null balance",
    )
    parser.add_argument(
        "--order-retcode",
        type=parse_retcode,
        default=10009,
        help="order_send's retcode (10009 DONE), or 'none' for no result",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    token = "change-me"
    if args.token_file is not None:
        with open(args.token_file, encoding="utf-8") as handle:
            token = handle.read().strip()
    events, stopper = rt.Events(), rt.Stopper(args.exit_after)
    if not rt.begin(events, stopper, args.start_delay):
        return 0
    ctx = zmq.Context()
    try:
        rep, pub = ctx.socket(zmq.REP), ctx.socket(zmq.PUB)
        for sock in (rep, pub):
            sock.setsockopt(zmq.LINGER, 0)
        ports = rt.bind_all(
            events, args.bind, [("rep", rep, args.port), ("pub", pub, args.pub_port)]
        )
        if ports is None:
            return 1
        events.emit("listening", ports=ports)
        bridge = WolfeBridge(args, events, rep, token)
        while not stopper.stopped:
            if rep.poll(100, zmq.POLLIN):
                bridge.serve_one()
    finally:
        ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
