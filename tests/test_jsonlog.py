"""The JSON log lines, written without structlog, are the lines structlog wrote.

``entrypoint.log.logs`` writes the JSON format itself (``import structlog`` imports asyncio,
which a healthcheck every 10 s would pay for). Each test here logs the same events through
the configuration the gate used to give structlog and through ``configure_logging("json")``
and compares the lines byte for byte, the timestamp's value aside (its format is checked).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from entrypoint.log import logs

TIMESTAMP = re.compile(r'"timestamp": "(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z)"')


def structlog_as_it_was(stream: io.StringIO, level: str = "info") -> Any:
    """The JSON configuration the gate gave structlog before it wrote JSON itself."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            logs._order_keys,
            structlog.processors.format_exc_info,
            logs._scrub_secrets,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    return structlog.get_logger("mt5-gate")


def both(emit: Callable[[Any], None], level: str = "info") -> tuple[list[str], list[str]]:
    """(structlog's lines, ours) for the same calls, timestamps replaced by a marker."""
    old, new = io.StringIO(), io.StringIO()
    emit(structlog_as_it_was(old, level))
    logs.configure_logging("json", level, new)
    emit(logs.get_logger())
    lines = []
    for text in (old.getvalue(), new.getvalue()):
        assert all(TIMESTAMP.search(line) for line in text.splitlines()), text
        lines.append(TIMESTAMP.sub('"timestamp": "T"', text).splitlines())
    return lines[0], lines[1]


class Custom:
    def __structlog__(self) -> str:
        return "custom-rendering"


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


def test_events_fields_and_their_order_are_the_same() -> None:
    def emit(log: Any) -> None:
        log.info(
            "gate.start",
            target="127.0.0.1:5555",
            pid=1,
            reply_port=None,
            backoff={"initial_s": 0.5, "max_s": 10.0},
            expect_status=["OK", "PONG"],
            command=("python", "-m", "x"),
            ratio=1.5,
            flag=True,
            text="é\n\x1b[2J",
            custom=Custom(),
            opaque=Opaque(),
            seen={3},
        )
        log.warning("gate.attempt_failed", attempt=2, reason="refused", hint="see docs")
        log.error("gate.timeout", error="did not answer", exit_code=69)
        log.debug("gate.request", via="req")  # below the level: not written
        log.info("gate.odd", level="mine", timestamp="mine", event_id=3)
        log.info("sim.request n=%d of %s", 3, "them")
        log.info("sim.map %(n)s", {"n": 4})

    old, new = both(emit)
    assert new == old
    assert len(new) == 6
    assert list(json.loads(new[0]))[:3] == ["timestamp", "level", "event"]


def test_bound_values_come_first_and_can_be_overridden() -> None:
    def emit(log: Any) -> None:
        bound = log.bind(component="sim", target="a")
        bound.info("sim.listening", port=5555, target="b")
        bound.bind(extra=1).warning("sim.reply_dropped", n=2)
        log.info("gate.plain")  # binding made a new logger; this one has no context

    old, new = both(emit)
    assert new == old


def test_tracebacks_are_the_same_and_carry_no_local_variables() -> None:
    def emit(log: Any) -> None:
        secret = "curve-secret-value"  # a local variable of the failing frame
        try:
            raise RuntimeError(f"boom {len(secret)}")
        except RuntimeError:
            log.exception("gate.error", error="internal error", exit_code=70)
            log.error("gate.error", exc_info=True)
            log.info("gate.note", exc_info=False)
        empty: dict[str, int] = {}
        try:
            empty["missing"]
        except KeyError as exc:
            log.warning("gate.warn", exc_info=exc)
        log.exception("gate.outside")  # no exception being handled: no "exception" key

    old, new = both(emit)
    assert new == old
    assert "curve-secret-value" not in "".join(new)
    assert "RuntimeError: boom 18" in json.loads(new[0])["exception"]
    assert "exception" not in json.loads(new[-1])


def test_level_filtering_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    def emit(log: Any) -> None:
        for method in ("debug", "info", "warning", "warn", "error", "critical", "msg"):
            getattr(log, method)(f"gate.{method}")
        log.log(logging.WARNING, "gate.log_warning")
        log.log(logging.DEBUG, "gate.log_debug")

    for level in ("debug", "info", "warning", "error"):
        old, new = both(emit, level)
        assert new == old, level


def test_secrets_are_scrubbed_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_SECRETS", [])
    logs.register_secret('tok"en-1234')

    def emit(log: Any) -> None:
        log.info(
            "gate.start",
            ping_request='{"token":"tok\\"en-1234"}',
            nested={"list": ['tok"en-1234', 1], "tuple": ('x tok"en-1234',)},
        )

    old, new = both(emit)
    assert new == old
    assert "1234" not in new[0]


def test_a_logger_taken_before_configuration_writes_where_configured() -> None:
    """cli._guarded takes its logger before the command configures logging."""
    early = logs.get_logger().bind(component="early")
    stream = io.StringIO()
    logs.configure_logging("json", "info", stream)
    early.info("gate.late")
    assert json.loads(stream.getvalue())["component"] == "early"


def test_a_write_that_fails_is_dropped() -> None:
    """stderr may be a pipe nobody reads any more: the event is lost, the gate goes on."""
    stream = io.StringIO()
    logs.configure_logging("json", "info", stream)
    stream.close()
    logs.get_logger().info("gate.unheard")  # no exception


def test_unconfigured_events_go_to_structlog_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before configure_logging (a test, a tool), structlog's own configuration applies, so
    structlog.testing.capture_logs sees the gate's events."""
    monkeypatch.setattr(logs, "_OUTPUT", None)
    with capture_logs() as captured:
        logs.get_logger().bind(target="t").warning("gate.attempt_failed", attempt=1)
    assert captured == [
        {"target": "t", "attempt": 1, "event": "gate.attempt_failed", "log_level": "warning"}
    ]
