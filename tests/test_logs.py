"""Logs: one JSON object per line, stable event names, gateway text that cannot forge lines."""

from __future__ import annotations

import io
import json

import pytest
import zmq

from entrypoint.log.logs import configure_logging, get_logger, untrusted
from tests.support import servers
from tests.support.bounds import after_deadline
from tests.support.cli import run_gate
from tests.support.helpers import base_env
from tests.support.sockets import held_closed_port

HOSTILE_STATUS = (
    'BAD"}\n{"timestamp": "2026-01-01T00:00:00Z", "level": "info", '
    '"event": "gate.ready"}\x1b[2J\x1b[31mred\r'
)


def test_every_line_is_json_with_timestamp_level_event() -> None:
    """Each stderr line of a failing wait is a JSON object with the three fixed keys."""
    ran = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(held_closed_port()),
            "--timeout",
            "0.5",
            "--backoff-initial",
            "0.1",
        ]
    )
    assert ran.code == 69
    assert len(ran.events) >= 3
    for event in ran.events:
        assert list(event)[:3] == ["timestamp", "level", "event"]
        assert event["timestamp"].endswith("Z")
        assert event["event"].startswith("gate.")


def test_hostile_reply_cannot_forge_log_lines_or_escape_codes() -> None:
    """A status with newlines, ANSI escapes and fake JSON stays inside one escaped field."""
    reply = json.dumps({"status": HOSTILE_STATUS}).encode()
    with servers.zmq_server(zmq.ROUTER, lambda _req: [reply]) as port:
        done = run_gate(
            [
                "wait",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--timeout",
                "0.6",
                "--backoff-initial",
                "0.1",
            ],
            timeout=after_deadline(0.6),
            log="text",
        )
    text = done.stderr
    assert done.code == 69
    assert "\x1b" not in text
    assert "\r" not in text
    lines = text.splitlines()
    events = [json.loads(line) for line in lines]
    assert sum(e["event"] == "gate.ready" for e in events) == 0
    failed = [e for e in events if e["event"] == "gate.attempt_failed"]
    assert failed
    assert all(e["reason"] == "not_ready" for e in failed)


def test_untrusted_text_is_escaped_and_truncated() -> None:
    """untrusted() keeps output ASCII, single-line, and within its limit."""
    text = untrusted({"s": HOSTILE_STATUS + "é" * 500}, limit=120)
    assert len(text) <= 120
    assert "\n" not in text
    assert "\x1b" not in text
    assert text.isascii()


def test_untrusted_survives_deep_nesting() -> None:
    """Data too deep for json.dumps is still rendered, not raised."""
    deep: list[object] = []
    node = deep
    for _ in range(5000):
        child: list[object] = []
        node.append(child)
        node = child
    assert untrusted(deep).startswith('"')


def test_console_format_reads_as_text_without_colour_off_a_tty() -> None:
    """--log-format console: key=value text, and no colour codes when stderr is a pipe."""
    done = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(held_closed_port()),
            "--timeout",
            "0.3",
            "--log-format",
            "console",
        ],
        timeout=after_deadline(0.3),
        log="text",
    )
    text = done.stderr
    assert done.code == 69
    assert "gate.start" in text
    assert "reason=refused" in text
    assert "\x1b[" not in text
    assert not text.lstrip().startswith("{")


@pytest.mark.parametrize(("no_color", "expect_colour"), [(False, True), (True, False)])
def test_colour_only_on_a_tty_and_never_with_no_color(no_color: bool, expect_colour: bool) -> None:
    """auto format on a TTY is coloured console output; NO_COLOR turns the colour off."""
    env = base_env()
    del env["GATE_LOG_FORMAT"]
    if no_color:
        env["NO_COLOR"] = "1"
    done = run_gate(
        ["wait", "--host", "127.0.0.1", "--port", str(held_closed_port()), "--timeout", "0.3"],
        env,
        tty="stderr",
        log="text",
    )
    assert done.code == 69
    assert "gate.timeout" in done.stderr
    assert ("\x1b[" in done.stderr) is expect_colour


def test_tracebacks_carry_no_local_variables() -> None:
    """An exception logged by the gate renders without local variables (they may be secrets)."""
    stream = io.StringIO()
    configure_logging("json", "info", stream)
    secret = "curve-secret-value"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger().exception("gate.error")
    assert secret not in stream.getvalue()
    assert "boom" in stream.getvalue()
    assert json.loads(stream.getvalue())["event"] == "gate.error"


def test_log_level_filters_events() -> None:
    """--log-level error hides info and warning events."""
    ran = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(held_closed_port()),
            "--timeout",
            "0.3",
            "--log-level",
            "error",
        ]
    )
    assert ran.code == 69
    assert [e["event"] for e in ran.events] == ["gate.timeout"]


def test_a_wait_emits_exactly_the_documented_events_in_order() -> None:
    """A wait that times out logs gate.start, gate.attempt_failed..., gate.timeout: the
    event names users script against, each with its documented fields."""
    ran = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(held_closed_port()),
            "--timeout",
            "0.5",
            "--backoff-initial",
            "0.1",
        ]
    )
    assert ran.code == 69
    names = [e["event"] for e in ran.events]
    assert names[0] == "gate.start"
    assert names[-1] == "gate.timeout"
    assert set(names[1:-1]) == {"gate.attempt_failed"}
    assert {"target", "pid", "deadline_s", "ping_request", "ready_when"} <= set(ran.events[0])
    assert {"attempt", "stage", "reason", "error", "hint"} <= set(ran.events[1])
    assert {"elapsed_s", "attempts", "last_reason", "exit_code"} <= set(ran.events[-1])
