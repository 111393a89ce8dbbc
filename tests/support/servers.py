"""Misbehaving peers on loopback, each a real listening socket on an OS-chosen port."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import zmq

from tests.support.bounds import AFTER_SIGNAL_S


@contextmanager
def tcp_server(on_connect: Callable[[socket.socket], None]) -> Iterator[int]:
    """A plain TCP listener calling ``on_connect`` for each connection; yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            held.append(conn)
            with contextlib.suppress(OSError):  # a client that left early is fine
                on_connect(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(AFTER_SIGNAL_S)  # it sees `stop` within one 50 ms accept timeout
        listener.close()
        for conn in held:
            conn.close()


def silent(_conn: socket.socket) -> None:
    """Accept and never speak (a frozen gateway's kernel does exactly this)."""


def banner(conn: socket.socket) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")


def reset_at_once(conn: socket.socket) -> None:
    """Accept, then close with RST (SO_LINGER 0), like a port proxy without a backend."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def http_like(conn: socket.socket) -> None:
    """Silent until spoken to, then a 400 and close: what an HTTP server does to ZMTP."""
    conn.settimeout(5)  # the peer's own patience, as an HTTP server's; the gate speaks at once
    try:
        conn.recv(64)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    finally:
        conn.close()


@contextmanager
def zmq_server(kind: int, reply: Callable[[list[bytes]], list[bytes] | None] | None = None
               ) -> Iterator[int]:
    """A ZeroMQ socket of ``kind`` on loopback; for ROUTER, ``reply`` builds each answer
    from the request frames (without the envelope), or returns None to stay silent."""
    ctx = zmq.Context()
    sock: Any = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if not sock.poll(50):
                continue
            frames = sock.recv_multipart()
            if reply is None:
                continue
            answer = reply(frames[2:])
            if answer is not None:
                sock.send_multipart([*frames[:2], *answer])

    thread = threading.Thread(target=serve, daemon=True) if kind == zmq.ROUTER else None
    if thread:
        thread.start()
    try:
        yield port
    finally:
        stop.set()
        if thread:
            # It sees `stop` within one 50 ms poll, or after the reply being built (the
            # slowest here sleeps 2 s: test_hostile's late reply).
            thread.join(AFTER_SIGNAL_S)
        sock.close(linger=0)
        ctx.term()


class Recorder:
    """Every byte a listener received, over all its connections (the token must never be
    among them). ``speak`` is what the service does: it sends its own first words (SSH,
    SMTP), answers once spoken to (HTTP), or never says a thing (silent)."""

    GREETINGS: ClassVar[dict[str, bytes]] = {
        "ssh": b"SSH-2.0-OpenSSH_9.2p1\r\n", "smtp": b"220 mail.example.test ESMTP Postfix\r\n"}

    def __init__(self, speak: str) -> None:
        self.speak = speak
        self.received = bytearray()
        self.connections = 0
        self._lock = threading.Lock()

    def __call__(self, conn: socket.socket) -> None:
        """Serve one connection on its own thread, so that the next one is accepted."""
        threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self.connections += 1
        conn.settimeout(0.2)
        with contextlib.suppress(OSError):
            if self.speak in self.GREETINGS:
                conn.sendall(self.GREETINGS[self.speak])
            answered = False
            for _ in range(50):  # up to ~10 s of listening: longer than any gate's attempt
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                with self._lock:
                    self.received += chunk
                if self.speak == "http" and not answered:
                    answered = True
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    def bytes(self) -> bytes:
        with self._lock:
            return bytes(self.received)
