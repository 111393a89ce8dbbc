"""The command line: parse, configure logging once, run a command, map errors to exit codes.

Only this module turns exceptions into exit codes; see ``errors.py`` for the table.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from entrypoint import __version__
from entrypoint.config import GATE_OPTIONS, LOG_FORMATS, resolve_option, settings_from_sources
from entrypoint.errors import (
    EXIT_SOFTWARE,
    GateError,
    GateSignal,
    GatewayMisconfigured,
    GatewayTimeout,
    UsageError,
)
from entrypoint.logs import configure_logging, get_logger

EXIT_CODES_HELP = """\
exit codes:
  0    ready (and no COMMAND); otherwise COMMAND replaces the gate and its code is final
  64   usage error or invalid value
  69   the gateway did not answer before --timeout
  70   internal error (a bug; the log has the traceback)
  78   something answers on the port but it is not a ZeroMQ REP gateway
  126  COMMAND is not executable
  127  COMMAND not found
  130  SIGINT while waiting
  143  SIGTERM while waiting
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a UsageError (exit 64, one line), not exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _add_gate_options(parser: argparse.ArgumentParser) -> None:
    for opt in GATE_OPTIONS:
        default = "required" if opt.default is None else opt.default
        parser.add_argument(opt.flag, dest=opt.field, metavar=opt.metavar, default=None,
                            help=f"{opt.help} [env {opt.env}; default {default}]")


def build_parser() -> argparse.ArgumentParser:
    from entrypoint import sim  # noqa: PLC0415 - keeps `wait` start-up free of the simulator

    parser = _Parser(prog="mt5-gate",
                     description="Hold a container's strategy runner until the MT5 ZeroMQ "
                                 "gateway answers, then exec it.")
    parser.add_argument("--version", action="version", version=f"mt5-gate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    wait = commands.add_parser(
        "wait", help="wait for the gateway, then exec COMMAND",
        usage="mt5-gate wait [OPTIONS] [-- COMMAND [ARG...]]",
        description="Retry a TCP connect and a ZeroMQ PING with exponential backoff until the "
                    "gateway answers, then exec COMMAND (which keeps the PID). With no COMMAND, "
                    "exit 0 once the gateway answers.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_gate_options(wait)
    sim.add_arguments(commands.add_parser(
        "sim", help="run a simulated MT5 gateway (REQ/REP and PUB) for development and tests",
        description="A simulated MT5 ZeroMQ bridge with fault knobs."))
    return parser


def _split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Everything after the first ``--`` of ``wait`` is the runner, passed on untouched."""
    args = list(argv)
    if "--" in args:
        cut = args.index("--")
        return args[:cut], args[cut + 1:]
    return args, []


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    options, command = _split_command(argv)
    try:
        try:
            args = build_parser().parse_args(options)
        except SystemExit as done:  # --help and --version print and "exit" 0
            return int(done.code or 0)
        if args.command is None:
            raise UsageError("mt5-gate: a command is required (wait, sim); see mt5-gate --help")
        if command and args.command != "wait":
            raise UsageError(f"mt5-gate {args.command}: unexpected arguments after --")
        if args.command == "wait":
            return _run_wait(args, command, env)
        from entrypoint import sim  # noqa: PLC0415

        return _guarded(lambda: sim.run(args, env))
    except UsageError as exc:
        _configure_fallback_logging(env)
        _log_error(exc)
        return exc.exit_code


def _run_wait(args: argparse.Namespace, command: list[str], env: Mapping[str, str]) -> int:
    from entrypoint.gate import run_wait  # noqa: PLC0415
    from entrypoint.signals import install_stop_handlers  # noqa: PLC0415

    install_stop_handlers()
    settings = settings_from_sources(vars(args), env)
    configure_logging(settings.log_format, settings.log_level)
    return _guarded(lambda: run_wait(settings, command, env))


def _guarded(run: Any) -> int:
    """Run a command; turn the gate's exceptions into their log event and exit code."""
    log = get_logger()
    try:
        return int(run())
    except GateSignal as sig:
        log.warning("gate.signal", signal=sig.name, exit_code=sig.exit_code)
        return sig.exit_code
    except GatewayTimeout as exc:
        log.error(  # noqa: TRY400 - an expected outcome: no traceback to show
            "gate.timeout", error=exc.message, attempts=exc.attempts,
            last_reason=exc.last_reason, hint=exc.hint, exit_code=exc.exit_code)
        return exc.exit_code
    except GateError as exc:
        _log_error(exc)
        return exc.exit_code
    except Exception:  # a bug: one JSON event with the traceback (no locals), not a crash dump
        log.exception("gate.error", error="internal error (please report this as a bug)",
                      exit_code=EXIT_SOFTWARE)
        return EXIT_SOFTWARE


def _log_error(exc: GateError) -> None:
    fields: dict[str, Any] = {"error": exc.message, "exit_code": exc.exit_code}
    if isinstance(exc, GatewayMisconfigured):
        fields["reason"] = exc.reason
    if exc.hint:
        fields["hint"] = exc.hint
    elif isinstance(exc, UsageError):
        fields["hint"] = "see mt5-gate --help"
    get_logger().error("gate.error", **fields)


def _configure_fallback_logging(env: Mapping[str, str]) -> None:
    """Logging for errors found before the settings were valid: honour what we can."""
    fmt_option = next(opt for opt in GATE_OPTIONS if opt.field == "log_format")
    try:
        log_format = resolve_option(fmt_option, None, env)
    except UsageError:
        log_format = "auto"
    configure_logging(log_format if log_format in LOG_FORMATS else "auto", "info")
