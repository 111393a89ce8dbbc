"""``--bridge pymetatrader``: PyMetaTrader's broker and its MTServer EA, against their
stand-in (tests/standins/pymetatrader_broker.py).

The recipe of docs/BRIDGES.md, verbatim, in every state: healthy (ready, the runner
exec'd), not logged in (``id=0``), no EA attached to the broker (said as such, not "bridge
down"), the EA attached while the gate waits, and a ``KO|`` answer kept in the bridge's
words; with ``wait``, ``health`` and ``probe``. Every request socket carries its own
printable identity, which the EA routes its answer by.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.bounds import (
    EVENT_S,
    EXIT_S,
    FAST_ATTEMPT,
    NEVER_READY_S,
    NEVER_READY_WAIT,
    WATCHED_BACKOFF,
    after_deadline,
)
from tests.support.cli import run_gate
from tests.support.helpers import EXEC_PROBE
from tests.support.processes import StartGate, StartSim, StartStandIn
from tests.support.recipes import (
    events_of,
    failures,
    recipe_env,
    start_pymetatrader,
)

IDENTITY = re.compile(r"mt5-gate-(\d+)-(\d+)")


def identities(broker: object) -> list[str]:
    return [e["identity"] for e in events_of(broker, "request")]  # type: ignore[arg-type]


def test_the_recipe_is_ready_health_and_probe_answer_and_only_account_is_sent(
    tmp_path: Path, standin: StartStandIn, gate: StartGate
) -> None:
    broker, ports = start_pymetatrader(standin)
    env = recipe_env("pymetatrader", ports, tmp_path)
    proc = gate("wait", "--", *EXEC_PROBE, env=env)
    assert proc.wait(EXIT_S) == 0, proc.stderr_lines
    ready = proc.wait_for_event("gate.ready")
    assert ready["attempt"] == 1
    health, probe = run_gate(["health"], env=env), run_gate(["probe"], env=env)
    assert (health.code, probe.code) == (0, 0), (health.stdout, probe.stdout)
    assert "answered ACCOUNT" in health.stdout
    assert '"id": "51234567"' in probe.stdout, probe.stdout
    assert {e["bytes"] for e in events_of(broker, "ea_request")} == {"ACCOUNT"}
    assert events_of(broker, "order_attempt") == events_of(broker, "subscription_change") == []


def test_every_request_socket_has_its_own_printable_identity(
    tmp_path: Path, standin: StartStandIn
) -> None:
    """wait, health and probe (5 round trips): each request a new ``mt5-gate-<pid>-<n>``,
    never one seen before, and each answer routed back by it (the EA read it as text)."""
    broker, ports = start_pymetatrader(standin)
    env = recipe_env("pymetatrader", ports, tmp_path)
    for command in ("wait", "health", "probe"):
        assert run_gate([command], env=env).code == 0
    seen = identities(broker)
    assert len(seen) >= 8, seen
    assert len(set(seen)) == len(seen), seen
    assert all(IDENTITY.fullmatch(name) for name in seen), seen
    routed_to = [e["address"] for e in events_of(broker, "ea_request")]
    assert routed_to == seen  # the EA got each identity back as text, none lost


def test_without_the_preset_the_identity_is_libzmqs_and_the_answer_is_lost(
    tmp_path: Path, standin: StartStandIn
) -> None:
    """Why the preset names its sockets, and that no other bridge's sockets change: the
    same request without the preset goes out with libzmq's identity (a NUL byte first),
    which the EA's string loses, so the broker cannot route the answer back."""
    broker, ports = start_pymetatrader(standin)
    env = recipe_env(
        "pymetatrader",
        ports,
        tmp_path,
        GATE_BRIDGE="mt5-gate",
        GATE_PING_REQUEST="ACCOUNT",
        GATE_READY_WHEN="@ != ''",
    )
    ran = run_gate(
        ["wait", *NEVER_READY_WAIT, *FAST_ATTEMPT], env=env, timeout=after_deadline(NEVER_READY_S)
    )
    assert ran.code == 69, ran.events
    assert {e["reason"] for e in failures(ran.events)} == {"no_reply"}
    assert all(name.startswith("\x00") for name in identities(broker)), identities(broker)
    assert {e["address"] for e in events_of(broker, "ea_request")} == {""}


