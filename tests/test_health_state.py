"""`mt5-gate health` while `mt5-gate wait` still waits: the gate's state file comes first.

A passive check of a two-socket bridge (nothing sent) cannot see that the bridge answers
"no broker"; the waiting gate can, and says so in its state file (entrypoint/process/gatestate.py),
which health trusts only while the gate holds its lock and only for its own target.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.standins.client import StandIn
from tests.support.bounds import (
    AFTER_SIGNAL_S,
    EVENT_S,
    EXIT_S,
    NEVER_READY_S,
    NEVER_READY_WAIT,
    WATCHED_BACKOFF,
    after_deadline,
)
from tests.support.cli import Ran, run_gate
from tests.support.helpers import base_env, poll_until
from tests.support.processes import Proc, StartGate, StartSim, StartStandIn
from tests.support.sockets import held_closed_port

# A runner that stays up after the exec until it is killed (at the end of the test).
LASTING_RUNNER = [
    sys.executable,
    "-c",
    "import signal; print('runner up', flush=True); signal.pause()",
]
WAITING = "the gate is still waiting"


def health(env: dict[str, str]) -> Ran:
    """One `mt5-gate health` with ``env``; its contract checked on every run."""
    ran = run_gate(["health"], env)
    assert ran.code in (0, 1), ran
    assert ran.stdout.count("\n") == 1, ran.stdout
    assert len(ran.stdout) <= 201, ran.stdout
    return ran


def health_until(
    env: dict[str, str], wanted: Callable[[Ran], bool], timeout: float = EVENT_S
) -> Ran:
    """Run health until its verdict is ``wanted`` (the gate reaches that state within its
    first attempts, well inside ``timeout``); fail with the last verdict seen."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        ran = health(env)
        seen.append(f"{ran.code} {ran.stdout.strip()}")
        if wanted(ran):
            return ran
        if time.monotonic() > deadline:
            pytest.fail(
                f"health never gave the wanted verdict in {timeout} s; last seen:\n"
                + "\n".join(seen[-3:])
            )


def says_waiting(ran: Ran) -> bool:
    return ran.code == 1 and WAITING in ran.stdout


def says_why_it_waits(ran: Ran) -> bool:
    """Waiting, and an attempt already told why (before it, health says "starting": on a
    loaded machine the first attempt can take a while)."""
    return says_waiting(ran) and "(attempt " in ran.stdout


def dwx(standin: StartStandIn, *extra: str) -> tuple[StandIn, dict[str, str]]:
    ea = standin("dwx_ea", "--pull-port", "0", "--push-port", "0", "--pub-port", "0", *extra)
    return ea, {
        "GATE_BRIDGE": "dwx",
        "GATEWAY_PORT": str(ea.ports["pull"]),
        "GATEWAY_REPLY_PORT": str(ea.ports["push"]),
        "GATEWAY_PUB_PORT": str(ea.ports["pub"]),
    }


def json_api(standin: StartStandIn, *extra: str) -> tuple[StandIn, dict[str, str]]:
    ea = standin(
        "json_api_ea",
        "--system-port",
        "0",
        "--data-port",
        "0",
        "--live-port",
        "0",
        "--stream-port",
        "0",
        *extra,
    )
    return ea, {
        "GATE_BRIDGE": "mql5-json-api",
        "GATEWAY_PORT": str(ea.ports["system"]),
        "GATEWAY_REPLY_PORT": str(ea.ports["data"]),
    }


# What each refusing bridge's state is called (a plain REP answering MAINTENANCE: none).
BROKER_STATES = {"dwx": "no_broker_connection", "mql5-json-api": "algo_trading_off", "req": None}


