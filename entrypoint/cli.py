"""The command line: parse, dispatch to the command registry, map errors to exit codes.

``_guarded`` is the error boundary: it turns the gate's exceptions into their log event
and exit code (see ``errors.py`` for the table). A command with its own contract for its
output (``health``: one line, exit 0 or 1) keeps it by catching what it must itself; each
command owns its rules in ``commands/<name>.py``, registered in ``commands/__init__.py``.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from entrypoint import __version__, commands
from entrypoint.commands import Entry
from entrypoint.errors import (
    EXIT_SOFTWARE,
    GateError,
    GateSignal,
    GatewayMisconfigured,
    GatewayTimeout,
    UsageError,
)
from entrypoint.log import events
from entrypoint.log.events import emit
from entrypoint.log.logs import configure_logging, get_logger
from entrypoint.process import fdlimit
from entrypoint.process.signals import install_stop_handlers
from entrypoint.settings.options import ALL_OPTIONS, LOG_FORMATS, declared, resolve_option

if TYPE_CHECKING:
    import argparse

    from entrypoint.commands.arguments import OptionParser
    from entrypoint.commands.contract import Command, TakesGroups


def build_parser(only: str | None = None) -> OptionParser:
    """The parser; with ``only``, that command's options alone are built (importing only
    its module): ``mt5-gate --help`` lists every command from the registry's summaries."""
    # Here, not at the top: a bare `mt5-gate health` imports no argparse (see _bare_call).
    from entrypoint.commands.arguments import (  # noqa: PLC0415
        HelpFormatter,
        MeasuredWidthFormatter,
        OptionParser,
    )

    parser = OptionParser(
        prog="mt5-gate",
        description="Hold a container's strategy runner until the MT5 "
        "ZeroMQ gateway answers, then exec it.",
        formatter_class=MeasuredWidthFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mt5-gate {__version__}")
    # prog given: argparse would format a usage line to compute it (the same "mt5-gate"),
    # and so measure the terminal (see MeasuredWidthFormatter).
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", prog=parser.prog, parser_class=OptionParser
    )
    for entry in commands.REGISTRY:
        sub = subparsers.add_parser(entry.name, help=entry.summary, formatter_class=HelpFormatter)
        if only is None or only == entry.name:
            entry.load().add_arguments(sub)
    return parser


def _split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Everything after the first ``--`` of ``wait`` is the runner, passed on untouched."""
    args = list(argv)
    if "--" in args:
        cut = args.index("--")
        return args[:cut], args[cut + 1 :]
    return args, []


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
    named = commands.find(options[0]) if options else None
    try:
        if named is not None and named.bare_call and options == [named.name]:
            args = _bare_call(named)
        else:
            try:
                args = _parse(named, options)
            except SystemExit as done:  # --help and --version print and "exit" 0
                return int(done.code or 0)
        assert named is not None  # _parse raised a UsageError without a command
        if command and not named.runner:
            raise UsageError(f"mt5-gate {named.name}: unexpected arguments after --")
        # Until the command configures its own, errors are logged as its flags ask: an
        # internal error before that must still be one JSON line, not console output.
        _configure_fallback_logging(options, env)
        return _guarded(lambda: _start(named, named.load(), args, command, env))
    except UsageError as exc:
        reporter = named.usage_error_reporter() if named else None
        if reporter is not None:  # a command with its own contract for usage errors
            return reporter.report_usage_error(exc)
        _configure_fallback_logging(options, env)
        _log_error(exc)
        return exc.exit_code
    except GateSignal as sig:  # during start-up, before a command was running
        _configure_fallback_logging(options, env)
        emit(get_logger(), events.SIGNAL, signal=sig.name, exit_code=sig.exit_code)
        return sig.exit_code


def _parse(named: Entry | None, options: list[str]) -> argparse.Namespace:
    """argparse's reading of the words before ``--``; a UsageError for anything it did
    not take, and when no command was named."""
    args, extra = build_parser(only=named.name if named else None).parse_known_args(options)
    if named is None and extra:
        raise UsageError(
            f"mt5-gate: unrecognized arguments: {' '.join(extra)}; "
            f"a command comes first ({', '.join(commands.names())})"
        )
    if named is None:
        raise UsageError(
            f"mt5-gate: a command is required ({', '.join(commands.names())}); see mt5-gate --help"
        )
    if extra:
        raise UsageError(_unrecognized(named.name, extra))
    return args


def _bare_call(entry: Entry) -> argparse.Namespace:
    """What argparse makes of a command's name alone, when its flags are exactly its
    option groups': every flag None (``add_groups`` gives each the default None).

    The image's HEALTHCHECK is `mt5-gate health`, every 10 s all day: importing argparse
    and building its parser were ~3 ms of a ~50 ms check (benchmarks/bench_health.py).
    tests/test_cli.py checks this equals argparse's namespace for every such command."""
    module = cast("TakesGroups", entry.load())
    flags = {opt.field: None for group in module.GROUPS for opt in group.options if opt.flag}
    # A plain namespace: the commands read attributes and vars() of it, as of argparse's.
    return cast("argparse.Namespace", SimpleNamespace(command=entry.name, **flags))


