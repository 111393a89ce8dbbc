"""`mt5-gate wait` against real peers on loopback: each failure reason produced for real."""

from __future__ import annotations

import datetime
import itertools
import json
import random
import signal
import sys
import time
from collections.abc import Callable

import pytest
import zmq

from tests.support import servers
from tests.support.bounds import AFTER_SIGNAL_S, EXIT_S, FAST_WAIT, after_deadline
from tests.support.cli import run_gate
from tests.support.fault_injection import RUN
from tests.support.helpers import base_env, free_port, names
from tests.support.processes import Spawn, StartGate, StartSim
from tests.support.sockets import held_closed_port


def wait_args(port: int, *extra: str) -> list[str]:
    return ["wait", "--host", "127.0.0.1", "--port", str(port), *FAST_WAIT, *extra]


def failures(events: list[dict[str, object]]) -> list[object]:
    return [e["reason"] for e in events if e["event"] == "gate.attempt_failed"]


def test_ready_against_the_simulated_gateway_exits_0(sim: StartSim) -> None:
    """No COMMAND: exit 0 once the gateway answers, with start, ready, status in the log."""
    _sim, port = sim()
    ran = run_gate(wait_args(port))
    assert ran.code == 0
    assert names(ran.events) == ["gate.start", "gate.ready", "gate.status"]
    ready = ran.events[1]
    assert ready["attempt"] == 1
    assert json.loads(str(ready["reply"]))["status"] == "OK"
    assert isinstance(ready["rtt_ms"], float)
    assert ran.events[2]["available"] is True


def test_refused_is_retried_until_the_deadline_then_69() -> None:
    """Nothing listening: reason refused on every attempt, then gate.timeout and exit 69."""
    ran = run_gate(wait_args(held_closed_port(), "--timeout", "1.5"))
    assert ran.code == 69
    assert set(failures(ran.events)) == {"refused"}
    assert ran.events[-1]["event"] == "gate.timeout"
    assert ran.events[-1]["last_reason"] == "refused"
    assert ran.events[-1]["attempts"] >= 3
    # Never before the 1.5 s deadline (exact: the gate's own clock); given up at it, not run
    # on towards the 600 s default --timeout: 2 s of room for a loaded CPU.
    assert 1.5 <= ran.events[-1]["elapsed_s"] < 1.5 + 2.0, ran.events[-1]
    # The same seen from outside, plus start-up and exit (~1.5 s when loaded): 3 s more room.
    assert 1.5 <= ran.took < 1.5 + 2.0 + 3.0, f"took {ran.took:.2f} s: {ran.events}"


def test_late_gateway_is_noticed_during_a_backoff_pause(gate: StartGate, sim: StartSim) -> None:
    """A gateway that binds in the middle of a long pause is noticed through the queued PING."""
    port = free_port()
    proc = gate(*wait_args(port, "--backoff-initial", "30", "--backoff-max", "30"))
    proc.wait_for_event("gate.attempt_failed")
    sim("--port", str(port))
    assert proc.wait(timeout=EXIT_S) == 0
    ready = proc.wait_for_event("gate.ready")
    assert ready["via"] == "pause"
    # Ready when the simulator binds (a start-up after the first failure: ~0.5 s, ~3 s
    # loaded), long before the 15-30 s pause (a 30 s step, equal jitter) would have ended.
    assert ready["elapsed_s"] < 15, proc.events()


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (servers.banner, "not_zmq"),
        (servers.http_like, "not_zmq"),
    ],
)
def test_non_zeromq_service_is_a_configuration_error(
    handler: Callable[..., None], reason: str
) -> None:
    """A port that speaks another protocol: exit 78 after 3 attempts, not after the deadline."""
    with servers.tcp_server(handler) as port:
        ran = run_gate(wait_args(port, "--timeout", "60"))
    assert ran.code == 78
    assert failures(ran.events) == [reason] * 3
    assert ran.events[-1]["event"] == "gate.error"
    assert ran.events[-1]["reason"] == reason
    assert "mt5-gate explain --reason not_zmq" in ran.events[-1]["hint"]
    # Exit 78 after 3 quick attempts (~1 s, plus start-up: ~1.5 s loaded), not at the 60 s
    # deadline that an outage would wait for.
    assert ran.took < 20, f"took {ran.took:.2f} s: {ran.events}"


def test_simulated_not_zmq_listener_is_78(sim: StartSim) -> None:
    """`mt5-gate sim --not-zmq` is reported as not_zmq."""
    _sim, port = sim("--not-zmq")
    ran = run_gate(wait_args(port, "--timeout", "60"))
    assert ran.code == 78
    assert failures(ran.events) == ["not_zmq"] * 3


