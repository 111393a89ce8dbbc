"""The command line: parse, configure logging once, run a command, map errors to exit codes.

Only this module turns exceptions into exit codes; see ``errors.py`` for the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from entrypoint import __version__, sim_args
from entrypoint.config import (
    CURVE_OPTIONS,
    GATE_OPTIONS,
    HEALTH_OPTIONS,
    LOG_FORMATS,
    PROBE_OPTIONS,
    GateSettings,
    Option,
    resolve_option,
    settings_from_sources,
    split_list,
)
from entrypoint.errors import (
    EXIT_SOFTWARE,
    GateError,
    GateSignal,
    GatewayMisconfigured,
    GatewayTimeout,
    UsageError,
)
from entrypoint.logs import configure_logging, get_logger
from entrypoint.signals import install_stop_handlers

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


_ALL_OPTIONS = (*PROBE_OPTIONS, *HEALTH_OPTIONS, *CURVE_OPTIONS)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a UsageError (exit 64, one line), not exit 2."""

    def error(self, message: str) -> NoReturn:
        # argparse names only the flag; users configure by variable too, so name both.
        flag = re.search(r"argument (--[a-z-]+)", message)
        option = next((opt for opt in _ALL_OPTIONS if flag and opt.flag == flag.group(1)), None)
        if option is not None:
            message = message.replace(option.flag, f"{option.flag} / {option.env}", 1)
        raise UsageError(f"{self.prog}: {message}")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps help at spaces only, so a JSON default stays copyable in one piece."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap  # noqa: PLC0415 - only when --help is asked for

        return textwrap.wrap(" ".join(text.split()), width, break_long_words=False,
                             break_on_hyphens=False)


