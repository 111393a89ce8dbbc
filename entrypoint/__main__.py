"""``python -m entrypoint`` and the ``mt5-gate`` console script.

The stop handlers go in before anything heavy is imported (structlog and pyzmq take ~80 ms):
as PID 1, a SIGTERM that arrives before a handler exists is ignored, and Docker then waits
out its whole grace period before it kills the container.
"""

from __future__ import annotations

import gc
import signal
import sys


def run() -> int:
    from entrypoint.errors import GateSignal  # noqa: PLC0415 - light: before the heavy ones
    from entrypoint.process.signals import install_stop_handlers  # noqa: PLC0415

    try:  # from here on a SIGTERM is a GateSignal: everything below is inside the try
        install_stop_handlers()
        return _start_with_gc_off()
    except (GateSignal, KeyboardInterrupt) as stop:  # stopped while starting: no logging yet
        from entrypoint.log import events  # noqa: PLC0415 - a declaration table, no logging

        # A Ctrl-C before its handler was in place is Python's KeyboardInterrupt: the same
        # stop, said the same way.
        sig = stop if isinstance(stop, GateSignal) else GateSignal(signal.SIGINT)

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


def _start_with_gc_off() -> int:
    # The cyclic garbage collector is off while the gate starts. Importing and building the
    # parser make some 20,000 objects that live as long as the process; the collections
    # they trigger cost a healthcheck ~2 ms, and the full collection Python runs at exit,
    # over all of them again, ~6 ms (of ~45). cli._start freezes them
    # (gc.freeze: never scanned again, not at exit either) and turns the collector back on
    # before the command does its work, so `wait`'s loop and `sim` run with it as usual,
    # and it only ever looks at what the command makes. A start that fails before that
    # (a usage error, --help) exits at once.
    gc.disable()
    _open_missing_standard_streams()
    from entrypoint.process import failclosed  # noqa: PLC0415

    failclosed.install()
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
    import os  # noqa: PLC0415

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
