"""``mt5-gate sim``: a simulated MT5 ZeroMQ bridge for development, tests and demos.

This module is the command: its flags and a ``run`` that hands them to the simulator,
the ``entrypoint.sim`` package (server.py the gateway, dialects.py and bridges.py how it
answers). REQ/REP on ``--port`` answers in the dialect ``--dialect`` names; PUB on
``--pub-port`` publishes ticks and a heartbeat; the fault knobs reproduce what goes wrong
in production.

The flags are argparse's own, not option groups (options.py): an option there is a
setting of the gate, with a variable, resolved flag > variable > preset > default; the
simulator has no variables, and its ``--port``, ``--pub-port``, ``--reply-port`` and
``--curve-secret-key-file`` are the other side of the gate's (ports it binds, 0 = any).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from entrypoint.addresses import parse_port
from entrypoint.commands.arguments import OptionParser, describe
from entrypoint.settings.options import parse_seconds
from entrypoint.sim.dialects import ALL_DIALECTS, BROKER_STATES, MT5LINUX_STATES
from entrypoint.sim.server import serve


def _argtype(parse: Any) -> Any:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    return convert


def _count(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise ValueError("expected a whole number >= 0") from None
    if value < 0:
        raise ValueError("expected a whole number >= 0")
    return value


def _sim_port(text: str) -> int:
    return 0 if text.strip() == "0" else parse_port(text)


def add_arguments(parser: OptionParser) -> None:
    describe(
        parser,
        description="A simulated MT5 ZeroMQ bridge with fault knobs.",
        epilog="exit codes: 0 after --exit-after, 64 usage error, 69 cannot bind (the port "
        "is taken, or the address is not this host's)",
    )
    add = parser.add_argument
    add("--bind", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add(
        "--port",
        type=_argtype(_sim_port),
        default=5555,
        help="REQ/REP port (dwx: the PULL its commands come in on; mql5-json-api: the "
        "System REP; mt5linux: the rpyc server); 0 = any free port (default 5555)",
    )
    add(
        "--pub-port",
        type=_argtype(_sim_port),
        default=5556,
        help="PUB port for ticks (mql5-json-api: its chart PUB, bound and silent); "
        "0 = any free port (default 5556)",
    )
    add(
        "--reply-port",
        type=_argtype(_sim_port),
        default=None,
        metavar="PORT",
        help="with --dialect dwx or mql5-json-api: the PUSH port the bridge sends its "
        "answers on (dwx: replies to the commands of the PULL on --port; "
        "mql5-json-api: the Data socket); 0 = any free port (default 0)",
    )
    add(
        "--broker-state",
        metavar="WORD",
        default=None,
        help="with --dialect dwx: refuse every command but HEARTBEAT with "
        "{'_response': 'WORD__ABORTED_COMMAND'}, WORD one of "
        + ", ".join(BROKER_STATES["dwx"])
        + "; with --dialect mql5-json-api: algo_trading_off (ACCOUNT reports "
        "trading_allowed 0) or ea_trading_off (bot_trading 0); either way a "
        "TRADE is refused; with --dialect ejtrader: those two or not_logged_in; "
        "with --dialect pymetatrader: not_logged_in (ACCOUNT answers id=0); "
        "with --dialect mt5linux: one of " + ", ".join(MT5LINUX_STATES),
    )
    add(
        "--start-delay",
        type=_argtype(parse_seconds),
        default=0.0,
        metavar="S",
        help="wait S seconds before binding (a gateway that starts late)",
    )
    add(
        "--reply-delay",
        type=_argtype(parse_seconds),
        default=0.0,
        metavar="S",
        help="answer every request S seconds late",
    )
    add(
        "--drop-first",
        type=_argtype(_count),
        default=0,
        metavar="N",
        help="take the first N requests and never answer them",
    )
    add(
        "--dialect",
        choices=ALL_DIALECTS,
        default="mt5-gate",
        help="which bridge to behave like (default mt5-gate; see mt5-gate explain --bridge): "
        + ", ".join(ALL_DIALECTS),
    )
    add(
        "--token-file",
        metavar="PATH",
        default=None,
        help="with --dialect token: the file holding the shared token requests must carry",
    )
    add("--garbage", action="store_true", help="answer with bytes that are not JSON")
    add(
        "--bad-status",
        action="store_true",
        help='answer {"status": "MAINTENANCE"} (dialect mt5-gate)',
    )
    add(
        "--not-zmq",
        action="store_true",
        help="listen on --port as a plain TCP server that sends an HTTP-like banner",
    )
    add(
        "--exit-after",
        type=_argtype(parse_seconds),
        default=None,
        metavar="S",
        help="exit (code 0) S seconds after starting",
    )
    add(
        "--tick-hz",
        type=_argtype(parse_seconds),
        default=None,
        metavar="HZ",
        help="ticks per second on the PUB port (default 10; 0 = none; dwx publishes the "
        "symbols a client asked for with TRACK_PRICES)",
    )
    add(
        "--curve-secret-key-file",
        metavar="PATH",
        default=None,
        help="serve with CURVE, using the secret key in PATH (Z85 or a zmq certificate)",
    )
    add(
        "--curve-allow",
        metavar="PATH",
        default=None,
        help="with CURVE, accept only the client public keys listed in PATH (one per line)",
    )
    add(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="log format (default auto)",
    )


def run(args: argparse.Namespace, _command: list[str], environ: Mapping[str, str]) -> int:
    return serve(args)