@pytest.mark.parametrize("kind", [zmq.PUB, zmq.REQ, zmq.PUSH])
def test_wrong_zeromq_socket_type_is_protocol(kind: int) -> None:
    """Pointing at the PUB port (or any non-REP socket): reason protocol, exit 78."""
    with servers.zmq_server(kind) as port:
        ran = run_gate(wait_args(port, "--timeout", "60"))
    assert ran.code == 78
    assert failures(ran.events) == ["protocol"] * 3


# The longest step FAST_WAIT allows between two log lines is an attempt: 1 s to connect
# and 1 s for a reply (a pause is 0.05-0.2 s, extended by at most the 1 s reply timeout).
# A send that blocks waits for a pipe forever: to the 20 s deadline and past it.
LONGEST_STEP_S = 10.0


def _stamps(events: list[dict[str, object]]) -> list[float]:
    return [
        datetime.datetime.fromisoformat(str(e["timestamp"]).replace("Z", "+00:00")).timestamp()
        for e in events
    ]


@pytest.mark.parametrize("kind", [zmq.PUB, zmq.REQ, zmq.PUSH])
def test_a_request_sent_after_the_peer_refused_never_blocks(kind: int) -> None:
    """On a loaded machine the gate may send only after the peer refused the handshake and
    libzmq tore the socket's pipe down: a blocking send then waited forever, past
    --timeout (3 waits in 60 with both cores busy). Injected here on the refusal itself,
    every time: still protocol three times and exit 78, and no step of the wait longer
    than its bound. (Whether the request was queued, and so logged as sent, depends on
    whether libzmq kept the pipe after that refusal: not what this test is about.)"""
    with servers.zmq_server(kind) as port:
        ran = run_gate(
            wait_args(port, "--timeout", "20", "--log-level", "debug"),
            command=[sys.executable, "-c", RUN, "send-after-refusal"],
            timeout=after_deadline(20),
        )
    log = "\n".join(json.dumps(e) for e in ran.events) + "\n" + ran.stderr[-2000:]
    assert ran.code == 78, log
    assert failures(ran.events) == ["protocol"] * 3, log
    stamps = _stamps(ran.events)
    steps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert max(steps) < LONGEST_STEP_S, f"a step of {max(steps):.1f} s:\n{log}"


def test_multipart_reply_is_protocol() -> None:
    """A REP that answers with two frames breaks the protocol."""
    with servers.zmq_server(zmq.ROUTER, lambda _req: [b'{"status": "OK"}', b"extra"]) as port:
        ran = run_gate(wait_args(port, "--timeout", "60"))
    assert ran.code == 78
    assert failures(ran.events) == ["protocol"] * 3


def test_oversized_reply_is_dropped_without_exhausting_memory() -> None:
    """A reply over the 1 MiB bound is refused by libzmq and reported as protocol."""
    with servers.zmq_server(zmq.ROUTER, lambda _req: [b"x" * (4 * 1024 * 1024)]) as port:
        ran = run_gate(wait_args(port, "--timeout", "60"))
    assert ran.code == 78
    assert failures(ran.events) == ["protocol"] * 3


def test_silent_peer_is_no_reply_and_retried() -> None:
    """Accepts TCP, never speaks (a frozen gateway): no_reply, retried until the deadline."""
    with servers.tcp_server(servers.silent) as port:
        ran = run_gate(
            wait_args(port, "--timeout", "3", "--connect-timeout", "0.3", "--reply-timeout", "0.5")
        )
    assert ran.code == 69
    assert set(failures(ran.events)) == {"no_reply"}


def test_accept_then_reset_is_reset_and_retried() -> None:
    """Accepted then closed at once (a proxy without backend): reset, an outage."""
    with servers.tcp_server(servers.reset_at_once) as port:
        ran = run_gate(wait_args(port, "--timeout", "1.5"))
    assert ran.code == 69
    assert set(failures(ran.events)) == {"reset"}


def test_garbage_reply_is_bad_reply_and_retried(sim: StartSim) -> None:
    """Non-JSON replies are not readiness; the gate keeps trying until the deadline."""
    _sim, port = sim("--garbage")
    ran = run_gate(wait_args(port, "--timeout", "1.5"))
    assert ran.code == 69
    assert set(failures(ran.events)) == {"bad_reply"}
    assert ran.events[-1]["last_reason"] == "bad_reply"


