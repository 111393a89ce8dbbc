"""Stand-in for Bryan-cheru/telegram-bot's MT5 ZeroMQ server (Python, MetaTrader5 + pyzmq).

Written from (protocol facts only, no code taken): Bryan-cheru/telegram-bot
``mt5_server.py`` @ 883d29c64ba35a93ebdead46addaaf7c096d593a.

Reproduced:
  * One REP bound on ``--port`` (18812). The loop receives without blocking and sleeps
    0.1 s when nothing is queued; every request is answered on the same REP.
  * The request read as JSON (``recv_json``); one that is not JSON is answered
    ``{"success": false, "error": "<the exception's text>"}``.
  * Dispatch on the exact ``action``: ``ping`` -> ``{"success": true, "message": "pong"}``;
    ``get_account_info`` -> ``{"success": true, "account": {"login", "balance", "equity",
    "margin", "free_margin", "currency"}}``, or with no account (``--no-account``)
    ``{"success": false, "error": "Failed to get account info"}``; ``trade`` and
    ``modify_position`` call order_send (an ``order_attempt`` line; answered as refused);
    anything else ``{"success": false, "error": "Unknown action: <action>"}``.

Left out: ``get_symbol_info``'s payload (``not_reproduced``, an unknown-action answer), the
terminal itself, the server's log file.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import zmq

from tests import standins as rt


def answer(message: Any, request: bytes, args: argparse.Namespace, events: rt.Events) -> Any:
    action = message.get("action") if isinstance(message, dict) else None
    if action == "ping":
        return {"success": True, "message": "pong"}
    if action == "get_account_info":
        if args.no_account:
            return {"success": False, "error": "Failed to get account info"}
        account = {"login": 7001234, "balance": 10000.0, "equity": 10000.0, "margin": 0.0}
        return {"success": True, "account": {**account, "free_margin": 10000.0, "currency": "USD"}}
    if action in ("trade", "modify_position"):
        events.order_attempt(request)
        return {"success": False, "error": "Order failed: AutoTrading disabled by client"}
    if action == "get_symbol_info":
        events.emit("not_reproduced", action=action)
    return {"success": False, "error": f"Unknown action: {action}"}


def main(argv: list[str] | None = None) -> int:
    parser = rt.common_parser(
        "python -m tests.standins.telegram_bot_server", "telegram-bot MT5 server stand-in"
    )
    parser.add_argument("--port", type=int, default=18812, help="REP: requests and answers")
    parser.add_argument("--no-account", action="store_true", help="account_info() is None")
    args = parser.parse_args(argv)
    events, stopper = rt.Events(), rt.Stopper(args.exit_after)
    if not rt.begin(events, stopper, args.start_delay):
        return 0
    ctx = zmq.Context()
    try:
        rep = ctx.socket(zmq.REP)
        rep.setsockopt(zmq.LINGER, 0)
        ports = rt.bind_all(events, args.bind, [("rep", rep, args.port)])
        if ports is None:
            return 1
        events.emit("listening", ports=ports)
        while not stopper.stopped:
            request = rt.recv_nowait(rep)
            if request is None:
                stopper.sleep(0.1)
                continue
            events.received(request)
            try:
                reply = answer(json.loads(request), request, args, events)
            except ValueError as exc:
                reply = {"success": False, "error": str(exc)}
            rt.send_nowait(events, rep, "rep", json.dumps(reply).encode())
    finally:
        ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
