"""The gate against ZeroMQ peers that are not libzmq 4: a ZMTP 1.0 peer (libzmq 2.x wire
format) and JeroMQ 0.3 (pure Java, ZMTP 2.0). Neither reports a security handshake to
libzmq's monitor, which the gate must not mistake for "not ZeroMQ" or "slow"."""

from __future__ import annotations

import datetime
import json
from typing import Any

from tests.support.bounds import EVENT_S, EXIT_S
from tests.support.cli import run_gate
from tests.support.helpers import EXEC_PROBE, base_env, free_port
from tests.support.processes import StartGate
from tests.support.sockets import held_closed_port
from tests.support.zmq_peers import jeromq_rep_server, zmtp1_rep_server

PONG = b'{"status": "OK", "message": "pong"}'


def answer(_request: bytes) -> bytes:
    return PONG


def target(port: int) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port)]


def epoch(event: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(
        str(event["timestamp"]).replace("Z", "+00:00")
    ).timestamp()


def test_zmtp1_peer_passes_health_and_probe() -> None:
    """A libzmq 2.x-style peer is a ZeroMQ peer: healthy, and probe's TCP and PING pass."""
    with zmtp1_rep_server(answer) as peer:
        health = run_gate(["health", *target(peer.port)])
        probe = run_gate(["probe", *target(peer.port), "--pub-port", str(held_closed_port())])
    assert health.code == 0, health.stdout
    assert health.stdout.startswith("healthy:")
    assert probe.code == 0, probe.stdout
    assert "not_zmq" not in probe.stdout
    assert len(peer.requests) >= 1 + 1 + 5 + 1  # health, probe's PING, 5 round trips, STATUS


def test_zmtp1_peer_gets_the_gate_ready_and_the_runner_execd(gate: StartGate) -> None:
    """wait against a ZMTP 1.0 peer: ready at the first attempt, runner in the same PID."""
    with zmtp1_rep_server(answer) as peer:
        proc = gate("wait", *target(peer.port), "--", *EXEC_PROBE)
        code = proc.wait(EXIT_S)
    assert code == 0, proc.stderr_lines
    start, ready = proc.wait_for_event("gate.start"), proc.wait_for_event("gate.ready")
    assert ready["attempt"] == 1
    assert isinstance(ready["rtt_ms"], float)
    assert f"ready pid={start['pid']}" in proc.stdout_lines


def test_a_peer_that_greets_only_after_the_client_is_still_zeromq() -> None:
    """A ZMTP 1.0 peer that waits for the client's greeting before sending its own: wait
    and health pass, and as a feed (which never sends a message here) probe's PUB check
    recognises it by offering our greeting, instead of calling it silent."""
    with zmtp1_rep_server(answer, speaks_first=False) as peer:
        health = run_gate(["health", *target(peer.port)])
        wait = run_gate(["wait", *target(peer.port), "--timeout", "10"])
    with (
        zmtp1_rep_server(lambda _request: None, speaks_first=False) as feed,
        zmtp1_rep_server(answer) as gateway,
    ):
        probe = run_gate(["probe", *target(gateway.port), "--pub-port", str(feed.port), "--json"])
    assert health.code == 0, health.stdout
    assert wait.code == 0, wait.events
    assert probe.code == 0, probe.stdout
    pub = next(check for check in json.loads(probe.stdout)["checks"] if check["name"] == "PUB port")
    assert pub["status"] == "pass", pub


def test_silent_zmtp1_peer_is_no_reply_never_not_zmq() -> None:
    """A ZMTP 1.0 peer that takes the request and never answers: no_reply (retried)."""
    with zmtp1_rep_server(lambda _request: None) as peer:
        ran = run_gate(
            [
                "wait",
                *target(peer.port),
                "--reply-timeout",
                "0.5",
                "--timeout",
                "2",
                "--backoff-initial",
                "0.1",
            ]
        )
    reasons = {e["reason"] for e in ran.events if e["event"] == "gate.attempt_failed"}
    assert ran.code == 69
    assert reasons == {"no_reply"}


def test_jeromq_gets_the_gate_ready_health_and_probe_pass(gate: StartGate) -> None:
    """JeroMQ 0.3 (ZMTP 2.0): wait execs the runner; health and probe (PUB too) pass."""
    with jeromq_rep_server(PONG.decode(), pub_port=0) as jero:
        proc = gate("wait", *target(jero.port), "--", *EXEC_PROBE)
        code = proc.wait(EXIT_S)
        health = run_gate(["health", *target(jero.port)])
        probe = run_gate(["probe", *target(jero.port), "--pub-port", str(jero.pub_port), "--json"])
    assert code == 0, proc.stderr_lines
    assert f"ready pid={proc.wait_for_event('gate.start')['pid']}" in proc.stdout_lines
    assert health.code == 0, health.stdout
    assert probe.code == 0, probe.stdout
    assert '"PUB port"' in probe.stdout
    assert '"status": "fail"' not in probe.stdout


def test_jeromq_binding_late_is_caught_in_the_pause_with_an_honest_round_trip(
    gate: StartGate,
) -> None:
    """The gate waits first; JeroMQ binds during a backoff pause. The queued request is
    answered and taken (never discarded as "too slow" for want of a handshake event), and
    its round trip counts from the connection, so it cannot exceed the time since the
    bind (it used to count from the pause's start: 0.5-1.2 s for a 2 ms reply)."""
    port = free_port()
    proc = gate(
        "wait",
        *target(port),
        "--backoff-initial",
        "2",
        "--backoff-max",
        "4",
        "--timeout",
        "60",
        env=base_env(),
    )
    proc.wait_for_event("gate.attempt_failed", timeout=EVENT_S)
    with jeromq_rep_server(PONG.decode(), port=port) as jero:
        code = proc.wait(EXIT_S)
        bound_at = jero.bound_at
    assert code == 0, proc.stderr_lines
    ready = proc.wait_for_event("gate.ready")
    assert ready["via"] == "pause"
    since_bind_ms = (epoch(ready) - bound_at) * 1000
    assert ready["rtt_ms"] is not None
    # Both clocks are this machine's wall clock, read a few ms apart: allow 50 ms of skew.
    assert ready["rtt_ms"] <= since_bind_ms + 50, (ready["rtt_ms"], since_bind_ms)


def test_a_secret_goes_to_a_zmtp2_peer_only_with_the_opt_in(tmp_path: Any) -> None:
    """JeroMQ 0.3 greets with ZMTP 2.0 and names its socket type (REP), but libzmq reports
    no handshake for it: the greeting can only be read on a connection of the gate's own,
    which proves nothing about the one the request would go over. So no secret without
    GATE_LEGACY_SECRETS=allow (and the gate says why); with it, the gate gets ready."""
    token = tmp_path / "token"
    token.write_text("jero-token-6d1e2f\n")
    request = ["--ping-request", f'{{"action":"PING","token":"$file:{token}"}}']
    with jeromq_rep_server('{"status": "OK"}') as jero:
        refused = run_gate(["wait", *target(jero.port), *request, "--timeout", "5"])
        allowed = run_gate(
            ["wait", *target(jero.port), *request], env=base_env(GATE_LEGACY_SECRETS="allow")
        )
    assert refused.code == 78, refused.events
    error = next(e for e in refused.events if e["event"] == "gate.error")
    assert "ZMTP 2.0" in error["error"], error
    assert "GATE_LEGACY_SECRETS=allow" in error["error"], error
    assert "gate.request" not in {e["event"] for e in refused.events}, refused.events
    assert allowed.code == 0, allowed.events
    assert "gate.ready" in {e["event"] for e in allowed.events}


def test_a_secret_goes_to_a_zmtp1_peer_only_with_the_opt_in(tmp_path: Any) -> None:
    """A ZMTP 1.0 greeting names no socket type, and is what libzmq takes any non-ZeroMQ
    first byte for: no secret without GATE_LEGACY_SECRETS=allow, and the gate says why."""
    token = tmp_path / "token"
    token.write_text("zmtp1-token-77ab3c\n")
    request = ["--ping-request", f'{{"action":"PING","token":"$file:{token}"}}']
    with zmtp1_rep_server(answer) as peer:
        refused = run_gate(["wait", *target(peer.port), *request, "--timeout", "5"])
        received_before = list(peer.requests)
        allowed = run_gate(
            ["wait", *target(peer.port), *request], env=base_env(GATE_LEGACY_SECRETS="allow")
        )
    assert refused.code == 78
    error = next(e for e in refused.events if e["event"] == "gate.error")
    assert "GATE_LEGACY_SECRETS=allow" in error["error"]
    assert received_before == []
    assert allowed.code == 0
