"""`mt5-gate mesh`: every dependency at once, with real Redis, PostgreSQL and peers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import zmq

from entrypoint.addresses import redact_url
from entrypoint.checks import SKIP, WARN, Check, run_check
from entrypoint.deadline import Deadline
from entrypoint.errors import NotPermitted
from entrypoint.targets.services import check_redis
from tests.support import servers
from tests.support.bounds import COMMAND_S, EVENT_S
from tests.support.cli import run_gate
from tests.support.helpers import base_env, skip_or_fail
from tests.support.processes import StartSim
from tests.support.real_servers import PG_PASSWORD, postgres_server, redis_server
from tests.support.sockets import held_closed_port


def mesh(args: list[str], env: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    """``mesh --json ARGS``: (exit code, its document, all it printed)."""
    done = run_gate(["mesh", "--json", *args], env, timeout=COMMAND_S)
    return done.code, json.loads(done.stdout), done.stdout + done.stderr


def simulated(sim: StartSim) -> tuple[int, int]:
    """A simulated gateway (stopped after the test): (REP port, PUB port)."""
    simulator, port = sim()
    return port, int(simulator.wait_for_event("sim.listening")["pub_port"])


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in doc["checks"]}


def test_full_mesh_with_real_redis_and_postgres_passes(sim: StartSim) -> None:
    """Gateway REQ and PUB, Redis PING, PostgreSQL SELECT 1, HTTP-free: all pass, exit 0."""
    port, pub_port = simulated(sim)
    with redis_server("r3dis-pw") as redis_url, postgres_server() as pg_url:
        env = base_env(
            GATEWAY_HOST="127.0.0.1",
            GATEWAY_PORT=str(port),
            GATEWAY_PUB_PORT=str(pub_port),
            REDIS_URL=redis_url,
            DATABASE_URL=pg_url,
        )
        code, doc, text = mesh([], env)
    checks = by_name(doc)
    failed = {n: c["detail"] for n, c in checks.items() if c["status"] not in ("pass", "skip")}
    assert failed == {}
    assert code == 0
    assert doc["passed"] == doc["counted"]
    assert doc["score"] == f"{doc['passed']}/{doc['counted']}"
    assert {c["phase"] for c in doc["checks"]} >= {"local", "application"}
    assert any(n.startswith("redis ") for n in checks)
    assert any(n.startswith("postgresql ") for n in checks)
    assert "r3dis-pw" not in text
    assert PG_PASSWORD not in text


def test_dead_targets_cost_the_longest_timeout_not_the_sum(tmp_path: Path) -> None:
    """Five silent targets of 1.5 s each finish together (sequentially: 7.5 s); exit 1."""
    with servers.tcp_server(servers.silent) as silent_port:
        checks = "\n".join(
            f'[[check]]\nkind = "http"\ntarget = "http://127.0.0.1:{silent_port}/{i}"\n'
            f"timeout = 1.5\n"
            for i in range(5)
        )
        mesh_file = tmp_path / "mesh.toml"
        mesh_file.write_text(f"include_defaults = false\n{checks}")
        code, doc, _ = mesh(["--file", str(mesh_file)], base_env())
    assert code == 1  # none of them is critical
    assert [c["status"] for c in doc["checks"]] == ["fail"] * 5
    assert all(c["reason"] == "no_reply" for c in doc["checks"])
    assert doc["score"] == "0/5"
    # The mesh's own clock (a wall clock here would add a start-up of up to ~1.5 s loaded):
    # concurrent is ~1.5 s (one timeout), sequential 7.5 s (the sum), two at a time 4.5 s;
    # 3.75 s is halfway to the sum and leaves 2.25 s for a loaded CPU.
    assert doc["wall_ms"] < 7500 / 2, doc


def test_gateway_down_is_critical_exit_2() -> None:
    """The gateway PING is critical by default: its failure makes the mesh exit 2."""
    env = base_env(
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(held_closed_port()),
        GATEWAY_PUB_PORT=str(held_closed_port()),
    )
    code, doc, _ = mesh([], env)
    assert code == 2
    ping = next(c for c in doc["checks"] if c["name"].startswith("gateway PING"))
    assert (ping["status"], ping["reason"], ping["critical"]) == ("fail", "refused", True)
    assert "mt5-gate explain --reason refused" in ping["hint"]


def test_human_table_groups_phases_and_prints_a_score(sim: StartSim) -> None:
    """The human output has a section per phase and `Score: N/M (P%)`."""
    port, pub_port = simulated(sim)
    env = base_env(
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(port),
        GATEWAY_PUB_PORT=str(pub_port),
        GATE_MESH_TCP=f"127.0.0.1:{held_closed_port()}",
    )
    done = run_gate(["mesh"], env, timeout=COMMAND_S)
    assert done.code == 1
    for title in ("Local environment", "Network", "Application ports", "External"):
        assert title in done.stdout
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("Score: ")
    assert "%)" in last
    assert "partial" in last


def test_missing_gateway_host_is_reported_as_a_failed_critical_check() -> None:
    """No GATEWAY_HOST at all: the env check fails (critical), exit 2, no crash."""
    code, doc, _ = mesh([], base_env())
    assert code == 2
    env_check = by_name(doc)["env GATEWAY_HOST"]
    assert (env_check["status"], env_check["critical"]) == ("fail", True)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[[check]]\nkind = 'telnet'\ntarget = 'x'\n", "kind must be one of"),
        ("[[check]]\nkind = 'tcp'\n", "target must be a non-empty string"),
        ("[[check]]\nkind = 'tcp'\ntarget = 'nohostport'\n", "expected host:port"),
        ("[[check]]\nkind = 'tcp'\ntarget = 'h:1'\ntimeout = -1\n", "seconds > 0"),
        ("this is = = not toml", "invalid TOML"),
        ("surprise = 1\n", "unknown keys"),
        ("[[check]]\nkind = 'redis'\ntarget = 'http://x'\n", "redis or rediss URL"),
    ],
)
def test_bad_mesh_file_is_a_one_line_usage_error(
    tmp_path: Path, content: str, message: str
) -> None:
    """Every mistake in the mesh file: exit 64 and one gate.error line saying where."""
    mesh_file = tmp_path / "mesh.toml"
    mesh_file.write_text(content)
    done = run_gate(["mesh", "--file", str(mesh_file)], log="text")
    assert done.code == 64
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["event"] == "gate.error"
    assert message in event["error"]


def test_mesh_file_from_environment_and_missing_file() -> None:
    """GATE_MESH_FILE names the file; a missing one is a usage error."""
    done = run_gate(["mesh"], base_env(GATE_MESH_FILE="/nonexistent.toml"), log="text")
    assert done.code == 64
    assert "GATE_MESH_FILE" in done.stderr


def test_redis_auth_failure_is_reported_without_the_password() -> None:
    """A wrong Redis password: reason auth; neither password appears anywhere."""
    with redis_server("right-pw") as url:
        wrong = url.replace("right-pw", "wrong-pw")
        env = base_env(REDIS_URL=wrong)
        code, doc, text = mesh([], env)
    redis_check = next(c for c in doc["checks"] if c["name"].startswith("redis"))
    assert (redis_check["status"], redis_check["reason"]) == ("fail", "auth")
    assert "wrong-pw" not in text
    assert "right-pw" not in text
    assert ":***@" in redis_check["name"]
    assert code == 2  # GATEWAY_HOST is not set either


def test_missing_client_library_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without redis-py the check warns with the pip command.

    The library is installed in the test venv, so its absence is simulated by blocking the
    import (sys.modules[name] = None makes `import` raise ImportError, as when missing).
    """
    monkeypatch.setitem(sys.modules, "redis", None)
    result = run_check(
        Check("redis", "application", lambda t: check_redis("redis://127.0.0.1:1/0", t), 1.0)
    )
    assert result.status == WARN
    assert "pip install 'mt5-gate[mesh]'" in result.detail


