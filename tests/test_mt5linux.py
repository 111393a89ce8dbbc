"""``--bridge mt5linux`` (``--transport rpyc``) against a REAL rpyc classic server.

The stand-in (tests/standins/mt5linux_server.py) is rpyc's ``ThreadedServer`` serving
``SlaveService``, as lucas-campagna/mt5linux runs it, in front of a ``MetaTrader5`` module
whose terminal state each test sets; it logs every call, and any call off the read-only
allow-list (or any ``eval``/``execute``) as ``forbidden_call``: every test that starts one
asserts there is none. The recipes of docs/BRIDGES.md are run verbatim (only the host and
port pointed at the stand-in). Hostile peers are real sockets on loopback.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.standins.client import StandIn
from tests.support import servers
from tests.support.bounds import (
    EXIT_S,
    FAST_ATTEMPT,
    FAST_WAIT,
    NEVER_READY_S,
    NEVER_READY_WAIT,
    after_deadline,
)
from tests.support.cli import run_gate
from tests.support.helpers import EXEC_PROBE, REPO, base_env, free_port, skip_or_fail
from tests.support.processes import Spawn, StartGate, StartSim, StartStandIn

# The stand-in's state word -> the broker_state the gate names for it.
STATES = {
    "not_running": "terminal_not_attached",
    "starting": "terminal_starting",
    "no_broker": "no_broker_connection",
    "algo_off": "algo_trading_off",
    "api_disabled": "api_disabled",
    "not_logged_in": "not_logged_in",
    "investor": "investor_login",
    "expert_off": "account_expert_trading_off",
}
ALLOWED_MODULES = {"MetaTrader5", "operator"}  # what the gate may getmodule()


def recipes() -> dict[str, dict[str, str]]:
    """The mt5linux env blocks of docs/BRIDGES.md (``# recipe: mt5linux`` and
    ``# mt5linux-recipe: NAME``), as variables, read as they are written."""
    text = (REPO / "docs" / "BRIDGES.md").read_text()
    found: dict[str, dict[str, str]] = {}
    for block in re.findall(r"```env\n(.*?)```", text, re.DOTALL):
        first, *lines = block.strip().splitlines()
        if first in ("# recipe: mt5linux",) or first.startswith("# mt5linux-recipe: "):
            found[first.split(": ", 1)[1]] = dict(line.split("=", 1) for line in lines)
    return found


RECIPES = recipes()


def mt5_server(standin: StartStandIn, *args: str) -> StandIn:
    return standin("mt5linux_server", "--port", "0", *args)


def pointed(recipe: str, server: StandIn, **extra: str) -> dict[str, str]:
    """The recipe's lines, with the host and port pointed at the stand-in."""
    variables = dict(RECIPES[recipe])
    variables.update(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(server.ports["rpyc"]), **extra)
    return base_env(**variables)


def events_of(server: StandIn, name: str) -> list[dict[str, Any]]:
    return [e for e in server.events() if e.get("event") == name]


def assert_only_read_only_calls(server: StandIn) -> None:
    """Nothing forbidden, ``getmodule`` for the two modules the gate reads, and
    ``initialize`` only ever without arguments."""
    assert events_of(server, "forbidden_call") == [], server.events()
    assert {e["name"] for e in events_of(server, "getmodule")} <= ALLOWED_MODULES
    for call in events_of(server, "call"):
        if call["name"] == "initialize":
            assert (call["args"], call["kwargs"]) == ("()", "{}"), call


def test_the_document_has_both_recipes() -> None:
    assert set(RECIPES) == {"mt5linux", "gmag11"}, RECIPES
    assert all(r["GATE_BRIDGE"] == "mt5linux" for r in RECIPES.values())


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_each_recipe_attaches_once_gets_ready_and_execs_the_runner(
    recipe: str, standin: StartStandIn, gate: StartGate
) -> None:
    """A fresh server (no terminal attached yet): the gate calls initialize() once, with no
    arguments, reads the terminal, and execs the runner in its own PID."""
    server = mt5_server(standin)
    proc = gate("wait", "--", *EXEC_PROBE, env=pointed(recipe, server))
    assert proc.wait(EXIT_S) == 0, proc.stderr_lines
    start = proc.wait_for_event("gate.start")
    ready = proc.wait_for_event("gate.ready")
    assert f"ready pid={start['pid']}" in proc.stdout_lines
    assert (start["transport"], start["bridge"]) == ("rpyc", "mt5linux")
    reply = json.loads(ready["reply"])
    assert reply["terminal_info"] == {
        "connected": True,
        "trade_allowed": True,
        "tradeapi_disabled": False,
        "build": 4755,
    }
    assert reply["initialize"] is True
    assert [c["name"] for c in events_of(server, "call")].count("initialize") == 1
    assert_only_read_only_calls(server)
    # The log shows the judged fields, never the account's name, server or balance.
    log = "\n".join(proc.stderr_lines)
    assert "Jane Secret-Name" not in log
    assert "StandIn-Demo" not in log
    assert "10000" not in log


@pytest.mark.parametrize(("word", "state"), sorted(STATES.items()))
def test_every_state_is_named_by_wait_health_and_probe_and_never_ready(
    word: str, state: str, standin: StartStandIn
) -> None:
    """Each state the terminal can be in: wait never ready (69) with the state and its
    section named in every attempt line; health unhealthy (1) naming it; probe fails (1)
    with it as its fix line. Not one forbidden call."""
    server = mt5_server(standin, "--state", word, "--initialize-s", "0.1")
    env = pointed("mt5linux", server)
    ran = run_gate(["wait", *NEVER_READY_WAIT], env, timeout=after_deadline(NEVER_READY_S))
    failed = [e for e in ran.events if e["event"] == "gate.attempt_failed"]
    assert ran.code == 69, ran.stderr
    others = [e["error"][:150] for e in failed if e["reason"] != "not_ready"]
    assert others == [], others
    named = {e["broker_state"] for e in failed}
    # With no terminal, initialize() fails at once; only an attempt cut short by the
    # deadline while its initialize() still ran may say "starting" instead.
    also = {"terminal_starting"} if word == "not_running" else set()
    assert state in named, failed
    assert named <= {state} | also, failed
    assert f"--reason broker-state-{state.replace('_', '-')}" in failed[0]["hint"]
    health = run_gate(["health"], env, log="text")
    assert health.code == 1
    assert health.stdout.startswith("unhealthy:"), health.stdout
    assert f"({state}:" in health.stdout, health.stdout
    probe = run_gate(["probe", "--json"], env, log="text")
    assert probe.code == 1
    assert state in probe.stdout, probe.stdout
    assert_only_read_only_calls(server)


def test_initialize_runs_once_however_many_attempts_while_a_terminal_starts(
    standin: StartStandIn,
) -> None:
    """initialize() blocks (60 s in the real package) and cannot be cancelled: across every
    attempt and pause of a wait, one call, and "terminal_starting" meanwhile."""
    server = mt5_server(standin, "--state", "starting", "--initialize-s", "30")
    ran = run_gate(
        ["wait", *NEVER_READY_WAIT],
        pointed("mt5linux", server),
        timeout=after_deadline(NEVER_READY_S),
    )
    failed = [e for e in ran.events if e["event"] == "gate.attempt_failed"]
    # The pauses' own reads (gate.reply) count too: each is an exchange with the server.
    replies = [e for e in ran.events if e["event"] == "gate.reply"]
    assert ran.code == 69, ran.stderr
    assert len(failed) + len(replies) >= 3, ran.stderr
    assert {e.get("broker_state") for e in failed + replies} == {"terminal_starting"}
    assert '"initialize": "in_flight"' in failed[-1]["error"]
    assert [c["name"] for c in events_of(server, "call")].count("initialize") == 1
    assert_only_read_only_calls(server)


def test_a_terminal_fixed_while_the_gate_waits_is_ready_at_the_next_attempt(
    tmp_path: Path, standin: StartStandIn, gate: StartGate
) -> None:
    """Algo trading off, then someone presses the button: waiting, not failing."""
    state = tmp_path / "state"
    state.write_text("algo_off\n")
    server = mt5_server(standin, "--state-file", str(state))
    proc = gate("wait", *FAST_WAIT, "--", *EXEC_PROBE, env=pointed("mt5linux", server))
    failed = proc.wait_for_event("gate.attempt_failed")
    assert failed["broker_state"] == "algo_trading_off"
    state.write_text("healthy\n")
    assert proc.wait(EXIT_S) == 0, proc.stderr_lines
    assert_only_read_only_calls(server)


def test_mesh_judges_the_terminal_as_wait_does(tmp_path: Path, standin: StartStandIn) -> None:
    """mesh --bridge mt5linux: the gateway check is the same read and judgement; a
    terminal that cannot trade is a failed critical check (exit 2)."""
    state = tmp_path / "state"
    state.write_text("healthy\n")
    server = mt5_server(standin, "--state-file", str(state))
    env = pointed("mt5linux", server)
    healthy = run_gate(["mesh"], env, log="text")
    assert healthy.code == 0, healthy.stdout
    state.write_text("investor\n")
    refused = run_gate(["mesh"], env, log="text")
    assert refused.code == 2, refused.stdout
    assert '"trade_allowed": false' in refused.stdout, refused.stdout  # the judged flag
    assert_only_read_only_calls(server)


@pytest.mark.parametrize(
    "request_text",
    [
        "order_send",
        "shutdown",
        "login",
        "initialize",
        "terminal_info order_send",
        "terminal_info(); shutdown()",
        '{"action":"PING"}',
        "version;shutdown",
    ],
)
def test_a_request_off_the_allow_list_is_refused_before_anything_is_sent(
    request_text: str, standin: StartStandIn
) -> None:
    """Exit 64 with one line (health: its one unhealthy line, exit 1), and the server
    never sees a connection's call."""
    server = mt5_server(standin)
    env = pointed("mt5linux", server, GATE_PING_REQUEST=request_text)
    for command, expected in (("wait", 64), ("probe", 64), ("health", 1)):
        ran = run_gate([command], env, log="text")
        assert ran.code == expected, (command, ran.code, ran.stdout, ran.stderr)
        said = (ran.stdout + ran.stderr).strip()
        assert len(said.splitlines()) == 1, said
        assert "refuses the request" in said, said
    assert events_of(server, "call") == []
    assert events_of(server, "getmodule") == []


def test_the_rpyc_transport_alone_refuses_a_zeromq_request() -> None:
    """--transport rpyc without the preset: the default JSON PING is not a call."""
    ran = run_gate(
        ["wait", "--host", "127.0.0.1", "--port", str(free_port()), "--transport", "rpyc"],
        log="text",
    )
    assert ran.code == 64, ran.stderr
    assert "--transport rpyc refuses the request" in ran.stderr


def test_without_the_rpyc_package_it_says_which_extra_to_install() -> None:
    """rpyc hidden from the gate (as on an install without the extra): one line, 64."""
    hide = "import sys; sys.modules['rpyc'] = None\nfrom entrypoint.__main__ import run\n"
    done = subprocess.run(
        [sys.executable, "-c", hide + "sys.exit(run())", "wait", "--bridge", "mt5linux"],
        env=base_env(GATEWAY_HOST="127.0.0.1", GATE_LOG_FORMAT="json"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=EXIT_S,
        check=False,
    )
    assert done.returncode == 64, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'mt5-gate[rpyc]'" in lines[0], done.stderr


def test_a_server_that_accepts_and_never_answers_is_no_reply_within_the_budget() -> None:
    """A hung Wine process: accepted, silent. rpyc's own wait would be 30 s; the health
    check ends at its 2 s --timeout (bound: 2 s against rpyc's 30 s)."""
    with servers.tcp_server(servers.silent) as port:
        ran = run_gate(
            [
                "health",
                "--bridge",
                "mt5linux",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--timeout",
                "2",
            ],
            log="text",
        )
    assert ran.code == 1
    assert "no_reply" in ran.stdout, ran.stdout
    assert ran.took < 2 + 10, ran.took  # start-up slack; far below rpyc's 30 s


def test_an_ssh_banner_on_the_port_is_diagnosed_not_hung() -> None:
    """A peer that speaks first would hang rpyc's client for ever (its first 5 bytes read
    as a frame header of ~1.4 GB): the gate sees the banner and ends with 78."""
    with servers.tcp_server(servers.banner) as port:
        ran = run_gate(
            [
                "wait",
                "--bridge",
                "mt5linux",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--timeout",
                "20",
                *FAST_WAIT,
            ]
        )
    assert ran.code == 78, ran.stderr
    failed = [e for e in ran.events if e["event"] == "gate.attempt_failed"]
    assert failed[0]["reason"] == "protocol"
    assert "not an rpyc server" in failed[0]["error"]
    assert "SSH" in failed[0]["error"]


def late_banner(conn: socket.socket) -> None:
    """Silent until the client spoke (past the gate's silence check), then a banner: an
    SSH server behind a slow proxy, or one that waits for the client's greeting."""
    conn.settimeout(5)
    conn.recv(64)
    conn.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")


def test_a_banner_after_the_silence_check_is_diagnosed_too() -> None:
    """The frame-header check: 'SSH-2' read as a header has the flag byte '2', which no
    rpyc peer sends; not a wait for 1.4 GB until the deadline (no_reply)."""
    with servers.tcp_server(late_banner) as port:
        ran = run_gate(
            ["health", "--bridge", "mt5linux", "--host", "127.0.0.1", "--port", str(port)],
            log="text",
        )
    assert ran.code == 1
    assert "protocol" in ran.stdout, ran.stdout
    assert "not an rpyc" in ran.stdout, ran.stdout


@contextmanager
def rpyc5_like_server() -> Iterator[int]:
    """A peer that answers as rpyc 5.x does: its reply frame's payload is brine's
    ``(MSG_REPLY, seq, value)`` (first byte 0x12), where 6.x puts a message-type byte
    (tomerfiliba-org/rpyc 43027f94: the envelope change of 6.0.0)."""
    from rpyc.core import brine

    def answer(conn: socket.socket) -> None:
        conn.settimeout(5)
        header = conn.recv(5)
        length = int.from_bytes(header[:4], "big")
        while length + 1 > 0:
            chunk = conn.recv(length + 1)
            if not chunk:
                return
            length -= len(chunk)
        payload = brine.dump((2, 0, (1, None)))
        conn.sendall(len(payload).to_bytes(4, "big") + b"\x00" + payload + b"\n")

    with servers.tcp_server(
        lambda conn: threading.Thread(target=answer, args=(conn,)).start()
    ) as p:
        yield p


def test_an_rpyc5_server_is_named_a_version_mismatch() -> None:
    with rpyc5_like_server() as port:
        ran = run_gate(
            [
                "probe",
                "--bridge",
                "mt5linux",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *list(FAST_ATTEMPT),
            ],
            log="text",
        )
    assert ran.code == 1
    assert "rpyc version mismatch" in ran.stdout, ran.stdout


def test_a_real_rpyc5_classic_server_is_named_a_version_mismatch(
    tmp_path: Path, spawn: Spawn
) -> None:
    """rpyc 5.2.3's own classic server (RPYC5_PYTHON: a Python with rpyc==5.2.3, which
    .ci/run prepares): the gate's rpyc 6 says "version mismatch", exit 1 for health."""
    if not os.environ.get("RPYC5_PYTHON"):
        skip_or_fail(
            "RPYC5_PYTHON: a Python with rpyc 5.2.3 (.ci/run makes one; the emulated "
            "5.x server above always runs)"
        )
    script = tmp_path / "server5.py"
    script.write_text(
        "import rpyc\nfrom rpyc.utils.server import ThreadedServer\n"
        "s = ThreadedServer(rpyc.core.SlaveService, hostname='127.0.0.1', port=0)\n"
        "print(f'port={s.port}', flush=True)\ns.start()\n"
    )
    server = spawn([os.environ["RPYC5_PYTHON"], str(script)])
    port = server.wait_for_stdout("port=").split("=", 1)[1]
    ran = run_gate(
        ["health", "--bridge", "mt5linux", "--host", "127.0.0.1", "--port", port], log="text"
    )
    assert ran.code == 1
    assert "rpyc version mismatch" in ran.stdout, ran.stdout


def test_a_server_that_starts_during_a_pause_is_noticed_in_that_pause(
    standin: StartStandIn, gate: StartGate
) -> None:
    """rpyc has no reconnecting socket: the gate tries the port every 100 ms through its
    pause. Bound: the pause is 8 s, the server listens ~1 s in, so a ready before 8 s that
    came "via pause" was noticed by watching, not by the next attempt."""
    port = free_port()
    env = base_env(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(port), GATE_BRIDGE="mt5linux")
    started = time.monotonic()
    proc = gate("wait", "--backoff-initial", "8", "--backoff-max", "8", "--", "true", env=env)
    proc.wait_for_event("gate.attempt_failed")
    server = mt5_server(standin, "--port", str(port))  # later --port wins over "0"
    assert proc.wait(EXIT_S) == 0, proc.stderr_lines
    ready = proc.wait_for_event("gate.ready")
    assert ready["via"] == "pause", ready
    assert time.monotonic() - started < 8, time.monotonic() - started
    assert_only_read_only_calls(server)


def test_also_rpyc_waits_for_an_mt5linux_terminal(sim: StartSim, standin: StartStandIn) -> None:
    """--also rpyc://host:port judges the server as --bridge mt5linux does."""
    server = mt5_server(standin)
    _simulated, port = sim()
    ran = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--timeout",
            "20",
            "--also",
            f"rpyc://127.0.0.1:{server.ports['rpyc']}",
        ],
    )
    assert ran.code == 0, ran.stderr
    ready = [e for e in ran.events if e["event"] == "gate.dependency_ready"]
    assert ready, ran.events
    assert ready[0]["target"].startswith("rpyc://"), ran.events
    assert_only_read_only_calls(server)


@pytest.mark.parametrize("state", ["algo_trading_off", "terminal_not_attached"])
def test_sim_rehearses_each_state_as_the_real_one(state: str, sim: StartSim) -> None:
    """`sim --dialect mt5linux --broker-state X`: a real rpyc classic server the gate names
    exactly as it names the real terminal's state; no order attempted."""
    simulated, port = sim("--dialect", "mt5linux", "--broker-state", state)
    ran = run_gate(
        ["health", "--bridge", "mt5linux", "--host", "127.0.0.1", "--port", str(port)],
        log="text",
    )
    assert ran.code == 1, ran.stdout
    assert f"({state}:" in ran.stdout, ran.stdout
    assert not any(e["event"] == "sim.order_attempt" for e in simulated.events())


@pytest.mark.parametrize("state", sorted(set(STATES.values())))
def test_explain_prints_each_states_section(state: str) -> None:
    section = f"broker-state-{state.replace('_', '-')}"
    ran = run_gate(["explain", "--reason", section], log="text", in_process=True)
    assert ran.code == 0, ran.stderr
    assert f"### {section}" in ran.stdout, ran.stdout
