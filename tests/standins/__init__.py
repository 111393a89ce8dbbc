"""Stand-ins for public MetaTrader ZeroMQ bridges, and the runtime they share.

Each module here is a standalone program (``python -m tests.standins.<module>``) that speaks
one bridge's wire protocol from the outside: the same socket types, the same read rate
(one non-blocking receive per timer event), the same reply bytes and the same failure words,
as recorded from each bridge's source. They hold no broker, no orders and no history.

Every stand-in writes JSON lines to stdout, flushed one by one:
``starting``, then exactly one ``listening`` (with the bound ports), then ``request`` per
received message, ``sent`` / ``dropped`` per outgoing message, ``order_attempt`` when the
bridge would place, modify or close an order, and module-specific ones (``wedged``,
``bad_state``, ``bind_failed``, ``not_reproduced``). :mod:`tests.standins.client` starts
them as subprocesses and reads these lines.

This file holds the shared runtime only (event lines, signals, the MetaTrader-style timer,
binding, non-blocking sends, a watched control file); no bridge behaviour lives here.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

import zmq

Socket = zmq.Socket[bytes]


def shown(data: bytes) -> str:
    """Bytes as they appear in event lines: UTF-8, undecodable bytes as backslash escapes."""
    return data.decode("utf-8", errors="backslashreplace")


class Events:
    """One JSON object a line on stdout, flushed at once; safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received = 0

    def emit(self, event: str, **fields: object) -> None:
        line = json.dumps({"event": event, **fields})
        with self._lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def received(self, data: bytes) -> int:
        with self._lock:
            self._received += 1
            n = self._received
        self.emit("request", n=n, bytes=shown(data))
        return n

    def order_attempt(self, request: bytes) -> None:
        self.emit("order_attempt", request=shown(request))


class Stopper:
    """SIGTERM/SIGINT and ``--exit-after`` (counted from process start) as one flag.

    The signal handler only sets a bool: setting a threading.Event from a handler can
    deadlock on the Event's own lock, so waits poll the flag in short slices instead.
    """

    def __init__(self, exit_after: float | None) -> None:
        self.requested = False
        self._deadline = None if exit_after is None else time.monotonic() + exit_after
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    @property
    def stopped(self) -> bool:
        return self.requested or (self._deadline is not None and time.monotonic() >= self._deadline)

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False as soon as a stop is due (True when time ran out)."""
        end = time.monotonic() + seconds
        while not self.stopped:
            left = end - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.05))
        return False


def run_timer(stopper: Stopper, period_s: float, on_timer: Callable[[], None]) -> None:
    """Call ``on_timer`` every ``period_s`` until stopped, as a MetaTrader timer fires.

    The terminal never queues a second timer event behind a pending one: a handler that
    overruns gets one event straight away, then the period resumes from there.
    """
    due = time.monotonic() + period_s
    while stopper.sleep(max(0.0, due - time.monotonic())):
        on_timer()
        now = time.monotonic()
        due = max(due + period_s, now)


def common_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--bind", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--start-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="sleep this long before binding (a bridge that comes up late)",
    )
    parser.add_argument(
        "--exit-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit 0 this long after start (default: run until SIGTERM/SIGINT)",
    )
    return parser


def begin(events: Events, stopper: Stopper, start_delay: float) -> bool:
    """Print ``starting`` and wait out ``--start-delay``; False when stopped meanwhile."""
    events.emit("starting")
    return stopper.sleep(start_delay) if start_delay > 0 else not stopper.stopped


def bind_all(
    events: Events,
    host: str,
    sockets: Sequence[tuple[str, Socket, int]],
    after_bind: Callable[[str, Socket], None] | None = None,
) -> dict[str, int] | None:
    """Bind each (name, socket, port) in order (port 0: any free port); the bound ports.

    ``after_bind`` runs right after each socket's bind, for bridges that set options then.
    On a failed bind, print ``bind_failed`` and return None.
    """
    address = f"[{host}]" if ":" in host and not host.startswith("[") else host
    ports: dict[str, int] = {}
    for name, sock, port in sockets:
        if address.startswith("["):
            sock.setsockopt(zmq.IPV6, 1)
        try:
            sock.bind(f"tcp://{address}:{port if port else '*'}")
        except zmq.ZMQError as exc:
            events.emit("bind_failed", socket=name, port=port, error=str(exc))
            return None
        endpoint = sock.getsockopt(zmq.LAST_ENDPOINT)
        assert isinstance(endpoint, bytes)
        ports[name] = int(endpoint.decode().rstrip("\0").rsplit(":", 1)[1])
        if after_bind is not None:
            after_bind(name, sock)
    return ports


def recv_nowait(sock: Socket) -> bytes | None:
    """One frame without waiting; None when nothing is queued (other errors propagate)."""
    try:
        return sock.recv(zmq.DONTWAIT)
    except zmq.Again:
        return None


def send_nowait(events: Events, sock: Socket, name: str, data: bytes) -> bool:
    """Send one frame with ZMQ_DONTWAIT, as the bridges do; a refused send is dropped."""
    try:
        sock.send(data, zmq.DONTWAIT)
    except zmq.ZMQError as exc:
        reason = "EAGAIN" if isinstance(exc, zmq.Again) else zmq.strerror(exc.errno or 0)
        events.emit("dropped", socket=name, bytes=shown(data), reason=reason)
        return False
    events.emit("sent", socket=name, bytes=shown(data))
    return True


class WatchedFile:
    """A control file re-read only when its mtime, size or inode changes."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.text: str | None = None
        self._key: tuple[int, int, int] | None = None

    def changed(self) -> bool:
        """True when the file changed since the last call; ``text`` is None when missing."""
        if self.path is None:
            return False
        try:
            st = os.stat(self.path)
        except OSError:
            if self._key is None and self.text is None:
                return False
            self._key, self.text = None, None
            return True
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key == self._key:
            return False
        self._key = key
        try:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                self.text = handle.read()
        except OSError:
            self.text = None
        return True


def parse_ms(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("the timer period must be positive")
    return value


def read_switches(
    control: WatchedFile, defaults: dict[str, int], keys: tuple[str, ...], events: Events
) -> dict[str, int] | None:
    """A stand-in's 0/1 switches (``key=0`` / ``key=1`` lines of its control file) over
    their defaults, or None when the file did not change since the last call. A line that
    is not a known key with 0 or 1 is reported as a ``bad_state`` event and ignored."""
    if not control.changed():
        return None
    switches = dict(defaults)
    for line in (control.text or "").splitlines():
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if key in keys and value in ("0", "1"):
            switches[key] = int(value)
        elif key:
            events.emit("bad_state", content=line)
    return switches
