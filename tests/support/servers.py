"""Peers on loopback, each a real listening socket on an OS-chosen port: misbehaving ones,
and a healthy gateway whose own monitors count what it sees."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections import Counter
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
def zmq_server(
    kind: int, reply: Callable[[list[bytes]], list[bytes] | None] | None = None
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
        "ssh": b"SSH-2.0-OpenSSH_9.2p1\r\n",
        "smtp": b"220 mail.example.test ESMTP Postfix\r\n",
    }

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


# Every connection event a healthy gateway's own monitors can report.
_EVENTS = (
    zmq.EVENT_ACCEPTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


@contextmanager
def watched_gateway() -> Iterator[tuple[int, int, Counter[str]]]:
    """A healthy gateway (ROUTER answering OK, PUB) whose monitors count what they see;
    yields (REP port, PUB port, event counts)."""
    ctx = zmq.Context()
    rep: Any = ctx.socket(zmq.ROUTER)
    pub: Any = ctx.socket(zmq.PUB)
    seen: Counter[str] = Counter()
    monitors = [rep.get_monitor_socket(_EVENTS), pub.get_monitor_socket(_EVENTS)]
    for sock in (rep, pub, *monitors):
        sock.setsockopt(zmq.LINGER, 0)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    pub_port = pub.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()

    def serve() -> None:
        poller = zmq.Poller()
        for sock in (rep, *monitors):
            poller.register(sock, zmq.POLLIN)
        while not stop.is_set():
            for sock, _ in poller.poll(50):
                if sock is rep:
                    envelope = rep.recv_multipart()[:-1]
                    rep.send_multipart([*envelope, b'{"status": "OK"}'])
                else:
                    event = struct.unpack("=HI", sock.recv_multipart()[0][:6])[0]
                    seen[str(zmq.Event(event).name)] += 1

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port, pub_port, seen
    finally:
        stop.set()
        thread.join(AFTER_SIGNAL_S)  # it sees `stop` within one 50 ms poll
        for sock in (*monitors, rep, pub):
            sock.close(linger=0)
        ctx.term()