@pytest.mark.parametrize("bridge", list(BROKER_STATES))
def test_health_says_the_gate_is_still_waiting_for_a_refusing_bridge(
    bridge: str, tmp_path: Path, standin: StartStandIn, sim: StartSim, gate: StartGate
) -> None:
    """A bridge that answers "not ready" (DWX without a broker connection, MQL5-JSON-API
    with AutoTrading off, a REP answering MAINTENANCE): health exits 1 with the wait's own
    reason, attempt and broker state, where a passive check saw a healthy handshake."""
    if bridge == "dwx":
        _ea, ports = dwx(standin, "--fail", "NO_BROKER_CONNECTION")
    elif bridge == "mql5-json-api":
        _ea, ports = json_api(standin, "--trading-allowed", "0")
    else:
        _sim, port = sim("--bad-status")
        ports = {"GATEWAY_PORT": str(port)}
    env = base_env(GATEWAY_HOST="127.0.0.1", GATE_STATE_FILE=str(tmp_path / "gate.state"), **ports)
    waiting = gate("wait", *WATCHED_BACKOFF, "--", *LASTING_RUNNER, env=env)
    ran = health_until(env, says_why_it_waits)
    target = f"127.0.0.1:{ports['GATEWAY_PORT']}"
    broker_state = BROKER_STATES[bridge]
    assert ran.stdout.startswith(f"unhealthy: {target} {WAITING} (attempt "), ran.stdout
    assert ", not_ready since " in ran.stdout, ran.stdout
    assert (f"broker_state {broker_state}" in ran.stdout) == (broker_state is not None), ran.stdout
    assert waiting.popen.poll() is None, waiting.stderr_lines[-5:]


def test_health_names_the_also_dependency_the_gate_still_waits_for(
    tmp_path: Path, sim: StartSim, gate: StartGate
) -> None:
    """The gateway answers but an --also dependency is down: health names the dependency
    (a check of the gateway alone would say healthy)."""
    _sim, port = sim()
    down = f"tcp://127.0.0.1:{held_closed_port()}"
    env = base_env(
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(port),
        GATE_ALSO=down,
        GATE_STATE_FILE=str(tmp_path / "gate.state"),
    )
    proc = gate("wait", *WATCHED_BACKOFF, "--", *LASTING_RUNNER, env=env)
    proc.wait_for_event("gate.ready")
    ran = health_until(env, says_why_it_waits)
    assert ran.stdout.startswith(f"unhealthy: 127.0.0.1:{port} {WAITING} for {down} (attempt "), (
        ran.stdout
    )
    assert "refused since" in ran.stdout, ran.stdout


def test_a_state_file_left_by_a_killed_gate_is_ignored(
    tmp_path: Path, sim: StartSim, gate: StartGate
) -> None:
    """SIGKILL leaves the file behind, but nobody holds its lock any more: health does its
    usual check (the gateway answers: healthy), not what the dead gate last said."""
    _sim, port = sim()
    state = tmp_path / "gate.state"
    env = base_env(
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(port),
        GATE_ALSO=f"tcp://127.0.0.1:{held_closed_port()}",
        GATE_STATE_FILE=str(state),
    )
    proc = gate("wait", *WATCHED_BACKOFF, "--", *LASTING_RUNNER, env=env)
    health_until(env, says_waiting)
    proc.popen.send_signal(signal.SIGKILL)
    assert proc.popen.wait(AFTER_SIGNAL_S) == -signal.SIGKILL
    assert state.exists()  # nobody removed it: only its lock went with the gate
    ran = health(env)
    assert ran.code == 0, ran.stdout
    assert ran.stdout.startswith(f"healthy: 127.0.0.1:{port} answered PING in "), ran.stdout


def test_two_gates_on_one_host_each_health_reads_its_own_gate(
    sim: StartSim, gate: StartGate
) -> None:
    """No GATE_STATE_FILE (the files in /dev/shm, found with no configuration): two gates
    for different gateways, each waiting for a different dependency; each health names its
    own gate's dependency, never the other's."""
    waits = []
    for _gate in range(2):
        _sim, port = sim()
        down = f"tcp://127.0.0.1:{held_closed_port()}"
        env = base_env(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(port), GATE_ALSO=down)
        gate("wait", *WATCHED_BACKOFF, "--", *LASTING_RUNNER, env=env)
        waits.append((env, port, down))
    for env, port, down in waits:
        ran = health_until(env, says_waiting)
        assert ran.stdout.startswith(f"unhealthy: 127.0.0.1:{port} {WAITING} for {down} "), (
            ran.stdout
        )


