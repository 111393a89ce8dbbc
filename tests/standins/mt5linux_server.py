"""Stand-in for lucas-campagna/mt5linux's server: a REAL rpyc classic server in front of a
``MetaTrader5`` module whose terminal state the test sets.

Written from (protocol facts only, no code taken): lucas-campagna/mt5linux
``mt5linux/__main__.py`` @ 480396ea591d50e474826c54af903c1ae2eb5fae (``ClassicServer.run()``
of ``rpyc.cli.rpyc_classic``: a ``ThreadedServer`` serving ``rpyc.core.SlaveService``), the
MetaQuotes docstrings copied into ``mt5linux/metatrader5.py`` there (what ``initialize``,
``terminal_info``, ``account_info``, ``last_error`` and ``version`` return), and
tomerfiliba-org/rpyc 6.0.2 (fd96f3befb23e0b6b6641fdb5a842ac62c17ce6a)
``rpyc/core/service.py`` (``SlaveService``: ``getmodule``, ``eval``, ``execute``).

Reproduced:
  * the server: ``ThreadedServer(SlaveService)`` on ``--port`` (0: any), one thread per
    client, the module imported once per process (``sys.modules``), so its attachment is
    shared by every client, as in the real server;
  * the module: ``terminal_info()`` and ``account_info()`` are None until some client's
    ``initialize()`` attached it; ``initialize()`` blocks ``--initialize-s`` and then
    attaches; with no terminal (state ``not_running``) it returns False with ``-10003``
    ("MetaTrader 5 x64 not found"); while one starts (``starting``) it blocks
    ``--initialize-s`` (60 s in the real package) and returns False with ``-10005 IPC
    timeout``;
    records are namedtuples with MetaQuotes' field order (the real ones are C types that
    behave alike over rpyc); ``last_error()`` is ``(-10004, 'No IPC connection')`` while
    detached, ``(1, 'Success')`` after;
  * states (``--state``, or ``--state-file`` holding one word, re-read on every call):
    healthy, not_running, starting, no_broker, algo_off, api_disabled, not_logged_in,
    investor, expert_off.

Every MetaTrader5 call is a ``call`` line; one outside the read-only allow-list
(``shutdown``, ``order_send``, ``login``, ``initialize`` with arguments other than
``timeout``...) is a ``forbidden_call`` line, and so is any use of the classic server's
``eval``/``execute`` (the gate must reach the module through ``getmodule`` alone). The
tests assert there are none. Left out: every data call (rates, ticks, orders).
"""

from __future__ import annotations

import sys
import threading
import time
import types
from collections import namedtuple
from pathlib import Path
from typing import Any

import rpyc
from rpyc.utils.server import ThreadedServer

from tests import standins as rt

STATES = (
    "healthy",
    "not_running",
    "starting",
    "no_broker",
    "algo_off",
    "api_disabled",
    "not_logged_in",
    "investor",
    "expert_off",
)
READ_ONLY = ("terminal_info", "account_info", "last_error", "version")
# What the real package also has; each is logged as forbidden if the gate ever calls it.
OTHERS = (
    "shutdown",
    "login",
    "order_send",
    "order_check",
    "symbol_select",
    "market_book_add",
    "market_book_release",
    "market_book_get",
    "positions_get",
    "symbols_get",
)
TerminalInfo = namedtuple(
    "TerminalInfo",
    "community_account community_connection connected dlls_allowed trade_allowed "
    "tradeapi_disabled email_enabled ftp_enabled notifications_enabled mqid build maxbars "
    "codepage ping_last community_balance retransmission company name language path "
    "data_path commondata_path",
)
AccountInfo = namedtuple(
    "AccountInfo",
    "login trade_mode leverage limit_orders margin_so_mode trade_allowed trade_expert "
    "margin_mode currency_digits fifo_close balance credit profit equity margin margin_free "
    "margin_level margin_so_call margin_so_so margin_initial margin_maintenance assets "
    "liabilities commission_blocked name server currency company",
)