def test_bad_status_is_not_ready_unless_accepted(sim: StartSim) -> None:
    """status MAINTENANCE is not readiness by default, but is with --expect-status."""
    _sim, port = sim("--bad-status")
    refused = run_gate(wait_args(port, "--timeout", "1"))
    accepted = run_gate(wait_args(port, "--expect-status", "ok,maintenance"))
    assert refused.code == 69
    assert set(failures(refused.events)) == {"not_ready"}
    assert "MAINTENANCE" in str(refused.events[1]["error"])
    assert accepted.code == 0


def test_request_taken_and_never_answered_uses_a_fresh_socket(sim: StartSim) -> None:
    """The first PING is swallowed: no_reply, then a new socket gets the answer."""
    _sim, port = sim("--drop-first", "1")
    ran = run_gate(wait_args(port, "--reply-timeout", "0.5"))
    assert ran.code == 0
    assert failures(ran.events) == ["no_reply"]
    assert ran.events[-2]["event"] == "gate.ready"


GATEWAY_THAT_DIES = """
import sys, zmq
ctx = zmq.Context()
sock = ctx.socket(zmq.ROUTER)
sock.bind("tcp://127.0.0.1:" + sys.argv[1])
print("bound", flush=True)
sock.recv_multipart()
import os
os._exit(3)  # take the request and die without answering
"""


def test_gateway_that_dies_mid_request_then_returns(
    spawn: Spawn, gate: StartGate, sim: StartSim
) -> None:
    """A gateway dies holding our PING (reset), restarts, and the gate gets through."""
    port = free_port()
    dying = spawn([sys.executable, "-c", GATEWAY_THAT_DIES, str(port)])
    dying.wait_for_stdout("bound")
    proc = gate(
        *wait_args(port, "--reply-timeout", "5", "--backoff-initial", "0.5", "--backoff-max", "0.5")
    )
    assert dying.wait(timeout=EXIT_S) == 3
    first = proc.wait_for_event("gate.attempt_failed")
    assert first["reason"] == "reset"
    # The gate's own clock: noticed at the drop (~0.1 s), not at the 5 s reply timeout;
    # 3 s leaves room for a loaded CPU and is still 2 s short of 5 s.
    assert first["elapsed_s"] < 3.0, proc.events()
    sim("--port", str(port))
    assert proc.wait(timeout=EXIT_S) == 0


def test_status_is_logged_as_unavailable_when_not_implemented() -> None:
    """A gateway that answers PING but not STATUS is still ready; STATUS logs unavailable."""

    def reply(req: list[bytes]) -> list[bytes] | None:
        return [b'{"status": "OK"}'] if b"PING" in req[0] else None

    with servers.zmq_server(zmq.ROUTER, reply) as port:
        ran = run_gate(wait_args(port))
    assert ran.code == 0
    status = ran.events[-1]
    assert status["event"] == "gate.status"
    assert status["available"] is False
    assert status["reason"] == "no_reply"


def test_reply_without_status_field_is_ready() -> None:
    """A JSON object without status counts as an answer."""
    with servers.zmq_server(zmq.ROUTER, lambda _req: [b'{"pong": true}']) as port:
        ran = run_gate(wait_args(port))
    assert ran.code == 0


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_while_blocked_in_a_zeromq_wait(
    sig: int, code: int, gate: StartGate, sim: StartSim
) -> None:
    """SIGTERM/SIGINT while waiting for a reply: exit 128+N at once, not at the end of the
    30 s reply timeout, logged.

    The time is read from the gate's own gate.signal timestamp, so a busy CI machine that
    is slow to reap the process does not count against the gate."""
    simulator, port = sim("--drop-first", "1000")
    proc = gate(*wait_args(port, "--reply-timeout", "30"))
    simulator.wait_for_event("sim.request")  # the gate is now blocked on its reply
    sent = time.time()
    proc.signal(sig)
    assert proc.wait(timeout=AFTER_SIGNAL_S) == code
    event = proc.events()[-1]
    assert event["event"] == "gate.signal"
    assert event["signal"] == signal.Signals(sig).name
    # Handled within milliseconds of the signal (a few hundred ms when loaded), not when the
    # 30 s reply timeout the gate is blocked in runs out.
    assert timestamp(event) - sent < 3.0, f"sent at {sent}: {proc.events()}"


