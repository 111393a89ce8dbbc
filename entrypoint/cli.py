"""The command line: parse, dispatch to ``commands/``, map errors to exit codes.

Only this module turns exceptions into exit codes (``_guarded``, the one error boundary);
see ``errors.py`` for the table. Each command owns its own rules in ``commands/<name>.py``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, NoReturn

from entrypoint import __version__, fdlimit
from entrypoint.commands import sim as sim_command
from entrypoint.config import (
    CURVE_OPTIONS,
    GATE_OPTIONS,
    HEALTH_OPTIONS,
    LOG_FORMATS,
    PROBE_OPTIONS,
    Option,
    declared,
    resolve_option,
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
from entrypoint.targets import SCHEMES

EXIT_CODES_HELP = """\
exit codes:
  0    ready (and no COMMAND); otherwise COMMAND replaces the gate and its code is final
  64   usage error or invalid value
  69   the gateway did not answer before --timeout
  70   internal error (a bug; the log has the traceback), or ulimit -n too low
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
                    "exit 0 once the gateway answers. --bridge NAME speaks a public bridge's "
                    "protocol (see docs/BRIDGES.md).",
        epilog=EXIT_CODES_HELP, formatter_class=raw)
    _add_options(wait, (*GATE_OPTIONS, *CURVE_OPTIONS))
    wait.add_argument("--also", action="append", metavar="URL", default=None,
                      help="another target that must be ready too (repeatable): "
                           f"{', '.join(s + '://' for s in SCHEMES)}; zmq+req:// is another "
                           "bridge, asked and judged like the gateway "
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
        description="One TCP + PING attempt within --timeout (--transport req).\n"
                    "For push-pull, req-pull and handshake, a passive check that never "
                    "disturbs the\nrunning strategy: the ZeroMQ handshake with the bridge's "
                    "request socket (and the PUB\nport when one is configured); nothing "
                    "sent, the reply port never touched.\nPrints one short line.",
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
    explain = commands.add_parser(
        "explain", help="read the gate's JSON log back: what it waited for, what went wrong, "
                        "what to do",
        usage="mt5-gate explain [FILE] [--json]",
        description="Reads the gate's log lines from FILE or standard input (e.g. `docker "
                    "logs mt5-strategy 2>&1 | mt5-gate explain`), skips every line that is "
                    "not the gate's, and prints a three-sentence summary, the advice for the "
                    "reason that mattered (hint, TROUBLESHOOTING section, next command) and "
                    "a timeline per gate run (a restarted container has several).",
        epilog="exit codes: 0 explained, 1 no line of the gate found, 64 usage error, "
               "66 FILE cannot be read", formatter_class=raw)
    explain.add_argument("file", nargs="?", metavar="FILE", default=None,
                         help="a log file (default: standard input; - is standard input)")
    explain.add_argument("--json", action="store_true", help="print one JSON document")
    sim_command.add_arguments(commands.add_parser(
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


COMMANDS = ("wait", "probe", "health", "mesh", "sim", "explain")
# Options whose value may begin with "-": a Z85 CURVE key does one time in 85 ("-" is in
# its alphabet), and argparse would take such a value for an option and fail with
# "expected one argument". Their next word is always their value (and is validated).
_VALUE_MAY_START_WITH_DASH = frozenset({"--curve-server-key", "--ready-when"})


def _attach_dash_values(options: list[str]) -> list[str]:
    """``--curve-server-key -abc`` as ``--curve-server-key=-abc``, which argparse reads."""
    joined: list[str] = []
    words = iter(options)
    for word in words:
        value = next(words, None) if word in _VALUE_MAY_START_WITH_DASH else None
        if value is not None and value.startswith("-"):
            joined.append(f"{word}={value}")
        else:
            joined += [word] if value is None else [word, value]
    return joined


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    # First of all: as PID 1, a SIGTERM that arrives before a handler exists is ignored,
    # and Docker then waits out its whole grace period before killing the container.
    install_stop_handlers()
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    options, command = _split_command(argv)
    options = _attach_dash_values(options)
    try:
        try:
            args = build_parser().parse_args(options)
        except SystemExit as done:  # --help and --version print and "exit" 0
            return int(done.code or 0)
        if args.command is None:
            raise UsageError(f"mt5-gate: a command is required ({', '.join(COMMANDS)}); "
                             "see mt5-gate --help")
        if command and args.command != "wait":
            raise UsageError(f"mt5-gate {args.command}: unexpected arguments after --")
        module = _command(args.command)
        # Until the command configures its own, errors are logged as its flags ask: an
        # internal error before that must still be one JSON line, not console output.
        _configure_fallback_logging(options, env)
        return _guarded(lambda: _start(module, args, command, env))
    except UsageError as exc:
        named = options[0] if options[:1] and options[0] in COMMANDS else None
        report: Callable[[UsageError], int] | None = getattr(
            _command(named), "report_usage_error", None) if named else None
        if report is not None:  # a command with its own contract for usage errors
            return report(exc)
        _configure_fallback_logging(options, env)
        _log_error(exc)
        return exc.exit_code
    except GateSignal as sig:  # during start-up, before a command was running
        _configure_fallback_logging(options, env)
        get_logger().warning("gate.signal", signal=sig.name, exit_code=sig.exit_code)
        return sig.exit_code


def _command(name: str) -> ModuleType:
    """The command's module, imported only when it runs: each loads only what it uses."""
    return importlib.import_module(f"entrypoint.commands.{name}")


def _start(module: ModuleType, args: argparse.Namespace, command: list[str],
           env: Mapping[str, str]) -> int:
    if args.command != "explain":  # every other command opens sockets (ZeroMQ's among them)
        # Before the first socket: too few file descriptors make libzmq abort (exit 134)
        # or a socket fail mid-wait (see fdlimit; `wait` refuses plainly when too low).
        fdlimit.raise_soft_limit()
    return int(module.run(args, command, env))


def _guarded(run: Callable[[], int]) -> int:
    """Run a command; turn the gate's exceptions into their log event and exit code."""
    log = get_logger()
    try:
        return int(run())
    except UsageError:
        raise  # reported by main, with the logging its flags ask for
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
    fmt_option = declared("log_format")
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