def test_a_check_that_is_not_permitted_is_skipped_not_failed() -> None:
    """A check that may not run here (ICMP without CAP_NET_RAW) is skipped, not failed.
    The ICMP socket's own refusal cannot be produced for root, so the check raises it."""

    def not_allowed(_deadline: Deadline) -> str:
        raise NotPermitted("ICMP not permitted here")

    result = run_check(Check("icmp gw", "network", not_allowed, 1.0))
    assert result.status == SKIP
    assert result.detail.startswith("not permitted")


def test_icmp_echo_to_loopback_for_real() -> None:
    """The ICMP check really pings 127.0.0.1 when the process may (root or ping group)."""
    from entrypoint.targets.icmp import echo

    try:
        rtt = echo("127.0.0.1", Deadline(EVENT_S))  # the hang guard: a lost echo raises
    except NotPermitted as exc:
        skip_or_fail(f"ICMP not permitted for this user: {exc}")
        return
    # In ms: a measured loopback round trip (well under 1 ms, tens of ms loaded), neither 0
    # nor garbage (seconds since boot, or longer than the EVENT_S it was given to arrive).
    assert 0 < rtt < EVENT_S * 1000


def test_redact_url_hides_only_the_password() -> None:
    """User names and hosts stay (they help); passwords become ***."""
    assert redact_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("postgresql://u:p%40ss@[::1]:5432/db") == "postgresql://u:***@[::1]:5432/db"
    assert redact_url("http://h/x") == "http://h/x"