def test_not_logged_in_is_never_ready_and_each_door_names_it(
    tmp_path: Path, standin: StartStandIn
) -> None:
    state = tmp_path / "ea_state"
    state.write_text("logged_in=0\n")
    _broker, ports = start_pymetatrader(standin, "--state-file", str(state))
    env = recipe_env("pymetatrader", ports, tmp_path)
    ran = run_gate(["wait", *NEVER_READY_WAIT], env=env, timeout=after_deadline(NEVER_READY_S))
    failed = failures(ran.events)
    assert ran.code == 69, ran.events
    assert {e["broker_state"] for e in failed} == {"not_logged_in"}, failed
    assert '"id": "0"' in failed[0]["error"]  # the bridge's own reply, decoded
    assert "Login to Trade Account" in failed[0]["hint"]
    health = run_gate(["health"], env=env)
    assert health.code == 1, health.stdout
    assert "not_logged_in" in health.stdout, health.stdout
    probe = run_gate(["probe"], env=env)
    assert probe.code == 1, probe.stdout
    assert "fix: not_logged_in" in probe.stdout, probe.stdout


def test_no_ea_attached_is_said_as_such_not_as_a_bridge_down(
    tmp_path: Path, standin: StartStandIn
) -> None:
    """The broker completes the handshake and holds the request: no_reply, with the state
    no_ea_attached and what to do, from wait, health and probe."""
    _broker, ports = start_pymetatrader(standin, "--ea-attached", "0")
    env = recipe_env("pymetatrader", ports, tmp_path)
    ran = run_gate(
        ["wait", *NEVER_READY_WAIT, *FAST_ATTEMPT], env=env, timeout=after_deadline(NEVER_READY_S)
    )
    failed = failures(ran.events)
    assert ran.code == 69, ran.events
    assert {(e["reason"], e["broker_state"]) for e in failed} == {("no_reply", "no_ea_attached")}
    assert "no EA attached to the broker" in failed[0]["error"]
    assert "--reason broker-state-no-ea-attached" in failed[0]["hint"]
    timeout = next(e for e in ran.events if e["event"] == "gate.timeout")
    assert "was not ready (no_ea_attached)" in timeout["error"], timeout  # not "did not answer"
    assert "--reason broker-state-no-ea-attached" in timeout["hint"], timeout
    health = run_gate(["health", *FAST_ATTEMPT], env=env)
    assert health.code == 1, health.stdout
    assert "no EA attached to the broker" in health.stdout, health.stdout
    probe = run_gate(["probe", *FAST_ATTEMPT], env=env)
    assert probe.code == 1, probe.stdout
    assert "no EA attached to the broker" in probe.stdout, probe.stdout


def test_an_ea_that_attaches_while_the_gate_waits_makes_it_ready(
    tmp_path: Path, standin: StartStandIn, gate: StartGate
) -> None:
    """The broker then serves the oldest held requests first: their sockets are gone and
    their identities never come back, so the late answers are dropped, not taken for the
    answer to the request being judged."""
    state = tmp_path / "ea_state"
    state.write_text("ea_attached=0\n")
    broker, ports = start_pymetatrader(standin, "--state-file", str(state))
    env = recipe_env("pymetatrader", ports, tmp_path)
    proc = gate("wait", *WATCHED_BACKOFF, *FAST_ATTEMPT, "--", *EXEC_PROBE, env=env)
    refused = proc.wait_for_event("gate.attempt_failed", EVENT_S)
    assert refused["broker_state"] == "no_ea_attached"
    state.write_text("ea_attached=1\n")
    assert proc.wait(EXIT_S) == 0, proc.stderr_lines
    seen = identities(broker)
    assert len(set(seen)) == len(seen) >= 2, seen
    assert len(events_of(broker, "queued")) >= 2


def test_a_ko_answer_is_a_refusal_in_the_bridges_words(
    tmp_path: Path, standin: StartStandIn
) -> None:
    _broker, ports = start_pymetatrader(standin)
    env = recipe_env("pymetatrader", ports, tmp_path, GATE_PING_REQUEST="DEALS")
    ran = run_gate(["wait", *NEVER_READY_WAIT], env=env, timeout=after_deadline(NEVER_READY_S))
    failed = failures(ran.events)
    assert ran.code == 69, ran.events
    assert {e["reason"] for e in failed} == {"not_ready"}
    assert '"status": "KO"' in failed[0]["error"]
    assert "Unknown command" in failed[0]["error"]


def test_the_simulator_rehearses_not_logged_in(sim: StartSim) -> None:
    """`mt5-gate sim --dialect pymetatrader --broker-state not_logged_in` answers id=0."""
    _simulator, port = sim("--dialect", "pymetatrader", "--broker-state", "not_logged_in")
    env = {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port), "GATE_BRIDGE": "pymetatrader"}
    ran = run_gate(["wait", *NEVER_READY_WAIT], env=env, timeout=after_deadline(NEVER_READY_S))
    assert ran.code == 69, ran.events
    assert {e["broker_state"] for e in failures(ran.events)} == {"not_logged_in"}