class FakeTerminal:
    """The module's state: attached or not, and the terminal's state word."""

    def __init__(self, events: rt.Events, state: str, state_file: str | None, delay: float):
        self.events = events
        self.state = state
        self.state_file = Path(state_file) if state_file else None
        self.delay = delay
        self.attached = False
        self.error = (-10004, "No IPC connection")
        self.lock = threading.Lock()

    def current(self) -> str:
        if self.state_file is not None and self.state_file.exists():
            word = self.state_file.read_text().strip()
            if word in STATES:
                return word
        return self.state

    def module(self) -> types.ModuleType:
        mt5 = types.ModuleType("MetaTrader5")
        mt5.initialize = self.initialize  # type: ignore[attr-defined]
        mt5.terminal_info = self.logged("terminal_info", self.terminal_info)  # type: ignore[attr-defined]
        mt5.account_info = self.logged("account_info", self.account_info)  # type: ignore[attr-defined]
        mt5.last_error = self.logged("last_error", lambda: self.error)  # type: ignore[attr-defined]
        mt5.version = self.logged("version", lambda: (500, 4755, "21 Nov 2024"))  # type: ignore[attr-defined]
        for name in OTHERS:
            setattr(mt5, name, self.forbidden(name))
        return mt5

    def logged(self, name: str, function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.events.emit("call", name=name, args=repr(args), kwargs=repr(kwargs))
            if args or kwargs:
                self.events.emit("forbidden_call", name=name, why="arguments")
            return function()

        return call

    def forbidden(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.events.emit("forbidden_call", name=name, args=repr(args)[:200])
            return None

        return call

    def initialize(self, *args: Any, **kwargs: Any) -> bool:
        self.events.emit("call", name="initialize", args=repr(args), kwargs=repr(kwargs))
        if args or set(kwargs) - {"timeout"}:
            self.events.emit("forbidden_call", name="initialize", why="arguments")
            return False
        state = self.current()
        if state != "not_running":
            time.sleep(self.delay)  # the real one blocks while a terminal starts
        with self.lock:
            if state in ("not_running", "starting"):
                self.error = (
                    (-10003, "IPC initialize failed, MetaTrader 5 x64 not found")
                    if state == "not_running"
                    else (-10005, "IPC timeout")
                )
                self.events.emit("initialize_returned", result=False)
                return False
            self.attached, self.error = True, (1, "Success")
        self.events.emit("initialize_returned", result=True)
        return True

    def terminal_info(self) -> Any:
        state = self.current()
        if not self.attached or state in ("not_running", "starting"):
            return None
        return TerminalInfo(
            False, False, state != "no_broker", True, state != "algo_off",
            state == "api_disabled", False, False, False, False, 4755, 100000,
            1252, 31000, 0.0, 0.0, "Stand-in Broker Ltd", "MetaTrader 5", "English",
            "C:\\MT5", "C:\\MT5", "C:\\common",
        )  # fmt: skip

    def account_info(self) -> Any:
        state = self.current()
        if not self.attached or state in ("not_running", "starting", "not_logged_in"):
            return None
        return AccountInfo(
            51234567, 0, 100, 200, 0, state != "investor", state != "expert_off", 2, 2,
            False, 10000.0, 0.0, 0.0, 10000.0, 0.0, 10000.0, 0.0, 50.0, 30.0, 0.0, 0.0,
            0.0, 0.0, 0.0, "Jane Secret-Name", "StandIn-Demo", "USD", "Stand-in Broker Ltd",
        )  # fmt: skip


def service_class(events: rt.Events) -> type:
    """``SlaveService`` as the classic server serves it, with its code-running doors
    logged: the gate may only ever use ``getmodule``."""

    class LoggedSlave(rpyc.core.SlaveService):  # type: ignore[misc]
        def getmodule(self, name: str) -> Any:
            events.emit("getmodule", name=str(name))
            return super().getmodule(name)

        def eval(self, text: str) -> Any:
            events.emit("forbidden_call", name="eval", args=str(text)[:200])
            return super().eval(text)

        def execute(self, text: str) -> Any:
            events.emit("forbidden_call", name="execute", args=str(text)[:200])
            return super().execute(text)

    return LoggedSlave


def main(argv: list[str] | None = None) -> int:
    parser = rt.common_parser("mt5linux_server", "rpyc classic server + a MetaTrader5 stand-in")
    parser.add_argument("--port", type=int, default=18812)
    parser.add_argument("--state", choices=STATES, default="healthy")
    parser.add_argument("--state-file", default=None, help="one state word, re-read per call")
    parser.add_argument("--initialize-s", type=float, default=0.2)
    args = parser.parse_args(argv)
    events = rt.Events()
    stopper = rt.Stopper(args.exit_after)
    if not rt.begin(events, stopper, args.start_delay):
        return 0
    terminal = FakeTerminal(events, args.state, args.state_file, args.initialize_s)
    sys.modules["MetaTrader5"] = terminal.module()
    server = ThreadedServer(
        service_class(events),
        hostname=args.bind,
        port=args.port,
        protocol_config={"allow_all_attrs": True},
    )
    threading.Thread(target=server.start, daemon=True).start()
    events.emit("listening", ports={"rpyc": server.port}, rpyc=rpyc.__version__)
    while stopper.sleep(0.05):
        pass
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