def test_a_mesh_file_gateway_check_sends_the_configured_request_without_a_host(
    tmp_path: Path,
) -> None:
    """No GATEWAY_HOST, a mesh file with a zmq_ping check, and the trade-on-action recipe:
    the bridge gets GET_SYMBOL_INFO and nothing else (the default PING would be an order
    to such an EA), and the configured judgement decides."""
    seen: list[bytes] = []

    def ea(frames: list[bytes]) -> list[bytes]:
        seen.append(frames[-1])
        if b'"GET_SYMBOL_INFO"' in frames[-1]:
            return [b'{"bid": 1.1, "ask": 1.2}']
        return [b'{"retcode": 10009, "comment": "ORDER PLACED"}']

    with servers.zmq_server(zmq.ROUTER, ea) as port:
        document = tmp_path / "mesh.toml"
        document.write_text(
            f'include_defaults = false\n[[check]]\nkind = "zmq_ping"\ntarget = "127.0.0.1:{port}"\n'
        )
        env = base_env(
            GATE_PING_REQUEST='{"action":"GET_SYMBOL_INFO","symbol":"EURUSD"}',
            GATE_READY_WHEN="bid > `0`",
        )
        code, doc, _ = mesh(["--file", str(document)], env)
        strict = base_env(
            GATE_PING_REQUEST='{"action":"GET_SYMBOL_INFO","symbol":"EURUSD"}',
            GATE_READY_WHEN="bid > `5`",
        )
        strict_code, strict_doc, _ = mesh(["--file", str(document)], strict)
    assert seen, "the check reached the bridge"
    assert all(b'"GET_SYMBOL_INFO"' in request for request in seen), seen
    assert code == 0, doc
    assert strict_code == 2  # the same reply, judged by a rule it fails: critical check
    assert strict_doc["checks"][0]["reason"] == "not_ready"


def test_a_bad_dialect_option_without_a_host_is_a_usage_error(tmp_path: Path) -> None:
    """Without GATEWAY_HOST, an invalid GATE_PING_REQUEST is still exit 64, never ignored
    in favour of the default request."""
    document = tmp_path / "mesh.toml"
    document.write_text(
        'include_defaults = false\n[[check]]\nkind = "zmq_ping"\ntarget = "127.0.0.1:9"\n'
    )
    done = run_gate(
        ["mesh", "--file", str(document)], base_env(GATE_PING_REQUEST="{not json"), log="text"
    )
    assert done.code == 64
    assert "GATE_PING_REQUEST" in done.stderr
