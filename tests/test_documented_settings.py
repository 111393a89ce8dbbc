"""The ``# settings: NAME`` blocks of docs/BRIDGES.md: public bridges without a preset of
their own, each block run verbatim against the bridge's stand-in or the simulator.

- ``telegram-bot`` (Bryan-cheru/telegram-bot's mt5_server.py, tests/standins/
  telegram_bot_server.py): ready with an account, never ready without one, no order.
- ``heartbeat-account`` (luzhengheng/MT5's Work Order #022 gateway, whose envelope is the
  ``heartbeat`` preset's): ready against ``mt5-gate sim --dialect heartbeat``.
"""

from __future__ import annotations

from tests.support.bounds import EXIT_S, NEVER_READY_S, NEVER_READY_WAIT, after_deadline
from tests.support.cli import run_gate
from tests.support.helpers import EXEC_PROBE, base_env
from tests.support.processes import StartGate, StartSim, StartStandIn
from tests.support.recipes import blocks, events_of, failures

SETTINGS = blocks("settings")


def settings_env(name: str, port: int, **extra: str) -> dict[str, str]:
    return base_env(
        **SETTINGS[name] | {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port), **extra}
    )


def test_the_telegram_bot_settings_wait_for_an_account(
    standin: StartStandIn, gate: StartGate
) -> None:
    server = standin("telegram_bot_server", "--port", "0")
    proc = gate("wait", "--", *EXEC_PROBE, env=settings_env("telegram-bot", server.ports["rep"]))
    assert proc.wait(EXIT_S) == 0, proc.stderr_lines
    assert {e["bytes"] for e in events_of(server, "request")} == {'{"action":"get_account_info"}'}
    assert events_of(server, "order_attempt") == []


def test_the_telegram_bot_settings_are_never_ready_without_an_account(
    standin: StartStandIn,
) -> None:
    """Its ping says pong with no account logged in: the settings ask for the account."""
    server = standin("telegram_bot_server", "--port", "0", "--no-account")
    env = settings_env("telegram-bot", server.ports["rep"])
    ran = run_gate(["wait", *NEVER_READY_WAIT], env=env, timeout=after_deadline(NEVER_READY_S))
    assert ran.code == 69, ran.events
    assert "Failed to get account info" in failures(ran.events)[0]["error"]
    ping = settings_env(
        "telegram-bot",
        server.ports["rep"],
        GATE_PING_REQUEST='{"action":"ping"}',
        GATE_READY_WHEN="success == `true`",
    )
    assert (
        run_gate(["wait", "--timeout", "5"], env=ping).code == 0
    )  # what the bare ping would have said


def test_the_heartbeat_account_settings_get_the_simulated_gateway_ready(
    sim: StartSim, gate: StartGate
) -> None:
    simulated, port = sim("--dialect", "heartbeat")
    proc = gate("wait", "--", *EXEC_PROBE, env=settings_env("heartbeat-account", port))
    assert proc.wait(EXIT_S) == 0, proc.stderr_lines
    assert not any(e["event"] == "sim.order_attempt" for e in simulated.events())
