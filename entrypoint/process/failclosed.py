"""Fail closed: an exception nobody expected, anywhere, keeps the runner from starting.

The main flow handles its own exceptions (``cli._guarded``: exit 70, one ``gate.error``).
What runs elsewhere cannot raise into it: a thread (an ``--also`` check, a name lookup),
a ``__del__`` or a garbage-collector callback. ``install`` routes those to ``record``
instead of Python's default (a raw traceback on stderr, and the process carries on), and
``handoff.exec_runner`` calls ``raise_if_any`` as the last step before ``exec``: so the
exec happens only if nothing anywhere failed unexpectedly. A thread of ours that expects
to fail (an ``--also`` check) still reports its outcome to the main flow itself.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from entrypoint.errors import GateSignal

_FAILURES: list[BaseException] = []
_LOCK = threading.Lock()


def install() -> None:
    threading.excepthook = _thread_failed
    sys.unraisablehook = _unraisable


def record(exc: BaseException, where: str) -> None:
    exc.add_note(where)
    with _LOCK:
        _FAILURES.append(exc)


def raise_if_any() -> None:
    """Raise the first unexpected failure seen outside the main flow, if any."""
    with _LOCK:
        first = _FAILURES[0] if _FAILURES else None
    if first is not None:
        raise first


def _thread_failed(args: Any) -> None:
    if args.exc_value is None or isinstance(args.exc_value, SystemExit):
        return
    name = args.thread.name if args.thread is not None else "?"
    record(args.exc_value, f"in thread {name}")


def _unraisable(unraisable: Any) -> None:
    if isinstance(unraisable.exc_value, GateSignal):
        return  # a stop signal landing in a finalizer: signals.raise_if_pending re-raises it
    if unraisable.exc_value is not None:
        record(
            unraisable.exc_value,
            f"in {unraisable.err_msg or 'a callback'}: {unraisable.object!r:.100}",
        )
