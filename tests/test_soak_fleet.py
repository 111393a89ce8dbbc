"""Soak and fleet: a long run of failures leaks nothing, and a hundred gates restarted
together neither storm the gateway nor lag behind it."""

from __future__ import annotations

import datetime
import sys
import time
from typing import Any

import pytest

from tests.support.bounds import COMMAND_S, EVENT_S, SOAK_S, SOAK_WAIT
from tests.support.fault_injection import RUN
from tests.support.helpers import free_port, parse_lines, poll_until
from tests.support.processes import Proc, Spawn, StartGate, StartSim
from tests.support.sockets import held_closed_port

pytestmark = pytest.mark.timeout(180)


def resources(pid: int) -> dict[str, int]:
    """Open fds, threads and RSS (KiB) of a live process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    import os

    return {
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"].strip()),
        "rss_kb": int(fields["VmRSS"].split()[0]),
    }


def baseline(pid: int, samples: int = 200) -> dict[str, int]:
    """The least of each resource over back-to-back samples: what stays held."""
    taken = [resources(pid) for _ in range(samples)]
    return {key: min(sample[key] for sample in taken) for key in taken[0]}


# The most descriptors one attempt holds at once: its REQ socket's mailbox, the monitor's
# two PAIR sockets, the TCP connection, and the diagnostic connect() of a refused one (5),
# with margin. A sample that lands inside an attempt (on a loaded machine every sample
# may) reads at most this many above the floor: scheduling noise is bounded by it,
# whatever the load. A leak is not: it grows with the number of attempts, and a soak of
# 1,000+ attempts leaking one descriptor per 100 grows by 10 or more.
NOISE_FDS = 8


def soak(proc: Proc) -> tuple[int, dict[str, int], dict[str, int]]:
    """(attempts, resources early, resources late) of a gate failing fast for SOAK_S."""
    poll_until(lambda: time.monotonic() - proc.started > 2.0, EVENT_S)
    early = baseline(proc.pid)
    # SOAK_S (15 s) of attempts: ~5,000 idle and ~3,000 with both cores busy (a 1-3 ms
    # backoff); the floor is sampled a second before the deadline, so the process is still
    # there.
    poll_until(lambda: time.monotonic() - proc.started > SOAK_S - 1.0, SOAK_S + 5.0)
    late = baseline(proc.pid)
    assert proc.wait(timeout=SOAK_S + 5.0) == 69
    attempts = int(proc.events()[-1]["attempts"])
    print(f"FIGURE soak: {attempts} attempts; early {early}; late {late}")
    return attempts, early, late


SOAK_ARGS = ("wait", "--host", "127.0.0.1", *SOAK_WAIT, "--log-level", "error")


def test_a_thousand_failed_attempts_leak_no_fd_thread_or_memory(gate: StartGate) -> None:
    """1,000+ refused attempts with a fast backoff: fds, threads and RSS stay flat."""
    attempts, early, late = soak(gate(*SOAK_ARGS, "--port", str(held_closed_port())))
    assert attempts >= 1000
    assert late["fds"] - early["fds"] <= NOISE_FDS
    assert late["threads"] <= early["threads"] + 1
    assert late["rss_kb"] - early["rss_kb"] < 4 * 1024


def test_the_soak_test_catches_a_leak_of_one_descriptor_per_100_attempts(spawn: Spawn) -> None:
    """The same soak, with a leak injected into the real gate: the check above fails."""
    proc = spawn(
        [sys.executable, "-c", RUN, "leak-fd", *SOAK_ARGS, "--port", str(held_closed_port())]
    )
    attempts, early, late = soak(proc)
    assert attempts >= 1000
    assert late["fds"] - early["fds"] > NOISE_FDS


def _when(event: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def _requests(sim: Proc, action: str) -> int:
    return sum(action in str(e.get("request")) for e in sim.events() if e["event"] == "sim.request")


def test_a_fleet_of_100_gates_gets_through_together_without_a_retry_storm(
    sim: StartSim, gate: StartGate
) -> None:
    """100 gates start together and wait; then the gateway binds. Every gate is ready within
    1 s of the bind, the gateway sees at most 2 PINGs per gate, and the gates' backoff
    pauses differ (jitter drawn per process)."""
    fleet_size = 100
    port = free_port()
    gates = [
        gate("wait", "--host", "127.0.0.1", "--port", str(port), "--timeout", "90")
        for _ in range(fleet_size)
    ]
    # The gateway binds only once every gate is waiting, three attempts refused: starting
    # 100 interpreters on 2 cores takes 5-15 s, and a gate that starts after the bind is
    # start-up, not the fleet behaviour under test (a fixed 10 s delay was not always
    # enough on a loaded machine: one gate started 4.4 s after the bind).
    poll_until(
        lambda: all(
            sum(e["event"] == "gate.attempt_failed" for e in g.events()) >= 3 for g in gates
        ),
        COMMAND_S,
    )
    simulator, _ = sim(
        "--port", str(port), "--pub-port", "0", "--tick-hz", "0", wait_listening=False
    )
    codes = [g.wait(timeout=COMMAND_S) for g in gates]
    outputs = ["\n".join(g.stderr_lines) for g in gates]
    bound = _when(simulator.wait_for_event("sim.listening"))
    # Wait until the simulator has logged every request the gates know it answered: a
    # PING per gate, and a STATUS per gate whose gate.status says it was available.
    # (A STATUS that timed out was abandoned on a LINGER 0 socket: it may never have
    # been delivered, and nothing promises it was.)
    answered_status = sum('"available": true' in out for out in outputs)
    poll_until(
        lambda: (
            _requests(simulator, "PING") >= fleet_size
            and _requests(simulator, "STATUS") >= answered_status
        ),
        20,
    )
    simulator.stop()  # here, not at teardown: the PINGs below are counted from its whole log
    assert codes == [0] * fleet_size
    logs = [parse_lines(out) for out in outputs]
    lags = [_when(next(e for e in log if e["event"] == "gate.ready")) - bound for log in logs]
    pings = _requests(simulator, "PING")
    # Pauses are logged to the millisecond, so single values collide by chance (the birthday
    # problem); the first three pauses of a gate, together, identify its random stream.
    first_pauses = {
        tuple(e["next_retry_s"] for e in log if e["event"] == "gate.attempt_failed")[:3]
        for log in logs
    }
    print(
        f"FIGURE fleet: ready lag after bind max {max(lags) * 1000:.0f} ms, "
        f"median {sorted(lags)[len(lags) // 2] * 1000:.0f} ms; {pings} PINGs for "
        f"{fleet_size} gates; {len(first_pauses)} distinct backoff sequences"
    )
    # Each gate noticed the bind during the backoff pause it was in (its queued PING was
    # answered), before the attempt that pause led to: ready before that attempt's time,
    # whatever the machine's load. How soon after the bind is a figure (printed above;
    # benchmarks/ measures it), not a bound here: 0.5 s idle, 0.8 s with both cores busy.
    pausing = 0
    for log in logs:
        ready = next(e for e in log if e["event"] == "gate.ready")
        last_failure = [e for e in log if e["event"] == "gate.attempt_failed"][-1]
        next_attempt = _when(last_failure) + float(last_failure["next_retry_s"])
        # A pause with more than a second left at the bind: its queued PING, reconnecting
        # every 50-200 ms, has five chances or more before the attempt comes.
        if next_attempt - bound > 1.0:
            pausing += 1
            assert ready["via"] == "pause", (bound, ready, last_failure)
            assert _when(ready) < next_attempt, (bound, ready, last_failure)
    # After three refusals a pause is 1-4 s long, so most gates are in one at the bind: the
    # check above ran for many of them, not a lucky few.
    assert pausing >= fleet_size // 4, pausing
    assert pings <= 2 * fleet_size
    assert len(first_pauses) >= fleet_size * 0.9
