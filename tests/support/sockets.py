"""Sockets of one test: ZeroMQ clients, every one closed at its end (not left to the GC),
and closed ports (``closed_port``, ``held_closed_port``).

``closed_port()`` is a loopback port that refuses connections for as long as the test
holds it: bound, not listening. A port found free and released at once is not closed for
long: the next bind to port 0 anywhere on the machine (a simulator, another test) may be
handed the same number, seconds before the test connects to it expecting a refusal.

The `zmq_sockets` fixture (tests/conftest.py) is one of these, closed after the test:
``zmq_sockets(zmq.REQ)`` is a new socket with LINGER 0, and with ``curve=(server public,
client public, client secret)`` a CURVE client; ``zmq_sockets.request(port, payload)`` one
request and its answer.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import zmq

from tests.support.bounds import EVENT_S


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A 127.0.0.1 TCP port on which a connection is refused until the block ends.

    Bound without SO_REUSEADDR and never listening: no other socket can bind it (nor is it
    picked as a connection's source port) while it is held, and a SYN to it gets a reset."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# The closed ports held for the running test (held_closed_port), released after it by the
# autouse fixture in tests/conftest.py.
_HELD_FOR_THE_TEST = contextlib.ExitStack()


def held_closed_port() -> int:
    """A ``closed_port()`` held until the running test ends: for a test, or a helper it
    calls, that needs a port where nothing listens, without a ``with`` around its body."""
    return _HELD_FOR_THE_TEST.enter_context(closed_port())


def release_closed_ports() -> None:
    """Release every port ``held_closed_port`` handed out (after each test)."""
    _HELD_FOR_THE_TEST.close()


Curve = tuple[bytes, bytes, bytes]  # (server public, client public, client secret)


class ZmqSockets:
    """Client sockets on one context; ``close`` closes every one, then the context."""

    def __init__(self) -> None:
        self.context: zmq.Context[Any] = zmq.Context()
        self.opened: list[zmq.Socket[Any]] = []

    def __call__(self, kind: int, curve: Curve | None = None) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = self.context.socket(kind)
        self.opened.append(sock)
        sock.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = curve
        return sock

    def request(self, port: int, payload: bytes) -> bytes:
        """One request on a new REQ socket to 127.0.0.1:``port``: its answer, which must
        come within EVENT_S."""
        sock = self(zmq.REQ)
        sock.connect(f"tcp://127.0.0.1:{port}")
        sock.send(payload)
        assert sock.poll(int(EVENT_S * 1000)), f"no reply on port {port}"
        return bytes(sock.recv())

    def close(self) -> None:
        """Each socket, then the context with any socket made from one (a monitor)."""
        for sock in self.opened:
            sock.close(linger=0)
        self.context.destroy(linger=0)
