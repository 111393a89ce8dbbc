"""SIGTERM and SIGINT while waiting: unwind at once, wherever the gate is blocked.

The handler raises ``GateSignal`` rather than setting a flag: a raised exception breaks
out of a ZeroMQ poll, a socket connect or a sleep immediately, while a flag would only be
seen when the call returns (up to a second later for pyzmq). Python as PID 1 ignores
SIGTERM unless a handler is installed, which this also fixes.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

from entrypoint.errors import GateSignal

HANDLED = (signal.SIGTERM, signal.SIGINT)


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
    os._exit(128 + signum)


def install_stop_handlers() -> None:
    _PENDING.clear()
    for sig in HANDLED:
        signal.signal(sig, _raise_gate_signal)
