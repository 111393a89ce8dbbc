"""Peers that answer but never finish answering, on loopback: each read gets a byte long
before any per-read timeout, so only a bound on the whole exchange ends them
(tests/test_also_deadlines.py)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.support.bounds import AFTER_SIGNAL_S, EVENT_S

DRIP_S = 0.5  # one byte every DRIP_S: far inside any per-read timeout the gate uses

Serve = Callable[[socket.socket, threading.Event], None]


@contextmanager
def peer(serve: Serve) -> Iterator[int]:
    """A loopback listener serving each connection on its own thread with ``serve``, until
    the test ends (``stop`` set, every connection closed); yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve_one(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the gate closed it: its check is over
            serve(conn, stop)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            held.append(conn)
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        acceptor.join(AFTER_SIGNAL_S)
        listener.close()
        for conn in held:
            conn.close()


def dripping(first: bytes, drip: bytes) -> Serve:
    """Once spoken to, send ``first``, then one byte of ``drip`` every DRIP_S, for ever."""

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(EVENT_S)
        if not conn.recv(4096):
            return  # the gate's own TCP probe: connected and closed
        conn.sendall(first)
        while not stop.wait(DRIP_S):  # the peer's pace, not a synchronisation
            conn.sendall(drip)

    return serve


PG_SSL_REQUEST, PG_GSSENC_REQUEST, PG_PROTOCOL_3 = 80877103, 80877104, 196608


def postgres_that_never_answers(queries: list[bytes]) -> Serve:
    """The PostgreSQL wire protocol up to ReadyForQuery (no TLS, no password asked), then
    silence: every Query is recorded in ``queries`` and never answered, as pgbouncer does
    with an exhausted pool (it queues the query, and ignores statement_timeout in the
    start-up's options)."""

    def exactly(conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data

    def message(kind: bytes, body: bytes) -> bytes:
        return kind + struct.pack("!i", len(body) + 4) + body

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(EVENT_S)
        while True:  # the start-up packet, after any encryption requests (refused: "N")
            length, code = struct.unpack("!ii", exactly(conn, 8))
            exactly(conn, length - 8)
            if code not in (PG_SSL_REQUEST, PG_GSSENC_REQUEST):
                break
            conn.sendall(b"N")
        assert code == PG_PROTOCOL_3, code
        params = [(b"server_version", b"16.0"), (b"client_encoding", b"UTF8")]
        params += [(b"server_encoding", b"UTF8"), (b"DateStyle", b"ISO, MDY")]
        params += [(b"integer_datetimes", b"on"), (b"standard_conforming_strings", b"on")]
        conn.sendall(
            message(b"R", struct.pack("!i", 0))  # AuthenticationOk
            + b"".join(message(b"S", name + b"\0" + value + b"\0") for name, value in params)
            + message(b"K", struct.pack("!ii", 4242, 1234))  # BackendKeyData
            + message(b"Z", b"I")  # ReadyForQuery, idle
        )
        while not stop.is_set():
            kind = exactly(conn, 1)
            (length,) = struct.unpack("!i", exactly(conn, 4))
            body = exactly(conn, length - 4)
            if kind == b"Q":
                queries.append(body.rstrip(b"\0"))

    return serve
