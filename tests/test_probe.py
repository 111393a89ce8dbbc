"""`mt5-gate probe` against real peers on loopback."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import zmq

from tests.support import servers
from tests.support.bounds import EXIT_S, FAST_ATTEMPT
from tests.support.cli import Ran, run_gate
from tests.support.helpers import REPO, base_env
from tests.support.processes import StartSim
from tests.support.sockets import held_closed_port


def simulated(sim: StartSim, *args: str) -> tuple[int, int]:
    """A simulated gateway (stopped after the test): (REP port, PUB port)."""
    simulator, port = sim(*args)
    return port, int(simulator.wait_for_event("sim.listening")["pub_port"])


def probe(port: int, pub_port: int, *extra: str) -> Ran:
    return run_gate(
        ["probe", "--host", "127.0.0.1", "--port", str(port), "--pub-port", str(pub_port), *extra]
    )


def probe_json(port: int, pub_port: int, *extra: str) -> tuple[int, dict[str, Any]]:
    done = probe(port, pub_port, "--json", *FAST_ATTEMPT, *extra)
    return done.code, json.loads(done.stdout)


def statuses(document: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in document["checks"]}


def test_probe_all_layers_pass_against_the_simulator(sim: StartSim) -> None:
    """DNS, TCP, PING, round trips, STATUS and PUB all pass; exit 0; 6/6."""
    code, doc = probe_json(*simulated(sim))
    assert code == 0
    assert statuses(doc) == {
        "DNS": "pass",
        "TCP connect": "pass",
        "ZeroMQ PING": "pass",
        "round trip": "pass",
        "STATUS": "pass",
        "PUB port": "pass",
    }
    assert (doc["passed"], doc["total"], doc["troubleshooting"]) == (6, 6, None)
    ping = next(c for c in doc["checks"] if c["name"] == "ZeroMQ PING")
    assert '"status": "OK"' in ping["detail"]
    rtt = next(c for c in doc["checks"] if c["name"] == "round trip")
    assert "min" in rtt["detail"]
    assert "median" in rtt["detail"]
    assert "max" in rtt["detail"]


def test_probe_human_output_has_results_line_and_no_colour_off_tty(sim: StartSim) -> None:
    """The human report ends with `Results: N/M checks passed` and has no ANSI codes."""
    done = probe(*simulated(sim))
    assert done.code == 0
    assert "Results: 6/6 checks passed" in done.stdout
    assert "✅ DNS" in done.stdout
    assert "\x1b[" not in done.stdout


# A peer of the test below: its port, from the `sim` fixture or from a server entered into
# the test's stack (both ended after the test).
Peer = Callable[[StartSim, contextlib.ExitStack], int]


def refused_port(_sim: StartSim, _stack: contextlib.ExitStack) -> int:
    return held_closed_port()


def sim_port(*args: str) -> Peer:
    return lambda sim, _stack: simulated(sim, *args)[0]


def server_port(server: Callable[[], contextlib.AbstractContextManager[int]]) -> Peer:
    return lambda _sim, stack: stack.enter_context(server())


@pytest.mark.parametrize(
    ("peer", "layer", "reason", "step"),
    [
        (refused_port, "TCP connect", "refused", "netstat -an | findstr"),
        # TCP connects; it is the ZeroMQ exchange that finds out what the peer really is.
        (
            server_port(lambda: servers.tcp_server(servers.banner)),
            "ZeroMQ PING",
            "not_zmq",
            "netstat -abno",
        ),
        (
            server_port(lambda: servers.tcp_server(servers.reset_at_once)),
            "ZeroMQ PING",
            "reset",
            "portproxy",
        ),
        (sim_port("--drop-first", "100"), "ZeroMQ PING", "no_reply", "hung or busy"),
        (sim_port("--garbage"), "ZeroMQ PING", "bad_reply", "UTF-8"),
        (sim_port("--bad-status"), "ZeroMQ PING", "not_ready", "GATE_READY_WHEN"),
        (
            server_port(lambda: servers.zmq_server(zmq.PUB)),
            "ZeroMQ PING",
            "protocol",
            "not the PUB port",
        ),
    ],
)
def test_probe_explains_each_failure_reason(
    peer: Peer, layer: str, reason: str, step: str, sim: StartSim
) -> None:
    """Each failure: ❌ on its layer with the reason, steps for that reason, exit 1."""
    with contextlib.ExitStack() as stack:
        port = peer(sim, stack)
        code, doc = probe_json(port, held_closed_port())
        human = probe(port, held_closed_port(), *FAST_ATTEMPT)
    assert code == 1
    failed = next(c for c in doc["checks"] if c["name"] == layer)
    assert (failed["status"], failed["reason"]) == ("fail", reason)
    assert doc["troubleshooting"]["reason"] == reason
    assert any(step in s for s in doc["troubleshooting"]["steps"])
    assert human.code == 1
    assert f"Troubleshooting ({reason}):" in human.stdout
    assert step in human.stdout
    assert f"mt5-gate explain --reason {reason}" in human.stdout


def test_probe_steps_and_hints_name_the_port_of_the_layer_that_failed(sim: StartSim) -> None:
    """A dead PUB port: its steps and hint name the PUB port, not the REQ port."""
    pub_port = held_closed_port()
    port, _pub = simulated(sim)
    code, doc = probe_json(port, pub_port)
    assert code == 0  # the PUB port is not part of the exit contract
    trouble = doc["troubleshooting"]
    assert trouble["reason"] == "refused"
    assert any(str(pub_port) in step for step in trouble["steps"])
    assert not any(str(port) in step for step in trouble["steps"])
    assert f"127.0.0.1:{pub_port}" in trouble["hint"]
    pub = next(c for c in doc["checks"] if c["name"] == "PUB port")
    assert f"127.0.0.1:{pub_port}" in pub["hint"]


def test_probe_on_not_ready_shows_the_reply_and_a_one_line_fix(sim: StartSim) -> None:
    """A bridge saying MAINTENANCE: the reply on the PING line, and a fix that does not
    suggest accepting it."""
    port, pub_port = simulated(sim, "--bad-status")
    code, doc = probe_json(port, pub_port)
    human = probe(port, pub_port)
    ping = next(c for c in doc["checks"] if c["name"] == "ZeroMQ PING")
    assert code == 1
    assert (ping["status"], ping["reason"]) == ("fail", "not_ready")
    assert "MAINTENANCE" in ping["detail"]
    assert "refuses" in doc["troubleshooting"]["fix"]
    assert "fix: " in human.stdout
    assert "MAINTENANCE" in human.stdout


def test_probe_status_refusal_is_a_warning_with_the_reply() -> None:
    """STATUS answered with an error: ⚠️ with the reply shown, never ✅."""

    def reply(req: list[bytes]) -> list[bytes] | None:
        if b"PING" in req[0]:
            return [b'{"status": "OK"}']
        return [b'{"status": "ERROR", "error": "Unknown action: STATUS"}']

    with servers.zmq_server(zmq.ROUTER, reply) as port:
        code, doc = probe_json(port, held_closed_port())
    status = next(c for c in doc["checks"] if c["name"] == "STATUS")
    assert code == 0
    assert (status["status"], status["reason"]) == ("warn", "not_ready")
    assert "Unknown action: STATUS" in status["detail"]


def test_probe_status_not_implemented_is_a_warning_not_a_failure() -> None:
    """A gateway without STATUS: ⚠️ on STATUS, exit still 0."""

    def reply(req: list[bytes]) -> list[bytes] | None:
        return [b'{"status": "OK"}'] if b"PING" in req[0] else None

    with servers.zmq_server(zmq.ROUTER, reply) as port:
        code, doc = probe_json(port, held_closed_port(), "--reply-timeout", "0.5")
    assert code == 0
    assert statuses(doc)["STATUS"] == "warn"
    assert statuses(doc)["PUB port"] == "fail"  # shown, but not part of the exit contract


def test_probe_colour_on_a_tty_unless_no_color() -> None:
    """On a TTY the status names are coloured; NO_COLOR removes the colour."""
    args = [
        "probe",
        "--host",
        "127.0.0.1",
        "--port",
        str(held_closed_port()),
        "--pub-port",
        str(held_closed_port()),
    ]
    coloured = run_gate(args, base_env(), tty="stdout")
    plain = run_gate(args, base_env(NO_COLOR="1"), tty="stdout")
    assert (coloured.code, plain.code) == (1, 1)
    assert "\x1b[31m" in coloured.stdout
    assert "\x1b[" not in plain.stdout


def test_legacy_probe_script_runs_both_ways_and_imports_cleanly(sim: StartSim) -> None:
    """scripts/probe_live_gateway.py works as a module and as a file; import is inert."""
    port, pub_port = simulated(sim)
    env = base_env(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(port), GATEWAY_PUB_PORT=str(pub_port))
    as_module = subprocess.run(
        [sys.executable, "-m", "scripts.probe_live_gateway"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=EXIT_S,
        check=False,
    )
    as_file = subprocess.run(
        [sys.executable, "scripts/probe_live_gateway.py"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=EXIT_S,
        check=False,
    )
    imported = subprocess.run(
        [sys.executable, "-c", "import scripts.probe_live_gateway"],
        env=base_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=EXIT_S,
        check=False,
    )
    assert as_module.returncode == as_file.returncode == 0
    assert "Results: 6/6 checks passed" in as_module.stdout
    assert "Results: 6/6 checks passed" in as_file.stdout
    assert (imported.returncode, imported.stdout, imported.stderr) == (0, "", "")
