"""One attempt, one verdict: every door judges a reply the way ``wait`` does.

The two-socket bridges answer on a PUSH port that pushes each answer to whichever PULL is
connected, whenever the bridge gets to it; these tests hold the gate to "an answer is
judged only as the answer to the request being judged, within --reply-timeout of it".
The healthy-bridge runs use the stand-ins written from each bridge's own code
(tests/standins/); the late bridge is the simulator's ``--reply-delay``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.support.bounds import DEADLINE_SLACK_S, EXIT_S
from tests.support.cli import run_gate
from tests.support.helpers import base_env, names
from tests.support.processes import StartGate, StartSim, StartStandIn

pytestmark = pytest.mark.timeout(240)

PROBES = 20


def two_socket_bridge(standin: StartStandIn, bridge: str) -> dict[str, str]:
    """A healthy stand-in of ``bridge`` and the variables that point its preset at it."""
    if bridge == "dwx":
        ea = standin("dwx_ea", "--pull-port", "0", "--push-port", "0", "--pub-port", "0")
        ports = {
            "GATEWAY_PORT": ea.ports["pull"],
            "GATEWAY_REPLY_PORT": ea.ports["push"],
            "GATEWAY_PUB_PORT": ea.ports["pub"],
        }
    else:
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
        )
        ports = {"GATEWAY_PORT": ea.ports["system"], "GATEWAY_REPLY_PORT": ea.ports["data"]}
    return {
        "GATEWAY_HOST": "127.0.0.1",
        "GATE_BRIDGE": bridge,
        **{key: str(value) for key, value in ports.items()},
    }


@pytest.mark.parametrize("bridge", ["dwx", "mql5-json-api"])
def test_probe_is_clean_on_a_healthy_two_socket_bridge_every_time(
    bridge: str, standin: StartStandIn
) -> None:
    """20 probes in a row: every check passes or is skipped, never a warning (a reply dealt
    to the socket just closed, or DWX's trailing empty message read as the next answer,
    made 4 of 20 warn)."""
    env = base_env(**two_socket_bridge(standin, bridge))
    seen: list[dict[str, str]] = []
    for _run in range(PROBES):
        done = run_gate(["probe", "--json"], env)
        doc: dict[str, Any] = json.loads(done.stdout)
        seen.append({check["name"]: check["status"] for check in doc["checks"]})
        assert done.code == 0, done.stdout
        assert {check["status"] for check in doc["checks"]} <= {"pass", "skip"}, done.stdout
    assert all(run["round trip"] == "pass" for run in seen), seen


def test_probe_counts_skipped_checks_apart_and_names_no_pub_port_it_does_not_check(
    standin: StartStandIn,
) -> None:
    """MQL5-JSON-API has no PUB port in its preset: the header does not name one, its check
    is skipped, and a skipped check is not a failed one ("4/6" on a working bridge)."""
    env = base_env(**two_socket_bridge(standin, "mql5-json-api"))
    done = run_gate(["probe"], env)
    header = done.stdout.splitlines()[0]
    assert done.code == 0, done.stdout
    assert "PUB port" not in header, header
    assert "Results: 4/4 checks passed (2 skipped)" in done.stdout, done.stdout
    doc = json.loads(run_gate(["probe", "--json"], env).stdout)
    assert (doc["passed"], doc["total"], doc["skipped"], doc["pub_port"]) == (4, 4, 2, None)


@pytest.mark.parametrize("bridge", ["dwx", "mql5-json-api"])
def test_an_answer_later_than_reply_timeout_never_decides_readiness(
    bridge: str, sim: StartSim
) -> None:
    """A bridge that answers every request 3 s late, with --reply-timeout 1: never ready.
    The late answers arrive while a later request is out; they are logged as too slow
    (gate.reply) and never judged as that request's answer (it was: ready, rtt_ms 993)."""
    simulated, port = sim("--dialect", bridge, "--reply-delay", "3")
    listening = simulated.wait_for_event("sim.listening")
    env = base_env(
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(port),
        GATE_BRIDGE=bridge,
        GATEWAY_REPLY_PORT=str(listening["reply_port"]),
    )
    ran = run_gate(
        [
            "wait",
            "--reply-timeout",
            "1",
            "--timeout",
            "9",
            "--backoff-initial",
            "0.5",
            "--backoff-max",
            "1",
            "--log-level",
            "debug",
        ],
        env,
        timeout=9 + DEADLINE_SLACK_S,
    )
    assert ran.code == 69, ran.stderr
    assert "gate.ready" not in names(ran.events), ran.stderr
    late = [e for e in ran.events if e["event"] == "gate.reply"]
    assert late, ran.stderr  # the late answers were seen, and judged too slow
    assert {e["verdict"] for e in late} == {"too_slow"}, late
    assert all(e["rtt_ms"] is None or e["rtt_ms"] > 1000 for e in late), late


