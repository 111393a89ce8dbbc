"""A ZMTP 1.0 peer is accepted only on a greeting that can be nothing else (issue 27,
point 3): one complete identity frame (length L, flags 0, L-1 bytes) and then silence, as
libzmq 2.x sends. A server that speaks first in its own protocol is ``not_zmq``, even when
its first bytes look like such a frame: a MySQL 8 greeting opens with its packet length
(0x4a) and a zero byte, which libzmq itself takes for a ZMTP 1.0 identity.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.bounds import FAST_ATTEMPT, FAST_BACKOFF, after_deadline
from tests.support.cli import run_gate
from tests.support.servers import tcp_server
from tests.support.zmq_peers import zmtp1_frame


def mysql8_greeting(connection_id: int = 13) -> bytes:
    """A MySQL 8.0 server's first packet, as it sends it unasked on every connection: the
    protocol 10 handshake (server version, connection id, the salt in two parts,
    capabilities, utf8mb4, caching_sha2_password), behind its 3-octet length and sequence
    number 0."""
    salt = bytes(range(0x21, 0x21 + 20))
    payload = (
        b"\x0a"  # protocol version 10
        + b"8.0.36\x00"
        + struct.pack("<I", connection_id)
        + salt[:8]
        + b"\x00"  # filler
        + struct.pack("<H", 0xFFFF)  # capabilities, lower half
        + b"\xff"  # utf8mb4_0900_ai_ci
        + struct.pack("<H", 0x0002)  # SERVER_STATUS_AUTOCOMMIT
        + struct.pack("<H", 0xDFFF)  # capabilities, upper half
        + bytes([len(salt) + 1])
        + b"\x00" * 10  # reserved
        + salt[8:]
        + b"\x00"
        + b"caching_sha2_password\x00"
    )
    return struct.pack("<I", len(payload))[:3] + b"\x00" + payload


def test_the_greeting_is_the_one_a_mysql_8_server_sends() -> None:
    """What the issue measured: 4a 00 00 00 0a 38 2e 30 ..."""
    assert mysql8_greeting()[:8] == bytes.fromhex("4a0000000a382e30")
    assert len(mysql8_greeting()) == 4 + 0x4A


@contextmanager
def speaking_first(greeting: bytes) -> Iterator[int]:
    """A server that sends ``greeting`` on every connection, then waits (as MySQL waits
    for the client's handshake response) until the client leaves."""

    def serve(conn: socket.socket) -> None:
        conn.sendall(greeting)
        conn.settimeout(10)
        threading.Thread(target=_drain, args=(conn,), daemon=True).start()

    with tcp_server(serve) as port:
        yield port


def _drain(conn: socket.socket) -> None:
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass


TRANSPORTS = {
    "req": (),
    "push-pull": ("--transport", "push-pull"),
    "req-pull": ("--transport", "req-pull"),
    "handshake": ("--transport", "handshake"),
    "no-safe-request": ("--bridge", "no-safe-request"),
}


def _reply_port(port: int, name: str) -> tuple[str, ...]:
    return ("--reply-port", str(port)) if name in {"push-pull", "req-pull"} else ()


@pytest.mark.parametrize("name", list(TRANSPORTS))
def test_a_mysql_greeting_is_not_zmq_in_wait(name: str) -> None:
    with speaking_first(mysql8_greeting()) as port:
        ran = run_gate(
            [
                "wait",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *TRANSPORTS[name],
                *_reply_port(port, name),
                "--timeout",
                "10",
                *FAST_BACKOFF,
                *FAST_ATTEMPT,
            ],
            timeout=after_deadline(10),
        )
    failed = [e for e in ran.events if e["event"] == "gate.attempt_failed"]
    assert ran.code == 78, ran.events
    assert failed, ran.events
    assert {e["reason"] for e in failed} == {"not_zmq"}, failed


@pytest.mark.parametrize("name", list(TRANSPORTS))
def test_a_mysql_greeting_is_unhealthy_in_health(name: str) -> None:
    with speaking_first(mysql8_greeting()) as port:
        ran = run_gate(
            [
                "health",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *TRANSPORTS[name],
                *_reply_port(port, name),
                *FAST_ATTEMPT,
            ],
        )
    assert ran.code == 1, ran.stdout
    assert ran.stdout.startswith("unhealthy:"), ran.stdout
    assert "not_zmq" in ran.stdout or "not a ZeroMQ" in ran.stdout, ran.stdout


@pytest.mark.parametrize(
    "greeting",
    [
        zmtp1_frame(b"") + b"\x00\x00",  # a complete empty identity, then more bytes
        zmtp1_frame(b"gateway-1")[:-1],  # an identity frame cut short, then silence
        b"\x05\x00ab",  # a length of 5 with two bytes after the flags, then silence
    ],
    ids=["extra-bytes", "short-identity", "incomplete"],
)
def test_anything_but_one_complete_identity_frame_is_not_zmq(greeting: bytes) -> None:
    with speaking_first(greeting) as port:
        ran = run_gate(
            ["health", "--host", "127.0.0.1", "--port", str(port), "--transport", "handshake"],
        )
    assert ran.code == 1, ran.stdout
    assert "not_zmq" in ran.stdout or "not a ZeroMQ" in ran.stdout, ran.stdout


@pytest.mark.parametrize(
    "greeting", [zmtp1_frame(b""), zmtp1_frame(b"gateway-1")], ids=["empty", "named"]
)
def test_one_identity_frame_then_silence_stays_a_zmtp1_peer(greeting: bytes) -> None:
    """libzmq 2.x: its identity frame, then it waits for ours."""
    with speaking_first(greeting) as port:
        ran = run_gate(
            ["health", "--host", "127.0.0.1", "--port", str(port), "--transport", "handshake"],
        )
    assert ran.code == 0, ran.stdout
