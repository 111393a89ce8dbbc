"""The deadline binds every `--also` check as a whole, not per read (issue 27, point 3).

Each peer here answers, but never finishes answering: an HTTP server sending one header
byte every 0.5 s, a Redis peer sending `+` and then a byte every 0.5 s, a PostgreSQL that
completes the start-up and never answers the query. Every read gets a byte long before any
per-read timeout, so only a bound on the whole exchange ends them; before it the gate was
still running after 25 s (and after 120 s, the time pgbouncer queues such a query).
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from entrypoint.deadline import Deadline
from entrypoint.targets.cutoff import CutOff
from tests.support.bounds import COMMAND_S, EVENT_S, FAST_BACKOFF, after_deadline
from tests.support.cli import Ran, run_gate
from tests.support.fault_injection import RUN
from tests.support.helpers import poll_until
from tests.support.processes import StartGate, StartSim
from tests.support.slow_peers import dripping, peer, postgres_that_never_answers

DEADLINE_S = 3.0
# The gate's own clock at its gate.timeout: the deadline, plus at most 1 s for the cut-off
# attempt to report. What it separates: 3-4 s against never (a drip) or 120 s (pgbouncer).
ENDS_BY_S = DEADLINE_S + 1.0


def wait_with_also(gateway_port: int, url: str) -> Ran:
    """A gate whose gateway is ready, with ``url`` as its only dependency and --timeout 3."""
    return run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(gateway_port),
            *FAST_BACKOFF,
            "--timeout",
            f"{DEADLINE_S:g}",
            "--also",
            url,
            "--",
            "echo",
            "must-not-run",
        ],
        timeout=after_deadline(DEADLINE_S),
    )


def assert_ended_at_the_deadline_naming(ran: Ran, url: str) -> dict[str, Any]:
    shown = [(e["event"], e.get("target"), e.get("reason")) for e in ran.events]
    assert ran.code == 69, shown
    assert ran.stdout == "", ran.stdout
    assert any(e["event"] == "gate.ready" for e in ran.events), shown  # the gateway was up
    timeout: dict[str, Any] = ran.events[-1]
    assert timeout["event"] == "gate.timeout", shown
    assert timeout["target"] == url, timeout
    assert timeout["error"].startswith(f"{url} did not answer within 3 s"), timeout
    assert timeout["elapsed_s"] <= ENDS_BY_S, timeout
    return timeout


# An HTTP server dripping a header line; a TLS server dripping its ServerHello (a record
# header announcing 16 kB, then one byte at a time): each read gets a byte in time. The
# https case is a guard, not a regression: CPython's ssl module already bounds a handshake
# as a whole by the socket's timeout, and the CutOff must keep it so.
HTTP_DRIPS = {
    "http": (b"HTTP/1.1 200 OK\r\nX-Drip: ", b"a"),
    "https": (b"\x16\x03\x03\x40\x00\x02", b"\x00"),
}


@pytest.mark.parametrize("scheme", sorted(HTTP_DRIPS))
def test_an_http_server_that_drips_its_answer_ends_the_wait_at_the_deadline(
    scheme: str, sim: StartSim
) -> None:
    _simulator, port = sim()
    with peer(dripping(*HTTP_DRIPS[scheme])) as http_port:
        url = f"{scheme}://127.0.0.1:{http_port}/health"
        ran = wait_with_also(port, url)
    timeout = assert_ended_at_the_deadline_naming(ran, url)
    assert timeout["last_reason"] == "no_reply", timeout


def test_a_redis_peer_that_drips_its_answer_ends_the_wait_at_the_deadline(sim: StartSim) -> None:
    pytest.importorskip("redis")
    _simulator, port = sim()
    with peer(dripping(b"+", b"P")) as redis_port:
        url = f"redis://127.0.0.1:{redis_port}/0"
        ran = wait_with_also(port, url)
    timeout = assert_ended_at_the_deadline_naming(ran, url)
    assert timeout["last_reason"] == "no_reply", timeout


def test_a_postgresql_that_never_answers_the_query_ends_the_wait_at_the_deadline(
    sim: StartSim,
) -> None:
    """A fake server, not the real one of tests/support/real_servers.py: the check's
    `SELECT 1` touches no table, so no lock another session holds can make a real server
    sit on it; what pgbouncer does (the start-up completes, the query is queued) is two
    dozen lines of its wire protocol. ``queries`` shows the check did reach the query."""
    pytest.importorskip("psycopg")
    _simulator, port = sim()
    queries: list[bytes] = []
    with peer(postgres_that_never_answers(queries)) as pg_port:
        url = f"postgresql://gate@127.0.0.1:{pg_port}/app?sslmode=disable"
        ran = wait_with_also(port, url)
    timeout = assert_ended_at_the_deadline_naming(ran, url)
    assert timeout["last_reason"] == "no_reply", timeout
    assert queries == [b"SELECT 1"], queries


@pytest.mark.parametrize("scheme", ["zmq+req", "zmq+sub"])
def test_the_other_kinds_drip_fed_end_at_the_deadline_too(scheme: str, sim: StartSim) -> None:
    """A guard, not a regression (these passed before): a peer dripping a ZeroMQ greeting
    (the signature's first bytes, then a zero every 0.5 s) holds a ZeroMQ check no longer
    than the deadline, since libzmq is polled against it. (A tcp:// check only connects.)"""
    _simulator, port = sim()
    with peer(dripping(b"\xff\x00", b"\x00")) as drip_port:
        url = f"{scheme}://127.0.0.1:{drip_port}"
        ran = wait_with_also(port, url)
    timeout = assert_ended_at_the_deadline_naming(ran, url)
    assert timeout["last_reason"] == "no_reply", timeout


def test_each_attempt_is_bounded_by_its_own_budget_not_only_the_deadline(
    sim: StartSim, gate: StartGate
) -> None:
    """With a long deadline, a dripping dependency's attempt still ends at the attempt's
    budget (the gateway's --connect-timeout 1 twice and --reply-timeout 1: 3 s), and the
    gate retries it, instead of one attempt dripping until the deadline."""
    _simulator, port = sim()
    with peer(dripping(b"HTTP/1.1 200 OK\r\nX-Drip: ", b"a")) as http_port:
        url = f"http://127.0.0.1:{http_port}/"
        proc = gate(
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *FAST_BACKOFF,
            "--connect-timeout",
            "1",
            "--reply-timeout",
            "1",
            "--timeout",
            "60",
            "--also",
            url,
        )
        failed = proc.wait_for_event("gate.attempt_failed", timeout=EVENT_S + 3)
    assert failed["target"] == url, failed
    assert failed["reason"] == "no_reply", failed
    # The attempt's 3 s budget, plus 1 s to report; a drip would go on until the 60 s.
    assert failed["elapsed_s"] <= 4.0, failed


def test_mesh_ends_a_dripping_check_itself_at_its_timeout(tmp_path: Path) -> None:
    """mesh runs the same checks: a dripping HTTP server is a `no_reply` failure at the
    check's own timeout, reported by the check (before, it was abandoned on its thread,
    still holding the connection, as "did not finish")."""
    with peer(dripping(b"HTTP/1.1 200 OK\r\nX-Drip: ", b"a")) as http_port:
        mesh_file = tmp_path / "mesh.toml"
        mesh_file.write_text(
            "include_defaults = false\n[[check]]\nkind = 'http'\n"
            f"target = 'http://127.0.0.1:{http_port}/'\ntimeout = 1.5\n"
        )
        done = run_gate(["mesh", "--json", "--file", str(mesh_file)], timeout=COMMAND_S)
    doc = json.loads(done.stdout)
    (check,) = doc["checks"]
    assert (check["status"], check["reason"]) == ("fail", "no_reply"), check
    assert "no complete response within 1.5 s" in check["detail"], check
    assert check["duration_ms"] < 1500 + 1000, check  # its timeout, not the drip's end
    assert done.code == 1, done.stdout


def test_a_check_that_never_returns_cannot_hold_the_gate_past_its_deadline(
    sim: StartSim,
) -> None:
    """The last line of defence: an --also attempt that ignores every budget (injected: a
    client library blocked where no cut-off reaches, say a stuck name lookup inside it).
    The main thread waits for the dependency's thread only until the deadline; the gate
    then ends with 69 naming the dependency, and the stuck daemon thread does not hold the
    exit. Before, the main thread joined it without a limit: the gate never ended."""
    _simulator, port = sim()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        url = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        ran = run_gate(
            [
                "wait",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *FAST_BACKOFF,
                "--timeout",
                f"{DEADLINE_S:g}",
                "--also",
                url,
                "--",
                "echo",
                "must-not-run",
            ],
            command=[sys.executable, "-c", RUN, "also-never-returns"],
            timeout=after_deadline(DEADLINE_S),
        )
    timeout = assert_ended_at_the_deadline_naming(ran, url)
    assert "still running at the deadline" in timeout["error"], timeout
    assert "explain --reason dependencies" in timeout["hint"], timeout


def test_the_cut_off_never_touches_a_socket_that_reused_a_closed_descriptor() -> None:
    """The library may close its connection before the deadline, and the number of its
    descriptor be reused by another connection (another check's, the gateway's): the
    cut-off shuts down only the connection it watched, through its own duplicate."""
    watched, watched_peer = socket.socketpair()
    with watched_peer, CutOff(Deadline(0.2)) as cut:
        number = watched.fileno()
        cut.watch(number)
        watched.close()  # the library is done with it
        reused, reused_peer = socket.socketpair()
        with reused, reused_peer:
            poll_until(lambda: cut.fired, EVENT_S)
            reused.sendall(b"still open")
            assert reused_peer.recv(64) == b"still open"
            # The watched connection itself was shut down: its peer reads end-of-file.
            assert watched_peer.recv(64) == b""