def _unrecognized(name: str, extra: list[str]) -> str:
    """Words the command does not take; a flag of another command is said to be one."""
    flag = extra[0].split("=", 1)[0]
    if flag in {opt.flag for opt in ALL_OPTIONS}:
        return (
            f"mt5-gate {name}: {flag} has no effect on {name}, so it is not accepted "
            f"(see mt5-gate {name} --help)"
        )
    return f"mt5-gate {name}: unrecognized arguments: {' '.join(extra)}"


def _start(
    entry: Entry,
    module: Command,
    args: argparse.Namespace,
    command: list[str],
    env: Mapping[str, str],
) -> int:
    _collect_garbage_from_here()
    if entry.sockets:
        # Before the first socket: too few file descriptors make libzmq abort (exit 134)
        # or a socket fail mid-wait (see fdlimit; `wait` refuses plainly when too low).
        fdlimit.raise_soft_limit()
    return int(module.run(args, command, env))


def _collect_garbage_from_here() -> None:
    """Turn the cyclic garbage collector back on, if ``__main__`` turned it off for the
    start-up (see there): start-up's objects are frozen first (never scanned again, not
    even by the collection at exit), so it only ever looks at what the command makes."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _guarded(run: Callable[[], int]) -> int:
    """Run a command; turn the gate's exceptions into their log event and exit code."""
    log = get_logger()
    try:
        return int(run())
    except UsageError:
        raise  # reported by main, with the logging its flags ask for
    except GateSignal as sig:
        emit(log, events.SIGNAL, signal=sig.name, exit_code=sig.exit_code)
        return sig.exit_code
    except GatewayTimeout as exc:
        target = {"target": exc.target} if exc.target else {}
        emit(  # an expected outcome: no traceback to show
            log,
            events.TIMEOUT,
            error=exc.message,
            elapsed_s=exc.elapsed_s,
            attempts=exc.attempts,
            last_reason=exc.last_reason,
            hint=exc.hint,
            exit_code=exc.exit_code,
            **target,
        )
        return exc.exit_code
    except GateError as exc:
        _log_error(exc)
        return exc.exit_code
    except Exception:  # noqa: BLE001 - a bug: one JSON event with the traceback (no locals)
        emit(
            log,
            events.ERROR,
            error="internal error (please report this as a bug)",
            exit_code=EXIT_SOFTWARE,
            exc_info=True,
        )
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
    emit(get_logger(), events.ERROR, **fields)


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
        log_format = resolve_option(fmt_option, {"log_format": flag}, env)
    except UsageError:
        log_format = "auto"
    configure_logging(log_format if log_format in LOG_FORMATS else "auto", "info")
