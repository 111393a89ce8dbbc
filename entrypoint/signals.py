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


def _raise_gate_signal(signum: int, _frame: FrameType | None) -> None:
    # The first signal unwinds through the finally blocks; a second one must not raise
    # inside them (skipping the rest of the cleanup), but must still stop the gate at once
    # if that cleanup ever stalls: it exits on the spot.
    for sig in HANDLED:
        signal.signal(sig, _exit_now)
    raise GateSignal(signum)


def _exit_now(signum: int, _frame: FrameType | None) -> None:
    os._exit(128 + signum)


def install_stop_handlers() -> None:
    for sig in HANDLED:
        signal.signal(sig, _raise_gate_signal)
