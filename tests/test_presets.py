"""Presets, transports, text requests and Python-literal replies: the rules, in-process.

What a user configures with --bridge, --transport, --reply-port and a text
--ping-request, pinned rule by rule; the bridges themselves are in test_wild_bridges.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from entrypoint.commands import probe
from entrypoint.errors import AttemptFailed, UsageError
from entrypoint.gateway.dialect import NotReady
from entrypoint.gateway.replies import decode_reply, python_literal
from entrypoint.settings.config import settings_from_sources
from entrypoint.settings.options import options_of
from tests.support.cli import run_gate


def usage_error(argv: list[str], env: dict[str, str]) -> str:
    """``mt5-gate ARGV`` in-process must exit 64 with exactly one JSON line: its error."""
    ran = run_gate(argv, env, in_process=True, log="text")
    assert ran.code == 64
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return str(json.loads(lines[0])["error"])


def settings(env: dict[str, str] | None = None, **flags: str) -> Any:
    return settings_from_sources({"host": "gw", **flags}, env or {}, options_of(*probe.GROUPS))


def test_a_preset_sets_transport_ports_request_judgement_and_status_policy() -> None:
    dwx = settings(bridge="dwx")
    assert (dwx.transport, dwx.port, dwx.reply_port, dwx.pub_port) == (
        "push-pull",
        32768,
        32769,
        32770,
    )
    assert dwx.dialect.ping.render() == b"TRADE;GET_ACCOUNT_INFO"
    assert dwx.dialect.status is None
    assert "GET_ACCOUNT_INFORMATION" in dwx.dialect.judgement.expression
    api = settings({"GATE_BRIDGE": "MQL5-JSON-API"})  # names are case-insensitive
    assert (api.transport, api.port, api.reply_port) == ("req-pull", 15555, 15556)
    assert (api.pub_port, api.feed_checked) == (None, False)  # its Live socket is a PUSH


def test_a_flag_beats_a_variable_and_both_beat_the_preset() -> None:
    moved = settings({"GATEWAY_PORT": "40000", "GATE_BRIDGE": "dwx"}, reply_port="40001")
    assert (moved.port, moved.reply_port, moved.transport) == (40000, 40001, "push-pull")
    judged = settings({"GATE_EXPECT_STATUS": "OK"}, bridge="dwx")
    assert judged.dialect.judgement.expression.startswith("default_ready")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--transport", "push-pull"], "needs --reply-port / GATEWAY_REPLY_PORT"),
        (["--reply-port", "5556"], "has no effect with --transport req"),
        (["--transport", "handshake", "--ping-request", '{"a":1}'], "sends no request"),
        (["--transport", "carrier-pigeon"], "expected one of req, push-pull"),
        (["--bridge", "nope"], "expected one of mt5-gate"),
        (["--ping-request", "  "], "must not be empty"),
        (["--ping-request", "HEARTBEAT;$now"], "placeholders work only in JSON requests"),
        (
            ["--bridge", "mql5-json-api", "--status-request", '{"action":"trade"}'],
            "refuses the request",
        ),
    ],
)
def test_invalid_transport_settings_are_one_line_usage_errors(argv: list[str], says: str) -> None:
    assert says in usage_error(["wait", "--host", "gw", *argv], {})


def test_a_text_request_is_sent_as_written() -> None:
    text = settings(ping_request="HEARTBEAT;").dialect.ping
    assert (text.render(), text.is_json) == (b"HEARTBEAT;", False)


def test_handshake_sends_no_status_even_from_the_default() -> None:
    assert settings(transport="handshake").dialect.status is None


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (
            b"{'_action': 'heartbeat', '_response': 'loud and clear!'}",
            {"_action": "heartbeat", "_response": "loud and clear!"},
        ),
        (
            b"{'a': -1.5, 'b': None, 'c': True, 'd': (1, 2), 'e': {3: 'x'}}",
            {"a": -1.5, "b": None, "c": True, "d": [1, 2], "e": {"3": "x"}},
        ),
        # darwinex's account reply, with its spacing quirks.
        (
            b"{'_action': 'GET_ACCOUNT_INFORMATION', 'account_number':123, '_data': "
            b"[{'account_balance':10000.00000000, 'account_leverage' :100}]}",
            {
                "_action": "GET_ACCOUNT_INFORMATION",
                "account_number": 123,
                "_data": [{"account_balance": 10000.0, "account_leverage": 100}],
            },
        ),
    ],
)
def test_python_literal_replies_are_decoded(raw: bytes, value: Any) -> None:
    assert decode_reply([raw]) == value


@pytest.mark.parametrize(
    "text",
    [
        "{'a': __import__('os').system('touch mt5-gate-pwned')}",
        "{'a': open('/etc/passwd')}",
        "{**{'a': 1}}",
        "{'a': 1 + 1}",
        "{'a': b'bytes'}",
        "{'a': {1, 2}}",
        "{'a': 1",
    ],
)
def test_anything_but_a_plain_literal_is_not_a_literal_and_nothing_runs(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert python_literal(text) is None
    assert decode_reply([text.encode()]) == text  # judged as text: never ready by default
    assert not (tmp_path / "mt5-gate-pwned").exists()


def test_a_literal_giving_a_key_twice_is_bad_reply() -> None:
    with pytest.raises(AttemptFailed, match="twice"):
        decode_reply([b"{'status': 'ERROR', 'status': 'OK'}"])


@pytest.mark.parametrize("depth", [150, 100_000])
def test_a_deeply_nested_literal_is_never_a_crash_nor_ready(depth: int) -> None:
    raw = b"{'a': " + b"[" * depth + b"]" * depth + b"}"
    try:
        value = decode_reply([raw])
    except AttemptFailed as failed:
        reason = failed.reason.value
        value = None
    else:
        reason = "decoded"
    assert reason in ("bad_reply", "decoded")
    assert value is None or isinstance(value, (str, dict))
    if isinstance(value, str):  # past the parser's nesting limit: plain text, never ready
        with pytest.raises(NotReady):
            settings().dialect.judge([raw])


@pytest.mark.parametrize(
    ("reply", "state"),
    [
        ({"_response": "TRADING_IS_NOT_ALLOWED__ABORTED_COMMAND"}, "trading_not_allowed"),
        ({"error": False, "trading_allowed": 1, "bot_trading": 0}, "ea_trading_off"),
        ({"error": False, "trading_allowed": 0, "bot_trading": 1}, "algo_trading_off"),
        ({"status": "OK", "data": [{"note": "no_broker_connection"}]}, "no_broker_connection"),
    ],
)
def test_the_default_judgement_never_accepts_a_reply_naming_a_broker_state(
    reply: dict[str, Any], state: str
) -> None:
    with pytest.raises(NotReady) as refused:
        settings().dialect.judge([json.dumps(reply).encode()])
    assert refused.value.broker_state == state
    assert refused.value.advice is not None
    assert "mt5-gate explain --reason broker-state-" in refused.value.advice


def test_the_json_api_judgement_reads_flags_as_jmespath_cannot() -> None:
    """Inside && JMESPath takes 0 for true: the preset compares the flags instead."""
    judge = settings(bridge="mql5-json-api").dialect.judge
    base = {"error": False, "server": "S", "trading_allowed": 1, "bot_trading": 1}
    assert judge([json.dumps(base).encode()]) == base
    for key in ("trading_allowed", "bot_trading"):
        with pytest.raises(NotReady):
            judge([json.dumps({**base, key: 0}).encode()])
    with pytest.raises(UsageError):
        settings(bridge="mql5-json-api", ping_request='{"action":"TRADE"}')