def _add_options(parser: argparse.ArgumentParser, options: tuple[Option, ...]) -> None:
    for opt in options:
        default = opt.default_help or opt.default or (
            "required" if opt.field == "host" else "none")
        parser.add_argument(opt.flag, dest=opt.field, metavar=opt.metavar, default=None,
                            help=f"{opt.help} [env {opt.env}; default {default}]")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mt5-gate",
                     description="Hold a container's strategy runner until the MT5 ZeroMQ "
                                 "gateway answers, then exec it.")
    parser.add_argument("--version", action="version", version=f"mt5-gate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    raw = _HelpFormatter
    wait = commands.add_parser(
        "wait", help="wait for the gateway, then exec COMMAND",
        usage="mt5-gate wait [OPTIONS] [-- COMMAND [ARG...]]",
        description="Retry a TCP connect and a ZeroMQ PING with exponential backoff until the "
                    "gateway answers, then exec COMMAND (which keeps the PID). With no COMMAND, "
                    "exit 0 once the gateway answers.",
        epilog=EXIT_CODES_HELP, formatter_class=raw)
    _add_options(wait, (*GATE_OPTIONS, *CURVE_OPTIONS))
    wait.add_argument("--also", action="append", metavar="URL", default=None,
                      help="another dependency that must be ready too (repeatable): tcp://, "
                           "zmq+req:// (another bridge, asked like the gateway), zmq+sub://, "
                           "redis://, postgresql://, http(s):// "
                           "[env GATE_ALSO, comma-separated]")
    probe = commands.add_parser(
        "probe", help="diagnose the gateway layer by layer, with troubleshooting steps",
        description="DNS, TCP, ZeroMQ PING, round trips, STATUS and the PUB port, each with "
                    "its timing; on failure, the reason and the commands to run. Accepts all "
                    "of wait's options (the deadline and backoff ones have no effect).",
        epilog="exit codes: 0 TCP and PING pass, 1 otherwise, 64 usage error", formatter_class=raw)
    _add_options(probe, (*PROBE_OPTIONS, *CURVE_OPTIONS))
    probe.add_argument("--json", action="store_true", help="print one JSON document")
    health = commands.add_parser(
        "health", help="one bounded attempt, for container healthchecks",
        description="One TCP + PING attempt within --timeout. Prints one short line.",
        epilog="exit codes: 0 healthy, 1 unhealthy or misconfigured (never 2)",
        formatter_class=raw)
    _add_options(health, (*HEALTH_OPTIONS, *CURVE_OPTIONS))
    mesh = commands.add_parser(
        "mesh", help="check every dependency concurrently and score the mesh",
        description="Local environment, network (ICMP), application ports (gateway REQ and "
                    "PUB, Redis, PostgreSQL, HTTP) and external (DNS, TCP), all at once.",
        epilog="exit codes: 0 every check passed, 1 only non-critical checks failed, "
               "2 a critical check failed, 64 usage error", formatter_class=raw)
    _add_options(mesh, (*PROBE_OPTIONS, *CURVE_OPTIONS))
    mesh.add_argument("--file", metavar="PATH", default=None,
                      help="TOML mesh file adding checks [env GATE_MESH_FILE]")
    mesh.add_argument("--json", action="store_true", help="print one JSON document")
    sim_args.add_arguments(commands.add_parser(
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
    is_health = options[:1] == ["health"]
    try:
        try:
            args = build_parser().parse_args(options)
        except SystemExit as done:  # --help and --version print and "exit" 0
            return int(done.code or 0)
        if args.command is None:
            raise UsageError("mt5-gate: a command is required (wait, probe, health, mesh, "
                             "sim); see mt5-gate --help")
        if command and args.command != "wait":
            raise UsageError(f"mt5-gate {args.command}: unexpected arguments after --")
        install_stop_handlers()
        return _COMMANDS[args.command](args, command, env)
    except UsageError as exc:
        if is_health:  # Docker reads exit 1 and one line; 64 would mean nothing to it
            from entrypoint import health  # noqa: PLC0415

            return health.emit(sys.stdout, health.UNHEALTHY, f"unhealthy: {exc.message}")
        _configure_fallback_logging(options, env)
        _log_error(exc)
        return exc.exit_code


def _settings(args: argparse.Namespace, env: Mapping[str, str],
              options: tuple[Option, ...]) -> GateSettings:
    """Validated settings from flags and environment, CURVE keys included."""
    flags = vars(args)
    settings = settings_from_sources(flags, env, options)
    if not any(flags.get(opt.field) is not None or env.get(opt.env) for opt in CURVE_OPTIONS):
        return settings
    from entrypoint.curve import curve_from_sources  # noqa: PLC0415 - only when CURVE is used

    return dataclasses.replace(settings, curve=curve_from_sources(flags, env))


def _run_wait(args: argparse.Namespace, command: list[str], env: Mapping[str, str]) -> int:
    settings = _settings(args, env, GATE_OPTIONS)
    also = args.also if args.also is not None else split_list(env.get("GATE_ALSO", ""))
    dependencies = []
    if also:
        from entrypoint.dependencies import parse_dependency  # noqa: PLC0415 - only with --also

        dependencies = [parse_dependency(url, settings) for url in also]
    configure_logging(settings.log_format, settings.log_level)
    from entrypoint.gate import run_wait  # noqa: PLC0415

    return _guarded(lambda: run_wait(settings, command, env, dependencies))


def _run_probe(args: argparse.Namespace, _command: list[str], env: Mapping[str, str]) -> int:
    from entrypoint import probe  # noqa: PLC0415 - commands load only what they use

    settings = _settings(args, env, PROBE_OPTIONS)
    configure_logging(settings.log_format, settings.log_level)
    return _guarded(lambda: probe.run_probe(settings, as_json=args.json))


def _run_health(args: argparse.Namespace, _command: list[str], env: Mapping[str, str]) -> int:
    from entrypoint import health  # noqa: PLC0415

    settings = _settings(args, env, HEALTH_OPTIONS)
    configure_logging(settings.log_format, "error")
    try:
        return health.run_health(settings)
    except GateSignal as sig:
        return health.emit(sys.stdout, health.UNHEALTHY, f"unhealthy: stopped by {sig.name}")


def _run_mesh(args: argparse.Namespace, _command: list[str], env: Mapping[str, str]) -> int:
    from entrypoint import mesh  # noqa: PLC0415

    flags = vars(args)
    try:
        settings: GateSettings | None = _settings(args, env, PROBE_OPTIONS)
    except UsageError:
        if flags.get("host") is not None or env.get("GATEWAY_HOST"):
            raise  # a host was given but something is invalid: say so
        settings = None  # no gateway configured: the mesh reports that as a failed check
    path = mesh.mesh_file_path(args.file, env)
    document = mesh.load_mesh_file(path) if path else None
    checks = mesh.build_checks(settings, env, document, path or "")
    configure_logging(settings.log_format if settings else "auto", "warning")
    return _guarded(lambda: mesh.run_mesh(checks, as_json=args.json))


def _run_sim(args: argparse.Namespace, _command: list[str], env: Mapping[str, str]) -> int:
    from entrypoint import sim  # noqa: PLC0415

    return _guarded(lambda: sim.run(args, env))


_COMMANDS: dict[str, Callable[[argparse.Namespace, list[str], Mapping[str, str]], int]] = {
    "wait": _run_wait, "probe": _run_probe, "health": _run_health, "mesh": _run_mesh,
    "sim": _run_sim,
}


def _guarded(run: Any) -> int:
    """Run a command; turn the gate's exceptions into their log event and exit code."""
    log = get_logger()
    try:
        return int(run())
    except GateSignal as sig:
        log.warning("gate.signal", signal=sig.name, exit_code=sig.exit_code)
        return sig.exit_code
    except GatewayTimeout as exc:
        target = {"target": exc.target} if exc.target else {}
        log.error(  # noqa: TRY400 - an expected outcome: no traceback to show
            "gate.timeout", error=exc.message, elapsed_s=exc.elapsed_s, attempts=exc.attempts,
            last_reason=exc.last_reason, hint=exc.hint, exit_code=exc.exit_code, **target)
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
    if exc.target:
        fields["target"] = exc.target
    if isinstance(exc, GatewayMisconfigured):
        fields["reason"] = exc.reason
    if exc.hint:
        fields["hint"] = exc.hint
    elif isinstance(exc, UsageError):
        fields["hint"] = "see mt5-gate --help"
    get_logger().error("gate.error", **fields)


def _configure_fallback_logging(options: Sequence[str], env: Mapping[str, str]) -> None:
    """Logging for errors found before the settings were valid: honour what we can."""
    fmt_option = next(opt for opt in GATE_OPTIONS if opt.field == "log_format")
    flag = None
    for index, arg in enumerate(options):
        if arg == "--log-format" and index + 1 < len(options):
            flag = options[index + 1]
        elif arg.startswith("--log-format="):
            flag = arg.split("=", 1)[1]
    try:
        log_format = resolve_option(fmt_option, flag, env)
    except UsageError:
        log_format = "auto"
    configure_logging(log_format if log_format in LOG_FORMATS else "auto", "info")
