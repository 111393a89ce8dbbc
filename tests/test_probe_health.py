"""`mt5-gate probe` and `mt5-gate health` against real peers on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
import zmq

from tests import servers
from tests.bounds import EXIT_S
from tests.helpers import GATE, REPO, base_env, free_port, run_on_pty, start_sim


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


def test_health_healthy_and_unhealthy_with_one_short_line() -> None:
    """health: exit 0 with one line when the gateway answers, 1 with one line when not."""
    with simulated() as (port, _pub):
        good = run_cli(["health"], env=base_env(GATEWAY_HOST="127.0.0.1",
                                                GATEWAY_PORT=str(port)))
    bad = run_cli(["health"], env=base_env(GATEWAY_HOST="127.0.0.1",
                                           GATEWAY_PORT=str(free_port())))
    assert good.returncode == 0
    assert good.stdout.startswith("healthy: ")
    assert bad.returncode == 1
    assert bad.stdout.startswith("unhealthy: ")
    for done in (good, bad):
        assert done.stdout.count("\n") == 1
        assert len(done.stdout) <= 201
        assert done.stderr == ""


def test_health_is_bounded_by_its_timeout_not_gate_timeout() -> None:
    """A silent peer: health gives up at GATE_HEALTH_TIMEOUT (0.5 s), ignoring GATE_TIMEOUT."""
    with servers.tcp_server(servers.silent) as port:
        started = time.monotonic()
        done = run_cli(["health"], env=base_env(GATEWAY_HOST="127.0.0.1",
                                                GATEWAY_PORT=str(port), GATE_TIMEOUT="600",
                                                GATE_HEALTH_TIMEOUT="0.5"))
        took = time.monotonic() - started
    assert done.returncode == 1
    assert "no_reply" in done.stdout
    # Given up at the 0.5 s GATE_HEALTH_TIMEOUT (+ start-up: ~0.1 s, ~1.5 s loaded), not at
    # health's 3 s default (never under 3 s, whatever the load) nor GATE_TIMEOUT's 600 s:
    # 2.5 s of room for start-up and exit.
    assert took < 3.0


def test_health_against_a_frozen_gateway_is_no_reply_20_of_20_with_both_cores_busy() -> None:
    """A silent peer (a frozen gateway's kernel accepts, nobody answers) is no_reply every
    time, never a firewall "timeout", even with both cores busy: the connection stage can
    no longer spend the reply stage's share of the budget."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        with servers.tcp_server(servers.silent) as port:
            env = base_env(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(port),
                           GATE_HEALTH_TIMEOUT="1")
            verdicts = []
            for _batch in range(5):  # 4 at a time: 20 runs in about 5 health timeouts
                runs = [subprocess.Popen([*GATE, "health"], env=env, cwd=REPO,
                                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
                        for _ in range(4)]
                verdicts += [run.communicate(timeout=EXIT_S)[0].decode() for run in runs]
    finally:
        for loop in busy:
            loop.kill()
            loop.wait()
    reasons = [line.split()[2].rstrip(":") if line.startswith("unhealthy") else line
               for line in verdicts]
    assert reasons == ["no_reply"] * 20, verdicts


def test_health_misconfiguration_is_1_never_64_or_2() -> None:
    """health with no host or a bad value: exit 1 and one line (Docker knows only 0/1)."""
    missing = run_cli(["health"])
    invalid = run_cli(["health", "--host", "127.0.0.1", "--port", "nope"])
    for done in (missing, invalid):
        assert done.returncode == 1
        assert done.stdout.startswith("unhealthy: ")
        assert done.stdout.count("\n") == 1
