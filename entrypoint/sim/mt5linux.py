"""``sim --dialect mt5linux``: an rpyc classic server in front of a simulated
``MetaTrader5`` module, to rehearse ``--bridge mt5linux`` (and each broker state with
``--broker-state``) without Wine or a terminal.

The server is rpyc's own ``ThreadedServer`` serving ``SlaveService``, as
lucas-campagna/mt5linux runs it (``rpyc.cli.rpyc_classic``). The module answers the
read-only calls from ``--broker-state``; its terminal is detached until a client's
``initialize()`` attaches it, as in the real package. Any other call (``order_send``,
``shutdown``, ``login``, ``initialize`` with arguments) is logged as
``sim.order_attempt`` and does nothing, so a rehearsal proves the gate never made one.
Imported only for this dialect: it imports rpyc (``mt5-gate[rpyc]``).
"""

from __future__ import annotations

import argparse
import threading
import time
import types
from collections import namedtuple
from typing import Any

from entrypoint.errors import UsageError
from entrypoint.log import events
from entrypoint.log.events import emit
from entrypoint.sim.dialects import MT5LINUX_STATES as STATES
from entrypoint.sim.dialects import SimState, record_order

# How long the simulated initialize() blocks (the real one up to 60 s); terminal_starting
# blocks for ever, as a terminal that never comes up would (the call's thread is a daemon).
INITIALIZE_S = 0.1
_FORBIDDEN = ("shutdown", "login", "order_send", "order_check", "symbol_select")

_Terminal = namedtuple(
    "_Terminal", "connected dlls_allowed trade_allowed tradeapi_disabled build name company path"
)
_Account = namedtuple(
    "_Account", "login trade_mode trade_allowed trade_expert balance equity name server currency"
)


class _Module:
    """The simulated package: state in ``broker_state``, attached by ``initialize()``."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.attached = False
        self.error: tuple[int, str] = (-10004, "No IPC connection")

    def build(self) -> types.ModuleType:
        mt5 = types.ModuleType("MetaTrader5")
        for name in ("initialize", "terminal_info", "account_info", "last_error", "version"):
            setattr(mt5, name, getattr(self, name))
        for name in _FORBIDDEN:
            setattr(mt5, name, self._forbidden(name))
        return mt5

    def _forbidden(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> None:
            record_order(self.state, name, repr((args, kwargs)).encode())

        return call

    def initialize(self, *args: Any, **kwargs: Any) -> bool:
        if args or set(kwargs) - {"timeout"}:
            record_order(self.state, "initialize", repr((args, kwargs)).encode())
            return False
        state = self.state.broker_state
        if state == "terminal_starting":
            threading.Event().wait()  # never returns: the gate must not call it twice
        time.sleep(INITIALIZE_S)
        if state == "terminal_not_attached":
            self.error = (-10004, "No IPC connection")
            return False
        self.attached, self.error = True, (1, "Success")
        return True

    def terminal_info(self) -> Any:
        state = self.state.broker_state
        if not self.attached:
            return None
        return _Terminal(
            state != "no_broker_connection",
            True,
            state != "algo_trading_off",
            state == "api_disabled",
            4755,
            "MetaTrader 5",
            "mt5-gate sim",
            "C:\\MT5",
        )

    def account_info(self) -> Any:
        state = self.state.broker_state
        if not self.attached or state == "not_logged_in":
            return None
        return _Account(
            12345678,
            0,
            state != "investor_login",
            state != "account_expert_trading_off",
            10000.0,
            10000.0,
            "Simulated Trader",
            "Sim-Demo",
            "USD",
        )

    def last_error(self) -> tuple[int, str]:
        return self.error

    @staticmethod
    def version() -> tuple[int, int, str]:
        return (500, 4755, "21 Nov 2024")


def check_options(args: argparse.Namespace) -> None:
    for flag, given in (
        ("--garbage", args.garbage),
        ("--bad-status", args.bad_status),
        ("--not-zmq", args.not_zmq),
        ("--reply-port", args.reply_port is not None),
        ("--curve-secret-key-file", args.curve_secret_key_file is not None),
        ("--drop-first", bool(args.drop_first)),
        ("--reply-delay", bool(args.reply_delay)),
    ):
        if given:
            raise UsageError(f"{flag} is not simulated for --dialect mt5linux")
    if args.broker_state is not None and args.broker_state not in STATES:
        raise UsageError(
            f"--broker-state {args.broker_state!r} is not a state of --dialect mt5linux "
            f"(one of {', '.join(STATES)})"
        )


def serve_mt5linux(args: argparse.Namespace, log: Any, state: SimState, stop_at: float) -> None:
    """Serve until ``stop_at`` (or a signal, which unwinds this thread)."""
    try:
        import rpyc  # noqa: PLC0415 - the optional extra, for this dialect only
        from rpyc.utils.server import ThreadedServer  # noqa: PLC0415
    except ImportError:
        raise UsageError(
            "sim --dialect mt5linux needs the rpyc package: pip install 'mt5-gate[rpyc]'"
        ) from None
    import sys  # noqa: PLC0415

    sys.modules["MetaTrader5"] = _Module(state).build()  # what getmodule imports
    server = ThreadedServer(
        rpyc.core.SlaveService,
        hostname=args.bind,
        port=args.port,
        ipv6=":" in args.bind,
        logger=_quiet_logger(),
    )
    threading.Thread(target=server.start, name="mt5-gate-sim-rpyc", daemon=True).start()
    emit(
        log,
        events.SIM_LISTENING,
        mode="rpyc",
        port=server.port,
        reply_port=None,
        pub_port=None,
        curve=False,
        dialect=args.dialect,
    )
    try:
        while time.monotonic() < stop_at:
            time.sleep(min(0.2, max(0.0, stop_at - time.monotonic())))
    finally:
        server.close()


def _quiet_logger() -> Any:
    """rpyc logs every connection at INFO on stderr; the sim's own lines are the log."""
    import logging  # noqa: PLC0415

    logger = logging.getLogger("mt5-gate-sim-rpyc")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger
