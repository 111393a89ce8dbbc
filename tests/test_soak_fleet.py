"""Soak and fleet: a long run of failures leaks nothing, and a hundred gates restarted
together neither storm the gateway nor lag behind it."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest

from tests.helpers import Proc, StartGate, StartSim, free_port, parse_lines, poll_until

pytestmark = pytest.mark.timeout(180)


def resources(pid: int) -> dict[str, int]:
    """Open fds, threads and RSS (KiB) of a live process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    import os

    return {"fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": int(fields["Threads"].strip()),
            "rss_kb": int(fields["VmRSS"].split()[0])}


def test_a_thousand_failed_attempts_leak_no_fd_thread_or_memory(gate: StartGate) -> None:
    """1,000+ refused attempts with a fast backoff: fds, threads and RSS stay flat."""
    proc = gate("wait", "--host", "127.0.0.1", "--port", str(free_port()),
                "--backoff-initial", "0.001", "--backoff-max", "0.003", "--timeout", "9",
                "--log-level", "error")
    poll_until(lambda: time.monotonic() - proc.started > 2.0, 10)
    early = resources(proc.pid)
    poll_until(lambda: time.monotonic() - proc.started > 8.5, 15)
    late = resources(proc.pid)
    assert proc.wait(timeout=20) == 69
    attempts = proc.events()[-1]["attempts"]
    print(f"FIGURE soak: {attempts} attempts; early {early}; late {late}")
    assert attempts >= 1000
    assert late["fds"] <= early["fds"] + 1
    assert late["threads"] <= early["threads"] + 1
    assert late["rss_kb"] - early["rss_kb"] < 4 * 1024


def _when(event: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def _requests(sim: Proc, action: str) -> int:
    return sum(action in str(e.get("request")) for e in sim.events()
               if e["event"] == "sim.request")


def test_a_fleet_of_100_gates_gets_through_together_without_a_retry_storm(
        sim: StartSim, gate: StartGate) -> None:
    """100 gates start together; the gateway binds after 10 s. Every gate is ready within
    1 s of the bind, the gateway sees at most 2 PINGs per gate, and the gates' backoff
    pauses differ (jitter drawn per process)."""
    fleet_size = 100
    port = free_port()
    simulator, _ = sim("--port", str(port), "--pub-port", "0", "--tick-hz", "0",
                       "--start-delay", "10", wait_listening=False)
    gates = [gate("wait", "--host", "127.0.0.1", "--port", str(port), "--timeout", "60")
             for _ in range(fleet_size)]
    codes = [g.wait(timeout=90) for g in gates]
    outputs = ["\n".join(g.stderr_lines) for g in gates]
    bound = _when(simulator.wait_for_event("sim.listening"))
    # Wait until the simulator has logged every request the gates know it answered: a
    # PING per gate, and a STATUS per gate whose gate.status says it was available.
    # (A STATUS that timed out was abandoned on a LINGER 0 socket: it may never have
    # been delivered, and nothing promises it was.)
    answered_status = sum('"available": true' in out for out in outputs)
    poll_until(lambda: _requests(simulator, "PING") >= fleet_size
               and _requests(simulator, "STATUS") >= answered_status, 20)
    simulator.stop()  # here, not at teardown: the PINGs below are counted from its whole log
    assert codes == [0] * fleet_size
    logs = [parse_lines(out) for out in outputs]
    lags = [_when(next(e for e in log if e["event"] == "gate.ready")) - bound for log in logs]
    pings = _requests(simulator, "PING")
    # Pauses are logged to the millisecond, so single values collide by chance (the birthday
    # problem); the first three pauses of a gate, together, identify its random stream.
    first_pauses = {tuple(e["next_retry_s"] for e in log
                          if e["event"] == "gate.attempt_failed")[:3] for log in logs}
    print(f"FIGURE fleet: ready lag after bind max {max(lags) * 1000:.0f} ms, "
          f"median {sorted(lags)[len(lags) // 2] * 1000:.0f} ms; {pings} PINGs for "
          f"{fleet_size} gates; {len(first_pauses)} distinct backoff sequences")
    assert max(lags) < 1.0
    assert pings <= 2 * fleet_size
    assert len(first_pauses) >= fleet_size * 0.9