def test_a_second_signal_at_once_still_leaves_the_first_ones_line(
    gate: StartGate, sim: StartSim
) -> None:
    """SIGINT and, before the gate wrote its gate.signal line, SIGTERM (a supervisor that
    escalates at once; the demo did under load): the gate exits on the spot, with the
    first signal's code and a line naming both. Before, it exited 143 and wrote nothing, so
    the log did not say why the gate stopped."""
    simulator, port = sim("--drop-first", "1000")
    proc = gate(*wait_args(port, "--reply-timeout", "30"))
    simulator.wait_for_event("sim.request")  # the gate is now blocked on its reply
    proc.signal(signal.SIGINT)
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=AFTER_SIGNAL_S) == 130
    stops = [event for event in proc.events() if event["event"] == "gate.signal"]
    assert stops[-1]["signal"] == "SIGINT"
    assert stops[-1]["exit_code"] == 130
    assert stops[-1].get("hurried_by", "SIGTERM") == "SIGTERM"
    assert timestamp(stops[-1]) > 0


def timestamp(event: dict[str, object]) -> float:
    return datetime.datetime.fromisoformat(
        str(event["timestamp"]).replace("Z", "+00:00")
    ).timestamp()


def test_signals_at_random_moments_always_end_the_gate(gate: StartGate) -> None:
    """SIGTERM or SIGINT at 40 random moments of a busy retry loop (sockets being opened
    and closed): every run exits 143 or 130 promptly; none hangs in the ZeroMQ context's
    teardown."""
    rng = random.Random(20261122)
    for _ in range(40):
        proc = gate(
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(held_closed_port()),
            "--backoff-initial",
            "0.001",
            "--backoff-max",
            "0.002",
        )
        proc.wait_for_event("gate.start")  # the retry loop is running from here on
        time.sleep(rng.uniform(0, 0.2))  # not synchronisation: this picks the moment
        sig = signal.SIGTERM if rng.random() < 0.5 else signal.SIGINT
        proc.signal(sig)
        assert proc.wait(timeout=AFTER_SIGNAL_S) == 128 + sig


def test_reply_slower_than_the_reply_timeout_is_not_ready_even_during_a_pause(
    sim: StartSim,
) -> None:
    """A gateway answering in 1.5 s with --reply-timeout 0.5 is never ready: neither the
    attempts nor the PING queued during the pauses may accept its late answers."""
    _sim, port = sim("--reply-delay", "1.5")
    ran = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reply-timeout",
            "0.5",
            "--backoff-initial",
            "4",
            "--backoff-max",
            "4",
            "--timeout",
            "6",
        ]
    )
    assert ran.code == 69
    assert set(failures(ran.events)) == {"no_reply"}


def test_a_gateway_without_status_delays_the_runner_only_briefly() -> None:
    """PING answered, STATUS never: the exec follows the ready event after STATUS's own
    short timeout, not after the reply timeout."""

    def reply(req: list[bytes]) -> list[bytes] | None:
        return [b'{"status": "OK"}'] if b"PING" in req[0] else None

    with servers.zmq_server(zmq.ROUTER, reply) as port:
        ran = run_gate(wait_args(port, "--reply-timeout", "5", "--", "true"))
    assert ran.code == 0
    ready = next(e for e in ran.events if e["event"] == "gate.ready")
    executed = next(e for e in ran.events if e["event"] == "gate.exec")
    # The gate's own timestamps: STATUS is given up after ~0.25 s (at most 1 s), not after
    # the 5 s --reply-timeout; 3 s leaves 2 s for a loaded CPU and is 2 s short of 5 s.
    assert timestamp(executed) - timestamp(ready) < 3.0, ran.events


def test_long_outage_logs_are_rate_limited_in_a_real_process() -> None:
    """Hundreds of failed attempts: the first 10 are logged, the rest summarised."""
    ran = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(held_closed_port()),
            "--backoff-initial",
            "0.001",
            "--backoff-max",
            "0.005",
            "--timeout",
            "2",
        ]
    )
    assert ran.code == 69
    logged = [e["attempt"] for e in ran.events if e["event"] == "gate.attempt_failed"]
    assert logged[:10] == list(range(1, 11))
    assert len(logged) <= 11
    assert ran.events[-1]["attempts"] > 100


def test_ipv6_loopback_gateway(sim: StartSim) -> None:
    """An IPv6 literal host works end to end."""
    _sim, port = sim(bind="::1")
    ran = run_gate(["wait", "--host", "::1", "--port", str(port), *FAST_WAIT])
    assert ran.code == 0
    assert ran.events[1]["address"] == "::1"


def test_host_name_resolves_each_attempt(sim: StartSim) -> None:
    """`localhost` is resolved and connected; the ready event names the address used."""
    _sim, port = sim()
    ran = run_gate(["wait", "--host", "localhost", "--port", str(port), *FAST_WAIT], env=base_env())
    assert ran.code == 0
    assert ran.events[1]["address"] == "127.0.0.1"
