"""ZeroMQ client sockets of one test, every one closed at its end (not left to the GC).

The `zmq_sockets` fixture (tests/conftest.py) is one of these, closed after the test:
``zmq_sockets(zmq.REQ)`` is a new socket with LINGER 0, and with ``curve=(server public,
client public, client secret)`` a CURVE client; ``zmq_sockets.request(port, payload)`` one
request and its answer.
"""

from __future__ import annotations

from typing import Any

import zmq

from tests.support.bounds import EVENT_S

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
