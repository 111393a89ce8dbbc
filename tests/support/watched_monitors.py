"""A ZeroMQ socket's monitor shared between the gate and a fault injection (in the gate's
own process, tests/support/fault_injection.py).

libzmq gives a socket one monitor, and the gate's is its own: its events decide an
attempt's verdict. An injection that must wait for the peer's refusal of a connection
(its DISCONNECTED, CLOSED or HANDSHAKE_FAILED_* event) installs ``watch_every_monitor()``:
from then on ``get_monitor_socket(events)`` hands libzmq's monitor to a forwarding thread,
which counts the refusals and passes exactly the events the gate asked for, in order, to the
socket it returns to the gate. ``refused(sock)`` waits for the next refusal on ``sock``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import threading
from typing import Any

import zmq

REFUSALS = (
    zmq.EVENT_DISCONNECTED
    | zmq.EVENT_CLOSED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
_NUMBERS = itertools.count()
_LIVE: dict[int, _Watched] = {}  # id(socket) -> its watch, while it forwards


class _Watched:
    def __init__(self, sock: zmq.Socket[Any], wanted: int) -> None:
        n = next(_NUMBERS)
        inner = f"inproc://watched-monitor-{os.getpid()}-{n}"
        outer = f"inproc://watched-monitor-{os.getpid()}-{n}-gate"
        sock.monitor(inner, wanted | REFUSALS | zmq.EVENT_MONITOR_STOPPED)
        self._wanted = wanted
        self.context = sock.context
        self._source: zmq.Socket[Any] = sock.context.socket(zmq.PAIR)
        self._source.connect(inner)
        self._sink: zmq.Socket[Any] = sock.context.socket(zmq.PAIR)
        self._sink.bind(outer)
        self.gate_side: zmq.Socket[Any] = sock.context.socket(zmq.PAIR)
        self.gate_side.connect(outer)
        self.refusals = 0
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._forward, name="watched-monitor", daemon=True)
        self._thread.start()

    def _forward(self) -> None:
        # Never raises (the gate's fail-closed hook would take it for a library's crash);
        # sends without blocking: once the gate closed its side, there is nobody to tell.
        try:
            while not self._stop.is_set():
                if not self._source.poll(20):
                    continue
                frames = self._source.recv_multipart()
                (event,) = struct.unpack("=H", frames[0][:2])
                if event & self._wanted:
                    with contextlib.suppress(zmq.ZMQError):
                        self._sink.send_multipart(frames, zmq.DONTWAIT)
                if event & REFUSALS:
                    with self._changed:
                        self.refusals += 1
                        self._changed.notify_all()
                if event == zmq.EVENT_MONITOR_STOPPED:
                    break
        except zmq.ZMQError:
            pass
        finally:
            self._source.close(linger=0)
            self._sink.close(linger=0)

    def wait_for_refusal(self, already: int) -> None:
        """Until more than ``already`` refusals were seen: as long as it takes (the test's
        bound on the whole run is the backstop; a fixed give-up here was the flake)."""
        with self._changed:
            self._changed.wait_for(lambda: self.refusals > already or self._stop.is_set())

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join()


def watch_every_monitor() -> None:
    """From now on, every socket's monitor in this process goes through a ``_Watched``."""

    def get_monitor_socket(
        self: zmq.Socket[Any], events: int | None = None, addr: str | None = None
    ) -> zmq.Socket[Any]:
        del addr  # ours is used; the gate never names one
        watched = _Watched(self, zmq.EVENT_ALL if events is None else events)
        _LIVE[id(self)] = watched
        return watched.gate_side

    zmq.Socket.get_monitor_socket = get_monitor_socket  # type: ignore[assignment,method-assign]


def refusals(sock: zmq.Socket[Any]) -> int:
    """How many refusals ``sock``'s monitor has seen so far."""
    return _LIVE[id(sock)].refusals


def wait_for_refusal(sock: zmq.Socket[Any], already: int = 0) -> None:
    """Wait until ``sock``'s connection was refused more than ``already`` times."""
    _LIVE[id(sock)].wait_for_refusal(already)


def stop_all(context: zmq.Context[Any]) -> None:
    """End the forwarding threads of ``context``'s sockets, before the gate destroys it
    (a socket must be closed by the thread that uses it, not by the context's destroy)."""
    for key, watched in list(_LIVE.items()):
        if watched.context is context:
            watched.stop()
            del _LIVE[key]
