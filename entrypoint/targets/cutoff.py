"""A hard end for a client library's exchange: at the deadline its connection is shut down.

The client libraries bound each read, not the whole exchange: http.client and redis-py give
every ``recv`` the full socket timeout (a peer that sends one byte every 0.5 s is never
late), a TLS handshake is as many reads as the peer likes, and libpq waits for a query's
answer for ever (pgbouncer with an exhausted pool queues it for 120 s). A ``CutOff`` makes
the deadline bind the whole exchange whatever the library does in between: a timer shuts
the watched connections down (``SHUT_RDWR``) when the deadline passes, which wakes a
blocked read at once with end-of-file, and the check reports ``no_reply`` instead of the
library's "connection closed".

A connection is watched through a duplicate of its descriptor, taken when it is watched and
closed on exit: the timer never shuts down an unrelated socket that reused the number of a
descriptor the library has closed meanwhile.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
from types import TracebackType

from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed
from entrypoint.reasons import Reason


class CutOff:
    """``with CutOff(deadline) as cut: ...; cut.watch(fd)``; then ``cut.raise_if_fired``."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self._lock = threading.Lock()  # the timer against watch() and exit
        self._watched: list[socket.socket] = []
        self._fired = False
        self._closed = False
        # A deadline of "never" (--timeout 0 and no attempt limit) has no timer.
        left = deadline.wait_s()
        self._timer = threading.Timer(left, self._fire) if math.isfinite(left) else None

    def __enter__(self) -> CutOff:
        if self._timer is not None:
            self._timer.daemon = True  # never holds the gate's exit
            self._timer.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._closed = True
            for duplicate in self._watched:
                duplicate.close()
            self._watched.clear()

    @property
    def fired(self) -> bool:
        return self._fired

    def watch(self, fileno: int) -> None:
        """Shut the connection on ``fileno`` down at the deadline (at once if it passed)."""
        with self._lock:
            if self._closed:
                return
            inode = os.fstat(fileno).st_ino  # a TLS socket wraps a watched one: one is enough
            if any(os.fstat(watched.fileno()).st_ino == inode for watched in self._watched):
                return
            duplicate = socket.socket(fileno=os.dup(fileno))
            self._watched.append(duplicate)
            if self._fired:
                _shut(duplicate)

    def _fire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._fired = True
            for duplicate in self._watched:
                _shut(duplicate)

    def raise_if_fired(self, stage: str, what: str) -> None:
        """The failure to report when the deadline ended the exchange, whatever the library
        made of the closed connection."""
        if self._fired:
            raise AttemptFailed(
                stage, Reason.NO_REPLY, f"no {what} within {self.deadline.limit_s:g} s"
            )


def _shut(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer or the library
        connection.shutdown(socket.SHUT_RDWR)
