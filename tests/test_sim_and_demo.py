"""The simulated gateway and the README's demo, run for real."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import zmq

from tests.support.bounds import AFTER_SIGNAL_S, COMMAND_S, EVENT_S, EXIT_S
from tests.support.cli import run_gate
from tests.support.helpers import REPO, base_env, poll_until
from tests.support.processes import Spawn, StartSim
from tests.support.sockets import ZmqSockets


def test_sim_answers_ping_and_status_like_the_bridge(
    sim: StartSim, zmq_sockets: ZmqSockets
) -> None:
    """PING → status OK; STATUS → OK with terminal details; unknown → ERROR."""
    _sim, port = sim()
    ping = json.loads(zmq_sockets.request(port, b'{"action": "PING"}'))
    status = json.loads(zmq_sockets.request(port, b'{"action": "STATUS"}'))
    other = json.loads(zmq_sockets.request(port, b'{"action": "NOPE"}'))
    assert ping["status"] == "OK"
    assert status["status"] == "OK"
    assert status["terminal_connected"] is True
    assert other["status"] == "ERROR"


def test_sim_publishes_ticks_and_heartbeats(sim: StartSim, zmq_sockets: ZmqSockets) -> None:
    """The PUB port carries JSON ticks (~10 Hz) and a heartbeat."""
    simulator, _ = sim(wait_listening=False)  # the same argv; its listening awaited here
    pub_port = int(simulator.wait_for_event("sim.listening")["pub_port"])
    sub = zmq_sockets(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    kinds: set[str] = set()
    sub.connect(f"tcp://127.0.0.1:{pub_port}")
    deadline = time.monotonic() + EVENT_S  # ticks at ~10 Hz, a heartbeat each second
    while kinds != {"tick", "heartbeat"} and time.monotonic() < deadline:
        if sub.poll(500):
            message = json.loads(sub.recv())
            kinds.add(message["type"])
            if message["type"] == "tick":
                assert message["ask"] > message["bid"]
    assert kinds == {"tick", "heartbeat"}


def test_sim_start_delay_and_exit_after(sim: StartSim) -> None:
    """--start-delay binds late; --exit-after ends the simulator with code 0."""
    # bind=None: the simulator's own default address, not 127.0.0.1.
    simulator, _ = sim(
        "--start-delay", "0.5", "--exit-after", "1.5", bind=None, wait_listening=False
    )
    event = simulator.wait_for_event("sim.listening")
    starting = simulator.wait_for_event("sim.starting")
    # The simulator's own timestamps, so its start-up (which alone can last 0.5 s) counts
    # for nothing: bound after the 0.5 s delay (a sleep: never sooner), not at once.
    assert timestamp(event) - timestamp(starting) >= 0.5
    assert event["port"] > 0
    assert simulator.wait(timeout=EXIT_S) == 0


def timestamp(event: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(
        str(event["timestamp"]).replace("Z", "+00:00")
    ).timestamp()


def test_sim_reply_delay_slows_replies(sim: StartSim) -> None:
    """--reply-delay holds each answer back; a gate with a short reply timeout sees no_reply."""
    _sim, port = sim("--reply-delay", "1.0")
    impatient = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reply-timeout",
            "0.3",
            "--timeout",
            "0.8",
        ]
    )
    patient = run_gate(["wait", "--host", "127.0.0.1", "--port", str(port), "--reply-timeout", "3"])
    assert impatient.code == 69
    assert {e["reason"] for e in impatient.events if e["event"] == "gate.attempt_failed"} == {
        "no_reply"
    }
    assert patient.code == 0


def test_sim_rejects_bad_flags_with_64() -> None:
    """The simulator's own flags are validated too."""
    ran = run_gate(["sim", "--start-delay", "-3"])
    assert ran.code == 64
    assert ran.events[0]["event"] == "gate.error"


@pytest.mark.timeout(120)  # the backstop behind the COMMAND_S hang guard, not at it
def test_demo_runs_end_to_end_and_exits_cleanly() -> None:
    """scripts/demo.py: the gate waits, execs the runner, ticks are printed, exit 0."""
    done = subprocess.run(
        [sys.executable, "scripts/demo.py"],
        cwd=REPO,
        env=base_env(),
        capture_output=True,
        timeout=COMMAND_S,
        check=False,
    )
    out = done.stdout.decode()
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "gate.attempt_failed" in err
    assert "gate.exec" in err
    assert "received 5 ticks; done" in out


def _descendants(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def test_demo_ctrl_c_leaves_no_orphans(spawn: Spawn) -> None:
    """Ctrl-C (SIGINT to the foreground process group) while the gate waits: all exit."""
    # Its own session: `spawn` kills the whole group (demo, simulator, gate) if it is left.
    demo = spawn([sys.executable, "scripts/demo.py"], env=base_env(), start_new_session=True)
    # Two interpreter start-ups in a row (the demo, then its gate): EVENT_S for each.
    demo.wait_for_stderr("gate.attempt_failed", timeout=2 * EVENT_S)
    children = _descendants(demo.pid)
    assert len(children) == 2  # the simulator (still in its start delay) and the gate
    os.killpg(demo.pid, signal.SIGINT)
    # The demo gives its children 2 s to stop on their own, then 5 s after a SIGTERM.
    assert demo.wait(timeout=AFTER_SIGNAL_S + 2 + 5) == 130
    for child in children:
        poll_until(
            lambda c=child: not os.path.exists(f"/proc/{c}"),  # type: ignore[misc]
            AFTER_SIGNAL_S,
        )
    assert any("gate.signal" in line and "SIGINT" in line for line in demo.stderr_lines)
