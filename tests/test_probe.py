"""`mt5-gate probe` against real peers on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
import zmq

from tests.support import servers
from tests.support.bounds import EXIT_S
from tests.support.helpers import GATE, REPO, base_env, free_port, run_on_pty, start_sim


def run_cli(args: list[str], env: dict[str, str] | None = None,
            timeout: float = EXIT_S) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*GATE, *args], env=env or base_env(), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    assert "Traceback" not in done.stderr + done.stdout
    return done


@contextmanager
def simulated(*args: str) -> Iterator[tuple[int, int]]:
    """A simulated gateway; yields (REP port, PUB port)."""
    sim, port = start_sim(*args)
    try:
        yield port, int(sim.wait_for_event("sim.listening")["pub_port"])
    finally:
        sim.stop()


def probe_json(port: int, pub_port: int, *extra: str) -> tuple[int, dict[str, Any]]:
    done = run_cli(["probe", "--host", "127.0.0.1", "--port", str(port), "--pub-port",
                    str(pub_port), "--json", "--connect-timeout", "0.5", "--reply-timeout", "1",
                    *extra])
    return done.returncode, json.loads(done.stdout)


def statuses(document: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in document["checks"]}


def test_probe_all_layers_pass_against_the_simulator() -> None:
    """DNS, TCP, PING, round trips, STATUS and PUB all pass; exit 0; 6/6."""
    with simulated() as (port, pub_port):
        code, doc = probe_json(port, pub_port)
    assert code == 0
    assert statuses(doc) == {"DNS": "pass", "TCP connect": "pass", "ZeroMQ PING": "pass",
                             "round trip": "pass", "STATUS": "pass", "PUB port": "pass"}
    assert (doc["passed"], doc["total"], doc["troubleshooting"]) == (6, 6, None)
    ping = next(c for c in doc["checks"] if c["name"] == "ZeroMQ PING")
    assert '"status": "OK"' in ping["detail"]
    rtt = next(c for c in doc["checks"] if c["name"] == "round trip")
    assert "min" in rtt["detail"]
    assert "median" in rtt["detail"]
    assert "max" in rtt["detail"]


def test_probe_human_output_has_results_line_and_no_colour_off_tty() -> None:
    """The human report ends with `Results: N/M checks passed` and has no ANSI codes."""
    with simulated() as (port, pub_port):
        done = run_cli(["probe", "--host", "127.0.0.1", "--port", str(port), "--pub-port",
                        str(pub_port)])
    assert done.returncode == 0
    assert "Results: 6/6 checks passed" in done.stdout
    assert "✅ DNS" in done.stdout
    assert "\x1b[" not in done.stdout


def refused_port() -> AbstractContextManager[int]:
    @contextmanager
    def cm() -> Iterator[int]:
        yield free_port()
    return cm()


def sim_port(*args: str) -> Callable[[], AbstractContextManager[int]]:
    @contextmanager
    def cm() -> Iterator[int]:
        with simulated(*args) as (port, _pub):
            yield port
    return cm


@pytest.mark.parametrize(("peer", "layer", "reason", "step"), [
    (refused_port, "TCP connect", "refused", "netstat -an | findstr"),
    # TCP connects; it is the ZeroMQ exchange that finds out what the peer really is.
    (lambda: servers.tcp_server(servers.banner), "ZeroMQ PING", "not_zmq", "netstat -abno"),
    (lambda: servers.tcp_server(servers.reset_at_once), "ZeroMQ PING", "reset", "portproxy"),
    (sim_port("--drop-first", "100"), "ZeroMQ PING", "no_reply", "hung or busy"),
    (sim_port("--garbage"), "ZeroMQ PING", "bad_reply", "UTF-8"),
    (sim_port("--bad-status"), "ZeroMQ PING", "not_ready", "GATE_READY_WHEN"),
    (lambda: servers.zmq_server(zmq.PUB), "ZeroMQ PING", "protocol", "not the PUB port"),
])
def test_probe_explains_each_failure_reason(
        peer: Callable[[], AbstractContextManager[int]], layer: str, reason: str,
        step: str) -> None:
    """Each failure: ❌ on its layer with the reason, steps for that reason, exit 1."""
    with peer() as port:
        code, doc = probe_json(port, free_port())
        human = run_cli(["probe", "--host", "127.0.0.1", "--port", str(port), "--pub-port",
                         str(free_port()), "--connect-timeout", "0.5", "--reply-timeout", "1"])
    assert code == 1
    failed = next(c for c in doc["checks"] if c["name"] == layer)
    assert (failed["status"], failed["reason"]) == ("fail", reason)
    assert doc["troubleshooting"]["reason"] == reason
    assert any(step in s for s in doc["troubleshooting"]["steps"])
    assert human.returncode == 1
    assert f"Troubleshooting ({reason}):" in human.stdout
    assert step in human.stdout
    assert f"docs/TROUBLESHOOTING.md#{reason}" in human.stdout


def test_probe_steps_and_hints_name_the_port_of_the_layer_that_failed() -> None:
    """A dead PUB port: its steps and hint name the PUB port, not the REQ port."""
    pub_port = free_port()
    with simulated() as (port, _pub):
        code, doc = probe_json(port, pub_port)
    assert code == 0  # the PUB port is not part of the exit contract
    trouble = doc["troubleshooting"]
    assert trouble["reason"] == "refused"
    assert any(str(pub_port) in step for step in trouble["steps"])
    assert not any(str(port) in step for step in trouble["steps"])
    assert f"127.0.0.1:{pub_port}" in trouble["hint"]
    pub = next(c for c in doc["checks"] if c["name"] == "PUB port")
    assert f"127.0.0.1:{pub_port}" in pub["hint"]


def test_probe_on_not_ready_shows_the_reply_and_a_one_line_fix() -> None:
    """A bridge saying MAINTENANCE: the reply on the PING line, and a fix that does not
    suggest accepting it."""
    with simulated("--bad-status") as (port, pub_port):
        code, doc = probe_json(port, pub_port)
        human = run_cli(["probe", "--host", "127.0.0.1", "--port", str(port), "--pub-port",
                         str(pub_port)])
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
        code, doc = probe_json(port, free_port())
    status = next(c for c in doc["checks"] if c["name"] == "STATUS")
    assert code == 0
    assert (status["status"], status["reason"]) == ("warn", "not_ready")
    assert "Unknown action: STATUS" in status["detail"]


def test_probe_status_not_implemented_is_a_warning_not_a_failure() -> None:
    """A gateway without STATUS: ⚠️ on STATUS, exit still 0."""
    def reply(req: list[bytes]) -> list[bytes] | None:
        return [b'{"status": "OK"}'] if b"PING" in req[0] else None

    with servers.zmq_server(zmq.ROUTER, reply) as port:
        code, doc = probe_json(port, free_port(), "--reply-timeout", "0.5")
    assert code == 0
    assert statuses(doc)["STATUS"] == "warn"
    assert statuses(doc)["PUB port"] == "fail"  # shown, but not part of the exit contract


def test_probe_colour_on_a_tty_unless_no_color() -> None:
    """On a TTY the status names are coloured; NO_COLOR removes the colour."""
    argv = [*GATE, "probe", "--host", "127.0.0.1", "--port", str(free_port()), "--pub-port",
            str(free_port())]
    code, coloured = run_on_pty(argv, base_env())
    plain_code, plain = run_on_pty(argv, base_env(NO_COLOR="1"))
    assert (code, plain_code) == (1, 1)
    assert "\x1b[31m" in coloured
    assert "\x1b[" not in plain


def test_legacy_probe_script_runs_both_ways_and_imports_cleanly() -> None:
    """scripts/probe_live_gateway.py works as a module and as a file; import is inert."""
    with simulated() as (port, pub_port):
        env = base_env(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(port),
                       GATEWAY_PUB_PORT=str(pub_port))
        as_module = subprocess.run([sys.executable, "-m", "scripts.probe_live_gateway"],
                                   env=env, cwd=REPO, capture_output=True, text=True,
                                   timeout=EXIT_S, check=False)
        as_file = subprocess.run([sys.executable, "scripts/probe_live_gateway.py"], env=env,
                                 cwd=REPO, capture_output=True, text=True, timeout=EXIT_S,
                                 check=False)
    imported = subprocess.run([sys.executable, "-c", "import scripts.probe_live_gateway"],
                              env=base_env(), cwd=REPO, capture_output=True, text=True,
                              timeout=EXIT_S, check=False)
    assert as_module.returncode == as_file.returncode == 0
    assert "Results: 6/6 checks passed" in as_module.stdout
    assert "Results: 6/6 checks passed" in as_file.stdout
    assert (imported.returncode, imported.stdout, imported.stderr) == (0, "", "")
