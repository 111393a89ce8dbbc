"""The flags of ``mt5-gate sim``, kept apart from the simulator so that building the
command line for ``wait`` does not import the simulator."""

from __future__ import annotations

import argparse
from typing import Any

from entrypoint.config import parse_port, parse_seconds

# The dialect names of sim_dialects.DIALECTS, listed here so that building the command line
# does not import the simulator (a test checks the two agree).
DIALECT_NAMES = ("mt5-gate", "heartbeat", "token", "plain-ok", "trade-on-action")


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--bind", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=_argtype(_sim_port), default=5555,
        help="REQ/REP port; 0 = any free port (default 5555)")
    add("--pub-port", type=_argtype(_sim_port), default=5556,
        help="PUB port for ticks; 0 = any free port (default 5556)")
    add("--start-delay", type=_argtype(parse_seconds), default=0.0, metavar="S",
        help="wait S seconds before binding (a gateway that starts late)")
    add("--reply-delay", type=_argtype(parse_seconds), default=0.0, metavar="S",
        help="answer every request S seconds late")
    add("--drop-first", type=_argtype(_count), default=0, metavar="N",
        help="take the first N requests and never answer them")
    add("--dialect", choices=DIALECT_NAMES, default="mt5-gate",
        help="which bridge to behave like (default mt5-gate; see docs/BRIDGES.md): "
             + ", ".join(DIALECT_NAMES))
    add("--token-file", metavar="PATH", default=None,
        help="with --dialect token: the file holding the shared token requests must carry")
    add("--garbage", action="store_true", help="answer with bytes that are not JSON")
    add("--bad-status", action="store_true",
        help='answer {"status": "MAINTENANCE"} (dialect mt5-gate)')
    add("--not-zmq", action="store_true",
        help="listen on --port as a plain TCP server that sends an HTTP-like banner")
    add("--exit-after", type=_argtype(parse_seconds), default=None, metavar="S",
        help="exit (code 0) S seconds after starting")
    add("--tick-hz", type=_argtype(parse_seconds), default=10.0, metavar="HZ",
        help="ticks per second on the PUB port (default 10; 0 = none)")
    add("--curve-secret-key-file", metavar="PATH", default=None,
        help="serve with CURVE, using the secret key in PATH (Z85 or a zmq certificate)")
    add("--curve-allow", metavar="PATH", default=None,
        help="with CURVE, accept only the client public keys listed in PATH (one per line)")
    add("--log-format", choices=("auto", "json", "console"), default="auto",
        help="log format (default auto)")
