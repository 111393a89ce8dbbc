"""``python -m entrypoint`` and the ``mt5-gate`` console script.

A stop is caught from this module's first statements on. Until the gate's own handlers
(process/signals.py) are in, a SIGTERM or Ctrl-C is said in one ``gate.signal`` line and
ends the process at once with 128+N: nothing is open yet, so there is nothing to unwind.
Without it, a SIGINT while the first modules load was Python's raw KeyboardInterrupt
traceback, and a SIGTERM killed the process without a line (or, as PID 1, was ignored,
and Docker waited out its whole grace period). What comes before this module (the
interpreter's start-up, site and the .pth files, ``-m``'s import of the package) cannot
be covered from here: the README's "Stop signals, from the first line" says how long
that is and what Python does with a signal then.

The rest of the stop handling goes in before anything heavy is imported (structlog and
pyzmq take ~80 ms).
"""

from __future__ import annotations

# The C half of `signal`, loaded with the interpreter: `import signal` itself builds its
# enums for ~0.7 ms, and a Ctrl-C in them was a raw traceback through this module.
import _signal  # type: ignore[import-not-found]  # no stub; the same functions as `signal`
import os
import sys

# SIGTERM last: once /proc shows SIGTERM caught, both are ours (SIGINT is caught by Python's
# own handler from the interpreter's start, so its bit says nothing).
_STOPS = (_signal.SIGINT, _signal.SIGTERM)
_NAMES = {_signal.SIGINT: "SIGINT", _signal.SIGTERM: "SIGTERM"}
_STOPPING: list[int] = []  # the stop being reported, while its line is written


def _stop_while_loading(signum: int, _frame: object) -> None:
    """SIGTERM/SIGINT before the gate's own handlers: one line, exit 128+N, at once.

    Built from names and numbers (no json, no logger: neither is loaded yet) and written
    with one os.write. A second stop while that write blocks (stderr a full pipe) exits
    without a second line."""
    if _STOPPING:
        os._exit(128 + _STOPPING[0])
    _STOPPING.append(signum)
    import contextlib  # noqa: PLC0415 - both loaded by site already: lookups, not imports
    import time  # noqa: PLC0415

    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    line = (
        f'{{"timestamp": "{stamp}", "level": "warning", "event": "gate.signal", '
        f'"signal": "{_NAMES[signum]}", "exit_code": {128 + signum}}}\n'
    )
    with contextlib.suppress(OSError):  # stderr closed: the exit code still says it
        os.write(2, line.encode())
    os._exit(128 + signum)


def _catch_stops_while_loading() -> None:
    for sig in _STOPS:
        _signal.signal(sig, _stop_while_loading)


if __name__ == "__main__":  # `python -m entrypoint`: before the rest of this module runs
    _catch_stops_while_loading()


def run() -> int:
    _catch_stops_while_loading()  # again for the console script, which imports this module
    from entrypoint.errors import GateSignal  # noqa: PLC0415 - light: before the heavy ones

    try:  # from here on a SIGTERM is a GateSignal: everything below is inside the try
        fail_closed_then_catch_stops()
        return _start_with_gc_off()
    except (GateSignal, KeyboardInterrupt) as stop:  # stopped while starting: no logging yet
        from entrypoint.log import events  # noqa: PLC0415 - a declaration table, no logging

        # A KeyboardInterrupt can only come from a caller that put Python's own SIGINT
        # handler back (run() called in-process after its own Ctrl-C handling): the same
        # stop, said the same way.
        sig = stop if isinstance(stop, GateSignal) else GateSignal(_signal.SIGINT)

        _write_plain(
            {
                "level": "warning",
                "event": events.SIGNAL.name,
                "signal": sig.name,
                "exit_code": sig.exit_code,
            }
        )
        return sig.exit_code
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the last line of defence
        # Only reached when the error boundary in cli.main failed itself (logging broke,
        # say): still one JSON line and exit 70, never a raw traceback or another code.
        from entrypoint.log import events  # noqa: PLC0415

        _write_plain(
            {
                "level": "error",
                "event": events.ERROR.name,
                "error": "internal error (please report this as a bug)",
                "exception": f"{type(exc).__name__}: {exc}"[:500],
                "exit_code": 70,
            }
        )
        return 70


def fail_closed_then_catch_stops() -> None:
    """process/failclosed's hooks, then the gate's stop handlers, in that order.

    Once the handlers are in, a stop can land in a finalizer (the import system's weakref
    callbacks run while the next modules load); Python swallows the GateSignal there and
    hands it to ``sys.unraisablehook``. failclosed's hook says nothing of it
    (signals.raise_if_pending raises it again); Python's default printed a raw
    traceback before the gate's one gate.signal line (seen in CI: 1 start in 200)."""
    from entrypoint.process import failclosed  # noqa: PLC0415 - light: threading, sys
    from entrypoint.process.signals import install_stop_handlers  # noqa: PLC0415

    failclosed.install()
    install_stop_handlers()


def _start_with_gc_off() -> int:
    # The cyclic garbage collector is off while the gate starts. Importing and building the
    # parser make some 20,000 objects that live as long as the process; the collections
    # they trigger cost a healthcheck ~2 ms, and the full collection Python runs at exit,
    # over all of them again, ~6 ms (of ~45). cli._start freezes them
    # (gc.freeze: never scanned again, not at exit either) and turns the collector back on
    # before the command does its work, so `wait`'s loop and `sim` run with it as usual,
    # and it only ever looks at what the command makes. A start that fails before that
    # (a usage error, --help) exits at once.
    import gc  # noqa: PLC0415 - only signal, os and sys before the stop handlers

    gc.disable()
    _open_missing_standard_streams()
    from entrypoint.cli import main  # noqa: PLC0415

    return main()


def _write_plain(event: dict[str, object]) -> None:
    """One JSON line without structlog (which may be what failed)."""
    import contextlib  # noqa: PLC0415
    import json  # noqa: PLC0415

    with contextlib.suppress(OSError, ValueError, AttributeError):  # stderr may be None
        sys.stderr.write(json.dumps(event) + "\n")
        sys.stderr.flush()


def _open_missing_standard_streams() -> None:
    """A supervisor may start us with fd 0, 1 or 2 closed. Python then has no sys.stderr to
    log to, and the first socket we open would take the free number and receive whatever
    is printed; the runner would inherit the same hole. Put /dev/null there instead."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            os.set_inheritable(fd, True)  # os.open's fds close on exec; the runner needs it
    for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
        if getattr(sys, name) is None:
            setattr(
                sys,
                name,
                open(  # noqa: SIM115 - a standard stream, open for the process's life
                    fd,
                    mode,
                    encoding="utf-8",
                    errors="backslashreplace",
                    closefd=False,
                ),
            )


if __name__ == "__main__":
    sys.exit(run())