def test_a_request_held_in_the_last_pause_does_not_stretch_the_deadline(sim: StartSim) -> None:
    """A gateway that takes every request and never answers, --timeout 8 with a 5 s reply
    timeout: the pause's request reaches it at ~5 s and used to be waited for until
    ~10 s; the wait ends within a second of 8 s."""
    _simulated, port = sim("--drop-first", "1000")
    started = time.monotonic()
    ran = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--timeout",
            "8",
            "--reply-timeout",
            "5",
            "--backoff-initial",
            "20",
            "--backoff-max",
            "20",
        ],
        base_env(),
        timeout=8 + DEADLINE_SLACK_S,
    )
    took = time.monotonic() - started
    timeout = [e for e in ran.events if e["event"] == "gate.timeout"]
    assert ran.code == 69, ran.stderr
    # The gate's own clock: 8 s plus at most the promised second (it was 10.0 s).
    assert timeout[0]["elapsed_s"] <= 9.0, timeout
    assert took < 8 + DEADLINE_SLACK_S, took


def test_the_refusal_is_explained_after_three_identical_replies_pause_ones_included(
    sim: StartSim, gate: StartGate
) -> None:
    """A bridge that refuses every request: gate.reply_rejected comes once three refusals
    were heard, counting the replies to the pause's request (it came after 5-6)."""
    _simulated, port = sim("--bad-status")
    proc = gate(
        "wait",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--timeout",
        "60",
        "--backoff-initial",
        "4",
        "--backoff-max",
        "4",
        env=base_env(),
    )
    rejected = proc.wait_for_event("gate.reply_rejected", timeout=EXIT_S)
    refusals: list[str] = []
    for event in proc.events():
        if event["event"] == "gate.reply_rejected":
            break
        if event["event"] == "gate.attempt_failed" or (
            event["event"] == "gate.reply" and event["verdict"] == "not_ready"
        ):
            refusals.append(event["event"])
    # The third refusal is the one that triggers it (its own line follows): two before it,
    # one of them the pause's.
    assert (rejected["replies"], refusals) == (3, ["gate.attempt_failed", "gate.reply"]), (
        rejected,
        refusals,
    )


def test_a_timeout_after_refusals_says_the_gateway_answered(sim: StartSim) -> None:
    """gate.timeout after a bridge that refused every time says it answered with a
    refusal, not that it "did not answer"."""
    _simulated, port = sim("--bad-status")
    ran = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--timeout",
            "2",
            "--backoff-initial",
            "0.2",
            "--backoff-max",
            "0.5",
        ],
        base_env(),
        timeout=2 + DEADLINE_SLACK_S,
    )
    timeout = next(e for e in ran.events if e["event"] == "gate.timeout")
    assert ran.code == 69, ran.stderr
    assert timeout["last_reason"] == "not_ready", timeout
    assert "answered with a refusal" in timeout["error"], timeout
    assert "did not answer" not in timeout["error"], timeout