def test_after_the_exec_health_checks_as_before(
    tmp_path: Path, standin: StartStandIn, gate: StartGate
) -> None:
    """DWX refusing, then the terminal logs in: unhealthy (the gate waits), then the runner
    is exec'd and stays up, the file is gone and health is the passive check it always was
    (healthy)."""
    terminal = tmp_path / "dwx_state"
    terminal.write_text("NO_BROKER_CONNECTION\n")
    _ea, ports = dwx(standin, "--state-file", str(terminal))
    state = tmp_path / "gate.state"
    env = base_env(GATEWAY_HOST="127.0.0.1", GATE_STATE_FILE=str(state), **ports)
    proc = gate("wait", *WATCHED_BACKOFF, "--", *LASTING_RUNNER, env=env)
    health_until(env, says_waiting)
    terminal.write_text("\n")
    proc.wait_for_stdout("runner up")
    assert not state.exists()
    ran = health(env)
    assert ran.code == 0, ran.stdout
    assert "(passive: nothing sent)" in ran.stdout, ran.stdout
    assert proc.popen.poll() is None  # the runner, in the gate's PID


def test_health_after_a_plain_exec_says_the_request_by_its_name(
    sim: StartSim, gate: StartGate
) -> None:
    """On a REQ gateway after the exec: the active check as before, the request named as
    it is (a preset's GET_SYMBOL_INFO, not "PING")."""
    _sim, port = sim("--dialect", "trade-on-action")
    env = base_env(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(port), GATE_BRIDGE="trade-on-action")
    proc = gate("wait", *WATCHED_BACKOFF, "--", *LASTING_RUNNER, env=env)
    proc.wait_for_stdout("runner up")
    ran = health(env)
    assert ran.code == 0, ran.stdout
    assert ran.stdout.startswith(f"healthy: 127.0.0.1:{port} answered GET_SYMBOL_INFO in "), (
        ran.stdout
    )


@pytest.mark.parametrize("where", ["missing-directory", "read-only-file-system"])
def test_a_state_file_that_cannot_be_created_is_one_warning_and_the_wait_goes_on(
    where: str, tmp_path: Path, sim: StartSim
) -> None:
    """GATE_STATE_FILE where nothing can be created: one gate.state_unavailable warning
    naming the path, and the wait still ends ready (exit 0), never 70."""
    path = (
        str(tmp_path / "no" / "such" / "gate.state")
        if where == "missing-directory"
        else "/proc/mt5-gate.state"
    )
    _sim, port = sim()
    ran = run_gate(
        ["wait"],
        base_env(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(port), GATE_STATE_FILE=path),
        timeout=EXIT_S,
    )
    warnings = [e for e in ran.events if e["event"] == "gate.state_unavailable"]
    assert ran.code == 0, ran.stderr
    assert [w["path"] for w in warnings] == [path], ran.stderr
    assert "health" in warnings[0]["error"]
    assert [e["event"] for e in ran.events][-2:] == ["gate.ready", "gate.status"]


def test_the_state_file_is_removed_at_every_exit(tmp_path: Path, gate: StartGate) -> None:
    """A gate stopped by SIGTERM while it waits (exit 143) removes its file; so does one
    that times out (69)."""
    for how in ("sigterm", "timeout"):
        state = tmp_path / f"{how}.state"
        env = base_env(
            GATEWAY_HOST="127.0.0.1",
            GATEWAY_PORT=str(held_closed_port()),
            GATE_STATE_FILE=str(state),
        )
        proc: Proc = gate(
            "wait", *(WATCHED_BACKOFF if how == "sigterm" else NEVER_READY_WAIT), env=env
        )
        poll_until(state.exists, EVENT_S)
        if how == "sigterm":
            proc.signal(signal.SIGTERM)
        assert proc.wait(after_deadline(NEVER_READY_S)) == (143 if how == "sigterm" else 69)
        assert not state.exists(), how
        assert not os.path.exists(f"{state}.{proc.pid}.new"), how
