"""A port whose connections alternate between a genuine ZeroMQ peer and an SSH server.

Connection 1, 3, 5... complete a real ZMTP 3.0 NULL handshake (greeting, then a READY
naming the socket type the client needs) and close at once: a bridge that crashes right
after its handshake. Connection 2, 4, 6... get an SSH banner, and every byte they receive
is recorded: a TCP forwarder whose backend changed. A secret proven on the first kind of
connection must never reach the second.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

from tests.support.servers import Recorder, tcp_server

# ZMTP 3.0: signature, version 3.0, mechanism NULL, as-server 0, filler: 64 bytes.
GREETING = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" * 32
# The type each client socket needs from its peer (ZMTP 3 READY's Socket-Type).
PEER_OF = {b"REQ": b"ROUTER", b"PUSH": b"PULL", b"PULL": b"PUSH", b"SUB": b"PUB"}
SSH_BANNER = Recorder.GREETINGS["ssh"]


def _ready(socket_type: bytes) -> bytes:
    """A short ZMTP 3 command frame: READY with one Socket-Type property."""
    name = b"Socket-Type"
    body = b"\x05READY" + bytes([len(name)]) + name + struct.pack(">I", len(socket_type))
    body += socket_type
    return b"\x04" + bytes([len(body)]) + body


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    got = b""
    while len(got) < size:
        chunk = conn.recv(size - len(got))
        if not chunk:
            raise ConnectionError("closed mid-handshake")
        got += chunk
    return got


def _client_type(ready: bytes) -> bytes:
    """The Socket-Type property of the client's READY body (after '\\x05READY')."""
    at = len(b"\x05READY")
    while at < len(ready):
        name_len = ready[at]
        name = ready[at + 1 : at + 1 + name_len]
        at += 1 + name_len
        (value_len,) = struct.unpack(">I", ready[at : at + 4])
        value = ready[at + 4 : at + 4 + value_len]
        at += 4 + value_len
        if name.lower() == b"socket-type":
            return value
    return b""


class Alternating:
    """Serves each accepted connection on its own thread, alternating the two behaviours;
    ``banner_bytes`` is everything the SSH connections received, one entry each."""

    def __init__(self) -> None:
        self.connections = 0
        self.handshakes = 0
        self.banner_bytes: list[bytearray] = []
        self._lock = threading.Lock()

    def __call__(self, conn: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            zeromq = self.connections % 2 == 1
        serve = self._handshake if zeromq else self._banner
        threading.Thread(target=serve, args=(conn,), daemon=True).start()

    def _handshake(self, conn: socket.socket) -> None:
        conn.settimeout(2)
        with contextlib.suppress(OSError, ConnectionError, struct.error):
            conn.sendall(GREETING)
            _read_exactly(conn, len(GREETING))
            flags, size = _read_exactly(conn, 2)
            if flags & 0x02:  # a long command frame: 8-octet size
                size = struct.unpack(">Q", bytes([size]) + _read_exactly(conn, 7))[0]
            ready = _read_exactly(conn, size)
            conn.sendall(_ready(PEER_OF.get(_client_type(ready), b"ROUTER")))
            with self._lock:
                self.handshakes += 1
        conn.close()  # right after the handshake: the bridge went away

    def _banner(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        received = bytearray()
        with self._lock:  # recorded as it arrives: read at any moment, never lost
            self.banner_bytes.append(received)
        with contextlib.suppress(OSError):
            conn.sendall(SSH_BANNER)
            for _ in range(40):  # ~8 s of listening: longer than any attempt here
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                with self._lock:
                    received += chunk
        conn.close()

    def received(self) -> list[bytes]:
        with self._lock:
            return [bytes(each) for each in self.banner_bytes]


@contextlib.contextmanager
def alternating_port() -> Iterator[tuple[int, Alternating]]:
    peer = Alternating()
    with tcp_server(peer) as port:
        yield port, peer
