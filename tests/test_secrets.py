"""A secret goes only to a proven ZeroMQ peer, and a secret too short to protect is refused.

A wrong GATEWAY_HOST or port at 3 a.m. points the gate at whatever listens there: an SSH
or SMTP server that speaks first, an HTTP server that answers once spoken to, or a service
that never says a thing. libzmq takes any first byte that is not 0xFF for a ZMTP 1.0
peer and sends the queued request. Here each of those services records every byte it
receives, and the bridge token must not be among them, for every command and transport.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import servers
from tests.support.bounds import FAST_ATTEMPT, NEVER_READY_S, NEVER_READY_WAIT, after_deadline
from tests.support.cli import run_gate
from tests.support.helpers import base_env

TOKEN = "tok-S3CRET-9f3e1c7a"
SERVICES = ("ssh", "smtp", "http", "silent")
# A wait never ready against such a service, each attempt short (probe and health take
# only FAST_ATTEMPT: the backoff and the deadline are wait's alone).
WAIT = (*NEVER_READY_WAIT, *FAST_ATTEMPT)


@contextlib.contextmanager
def services(speak: str, count: int) -> Iterator[list[tuple[int, servers.Recorder]]]:
    """``count`` listeners of one kind of service, each with its recorder."""
    with contextlib.ExitStack() as stack:
        found = []
        for _ in range(count):
            recorder = servers.Recorder(speak)
            found.append((stack.enter_context(servers.tcp_server(recorder)), recorder))
        yield found


def token_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    secret = tmp_path / "bridge_token"
    secret.write_text(TOKEN + "\n")
    return base_env(
        GATEWAY_HOST="127.0.0.1",
        GATE_PING_REQUEST=f'{{"action":"health","token":"$file:{secret}"}}',
        **extra,
    )


def assert_never_received(recorders: list[servers.Recorder]) -> None:
    assert sum(r.connections for r in recorders) >= 1  # the gate did reach them
    for recorder in recorders:
        assert TOKEN.encode() not in recorder.bytes()


@pytest.mark.parametrize("speak", SERVICES)
@pytest.mark.parametrize("command", ["wait", "probe", "health", "mesh"])
def test_no_byte_of_a_secret_reaches_a_service_that_is_not_zeromq(
    command: str, speak: str, tmp_path: Path
) -> None:
    """The verdict stays not_zmq or no_reply; the token never leaves the machine."""
    with services(speak, 1) as [(port, recorder)]:
        args = {"wait": WAIT, "probe": FAST_ATTEMPT, "health": FAST_ATTEMPT, "mesh": ("--json",)}[
            command
        ]
        ran = run_gate(
            [command, *args],
            env=token_env(tmp_path, GATEWAY_PORT=str(port)),
            timeout=after_deadline(10),
        )
    assert ran.code != 0
    assert_never_received([recorder])
    if command == "wait":
        reasons = {e["reason"] for e in ran.events if e["event"] == "gate.attempt_failed"}
        assert reasons <= {"not_zmq", "no_reply", "reset", "protocol"}, reasons


@pytest.mark.parametrize("speak", SERVICES)
def test_an_also_bridge_gets_no_secret_when_it_is_not_zeromq(
    speak: str,
    tmp_path: Path,
) -> None:
    with services(speak, 2) as [(gateway_port, gateway), (other_port, other)]:
        ran = run_gate(
            ["wait", *WAIT, "--also", f"zmq+req://127.0.0.1:{other_port}"],
            env=token_env(tmp_path, GATEWAY_PORT=str(gateway_port)),
            timeout=after_deadline(NEVER_READY_S),
        )
    assert ran.code != 0
    assert_never_received([gateway, other])


@pytest.mark.parametrize("speak", SERVICES)
@pytest.mark.parametrize("transport", ["push-pull", "req-pull"])
def test_two_socket_transports_send_no_secret_to_a_stranger(
    transport: str, speak: str, tmp_path: Path
) -> None:
    with services(speak, 2) as [(port, requests), (reply_port, replies)]:
        waited = run_gate(
            ["wait", *WAIT, "--transport", transport, "--reply-port", str(reply_port)],
            env=token_env(tmp_path, GATEWAY_PORT=str(port)),
            timeout=after_deadline(NEVER_READY_S),
        )
        probed = run_gate(
            ["probe", *FAST_ATTEMPT, "--transport", transport, "--reply-port", str(reply_port)],
            env=token_env(tmp_path, GATEWAY_PORT=str(port)),
        )
    assert (waited.code, probed.code) != (0, 0)
    assert_never_received([requests, replies])


def test_a_request_without_a_secret_still_reaches_such_a_service(tmp_path: Path) -> None:
    """What the recorders can see (the tests above can fail): a plain request, which keeps
    today's behaviour, is sent by libzmq to an SSH server it took for a ZMTP 1.0 peer."""
    marker = "no-secret-marker-51f0"
    with services("ssh", 1) as [(port, recorder)]:
        run_gate(
            ["wait", *WAIT, "--ping-request", json.dumps({"action": marker})],
            env=base_env(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(port)),
            timeout=after_deadline(NEVER_READY_S),
        )
    assert marker.encode() in recorder.bytes()


def test_a_secret_shorter_than_8_bytes_is_refused(tmp_path: Path) -> None:
    """It could be neither guessed safely nor scrubbed without blanking ordinary text."""
    secret = tmp_path / "short"
    secret.write_text("abc1234\n")
    ran = run_gate(
        ["wait", "--host", "127.0.0.1", "--ping-request", f'{{"token":"$file:{secret}"}}']
    )
    assert ran.code == 64
    assert len(ran.events) == 1
    assert "shorter than 8 bytes" in ran.events[0]["error"]
    assert "abc1234" not in json.dumps(ran.events)
