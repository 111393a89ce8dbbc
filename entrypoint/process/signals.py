"""SIGTERM and SIGINT while waiting: unwind at once, wherever the gate is blocked.

The handler raises ``GateSignal`` rather than setting a flag: a raised exception breaks
out of a ZeroMQ poll, a socket connect or a sleep immediately, while a flag would only be
seen when the call returns (up to a second later for pyzmq). Python as PID 1 ignores
SIGTERM unless a handler is installed, which this also fixes.
"""

from __future__ import annotations

# The C module that signal.py wraps: the same functions, without the ~0.7 ms signal.py
# spends building its enums on every start (each healthcheck's included).
import _signal as signal  # type: ignore[import-not-found]  # no stub, as in __main__
import contextlib
import os
import time
from types import FrameType

from entrypoint.errors import GateSignal

HANDLED = (signal.SIGTERM, signal.SIGINT)
_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}


_PENDING: list[int] = []  # signals received; see raise_if_pending


def _raise_gate_signal(signum: int, _frame: FrameType | None) -> None:
    # The first signal unwinds through the finally blocks; a second one must not raise
    # inside them (skipping the rest of the cleanup), but must still stop the gate at once
    # if that cleanup ever stalls: it exits on the spot.
    _PENDING.append(signum)
    for sig in HANDLED:
        signal.signal(sig, _exit_now)
    raise GateSignal(signum)


def raise_if_pending() -> None:
    """Raise the GateSignal again if one was received and swallowed.

    Python runs a handler between any two bytecodes of the main thread, including those of
    a ``__del__`` or a garbage-collector callback (pyzmq closes sockets there); an
    exception raised there is reported as "ignored" and execution carries on, so the
    signal would be lost and the gate would keep waiting (seen: 1 run in a few hundred of
    tests/test_wait.py's random-moment test). The waiting loops call this at every
    step, so a swallowed signal still ends the wait within one step.
    """
    if _PENDING:
        raise GateSignal(_PENDING[0])


def _exit_now(signum: int, _frame: FrameType | None) -> None:
    """A second signal during the shutdown: exit at once, with the first signal's code and
    one log line saying so. The first one's gate.signal line may not be written yet (a
    `docker stop` right after a Ctrl-C, a supervisor that escalates at once), and the log
    must still say why the gate stopped."""
    first = _PENDING[0] if _PENDING else signum
    _write_line(first, signum)
    os._exit(128 + first)


def _write_line(first: int, second: int) -> None:
    # Inside a signal handler: no logger (it may hold its lock mid-line) and no import;
    # one os.write of a line built from names and numbers, which need no escaping. The
    # event is events.SIGNAL, spelled out: this module loads before anything else does.
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    line = (
        f'{{"timestamp": "{stamp}", "level": "warning", "event": "gate.signal", '
        f'"signal": "{_NAMES[first]}", "exit_code": {128 + first}, '
        f'"hurried_by": "{_NAMES[second]}"}}\n'
    )
    with contextlib.suppress(OSError):  # stderr closed, or a pipe nobody reads
        os.write(2, line.encode())


def install_stop_handlers() -> None:
    """Make SIGTERM and SIGINT raise ``GateSignal``. Call it inside the ``try`` that turns
    a GateSignal into its exit code: the handler can run before this returns (a SIGTERM
    the moment the first handler is in place, while the second is set; seen as a raw
    traceback and exit 1, 5 runs in 300, with the signal sent as soon as /proc showed the
    handler). Installing again (``cli.main`` after ``__main__``) keeps what was received:
    a signal swallowed by a finalizer in between still stops the gate."""
    raise_if_pending()
    for sig in HANDLED:
        signal.signal(sig, _raise_gate_signal)
