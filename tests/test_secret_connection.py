"""A secret goes out only on the connection that proved itself (issue 27, point 1).

libzmq keeps a connected socket's pipe across reconnects: a request queued after a
handshake on one TCP connection would leave on the next one, whatever answers there. Here
every connection of the port alternates between a real ZMTP 3 handshake (then a close) and
an SSH banner that records every byte, and no piece of the secret may ever reach a banner
connection, on any command, transport or path (attempt and pause).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from tests.support import servers
from tests.support.alternating import Alternating, alternating_port
from tests.support.bounds import FAST_ATTEMPT, NEVER_READY_S, NEVER_READY_WAIT, after_deadline
from tests.support.cli import run_gate
from tests.support.helpers import base_env

TOKEN = "alt-S3CRET-5b7d20e4c19a"
PIECE = 8  # any 8 bytes of a secret are too many (issue 27, point 5)
# A wait never ready here (each banner turn fails it), watching its pauses, each attempt
# short: several attempts and pauses, each a chance for a request to follow a reconnect.
WAIT = (*NEVER_READY_WAIT, *FAST_ATTEMPT)


def token_env(tmp_path: Path, port: int) -> dict[str, str]:
    secret = tmp_path / "bridge_token"
    secret.write_text(TOKEN + "\n")
    return base_env(
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(port),
        GATE_PING_REQUEST=f'{{"action":"health","token":"$file:{secret}"}}',
    )


def pieces_of(secret: bytes) -> list[bytes]:
    return [secret[at : at + PIECE] for at in range(len(secret) - PIECE + 1)]


def assert_no_piece_reached(peers: list[Alternating]) -> None:
    assert any(peer.handshakes for peer in peers), "no handshake was made: the test proves nothing"
    for peer in peers:
        received = peer.received()
        leaked = [
            (index, piece)
            for index, got in enumerate(received)
            for piece in pieces_of(TOKEN.encode())
            if piece in got
        ]
        assert not leaked, f"banner connections received the secret: {received!r}"


@contextlib.contextmanager
def two_ports() -> Iterator[tuple[tuple[int, Alternating], tuple[int, Alternating]]]:
    with alternating_port() as first, alternating_port() as second:
        yield first, second


@pytest.mark.parametrize("transport", ["req", "push-pull", "req-pull"])
def test_wait_never_sends_the_secret_past_the_connection_that_proved_itself(
    transport: str, tmp_path: Path
) -> None:
    """The attempt and the pause's held request, on every transport that sends one. A
    two-socket bridge's reply port is a steady PUSH, so that its reply channel is up and
    every attempt gets as far as sending."""
    with alternating_port() as (port, requests), servers.zmq_server(zmq.PUSH) as reply_port:
        extra = (
            ()
            if transport == "req"
            else ("--transport", transport, "--reply-port", str(reply_port))
        )
        # Twice: each wait is a few attempts and pauses, each a chance to follow a reconnect.
        runs = [
            run_gate(
                ["wait", *WAIT, *extra],
                env=token_env(tmp_path, port),
                timeout=after_deadline(NEVER_READY_S),
            )
            for _ in range(2)
        ]
    assert all(ran.code != 0 for ran in runs), [ran.events for ran in runs]
    assert_no_piece_reached([requests])


@pytest.mark.parametrize("command", ["probe", "health", "mesh"])
def test_one_shot_commands_never_send_the_secret_to_the_banner(
    command: str, tmp_path: Path
) -> None:
    args = ("--json",) if command == "mesh" else FAST_ATTEMPT
    with alternating_port() as (port, peer):
        # Several runs: which connection each lands on depends on the peer's count.
        for _ in range(4):
            run_gate([command, *args], env=token_env(tmp_path, port))
    assert_no_piece_reached([peer])


def test_an_also_bridge_never_sends_the_secret_to_the_banner(tmp_path: Path) -> None:
    with two_ports() as ((port, gateway), (other_port, other)):
        ran = run_gate(
            ["wait", *WAIT, "--also", f"zmq+req://127.0.0.1:{other_port}"],
            env=token_env(tmp_path, port),
            timeout=after_deadline(NEVER_READY_S),
        )
    assert ran.code != 0, ran.events
    assert_no_piece_reached([gateway, other])
