"""Logging, configured once per process: JSON lines for machines, readable lines for people.

Every event is one line on stderr, flushed as it is written, with ``timestamp`` (ISO 8601
UTC), ``level`` and ``event``. Tracebacks are rendered without local variables, which can
hold secrets. Text that came from the gateway goes through ``untrusted`` first, so it is
JSON-escaped and truncated and can never forge a log line or a terminal escape.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import structlog

UNTRUSTED_LIMIT = 300
# Secrets the gate sends (a bridge token from "$file:..."): a bridge may echo them back in
# a reply, so every rendered reply and log event is scrubbed of them. Shorter ones would
# blank out ordinary text and protect nothing.
MIN_SCRUBBED_LEN = 4
_SECRETS: list[tuple[str, str]] = []  # (as sent, as it appears JSON-escaped)


def register_secret(text: str) -> None:
    if len(text) >= MIN_SCRUBBED_LEN:
        _SECRETS.append((text, json.dumps(text, ensure_ascii=True)[1:-1]))


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for raw, escaped in _SECRETS:
        text = text.replace(raw, "***").replace(escaped, "***")
    return text


def untrusted(value: Any, limit: int = UNTRUSTED_LIMIT) -> str:
    """Render gateway-supplied data as ASCII-only JSON text, cut to ``limit`` characters,
    without any secret the gate sent (a bridge may echo a request back)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    try:
        text = scrub(json.dumps(value, ensure_ascii=True, default=repr))
    except (ValueError, RecursionError):
        text = '"<nested too deeply to render>"'
    if len(text) > limit:
        return text[: limit - 3] + "..."
    return text


def use_console(log_format: str, stream: TextIO) -> bool:
    if log_format == "auto":
        return _isatty(stream)
    return log_format == "console"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def configure_logging(log_format: str = "auto", level: str = "info",
                      stream: TextIO | None = None) -> None:
    """Point structlog at ``stream`` (stderr) with the renderer the format asks for."""
    out = stream if stream is not None else sys.stderr
    renderer: Any
    for_people: list[Any] = []
    if use_console(log_format, out):
        for_people = [_HintOncePerReason()]
        colors = _isatty(out) and not os.environ.get("NO_COLOR")  # empty: not set (no-color.org)
        renderer = structlog.dev.ConsoleRenderer(
            colors=colors, sort_keys=False,
            exception_formatter=structlog.dev.plain_traceback,
        )
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            _order_keys,
            structlog.processors.format_exc_info,
            _scrub_secrets,
            *for_people,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, _BestEffort(out))),
        cache_logger_on_first_use=False,
    )


class _BestEffort:
    """The log stream, where a failed write is dropped: stderr may be a pipe whose reader
    is gone. The gate's job (wait, then exec) must not fail because nobody listens."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):  # EPIPE, EBADF, or a closed file object
            return 0

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()


class _HintOncePerReason:
    """Console only: a person reads the hint once per change of reason (per target), not on
    every attempt. JSON keeps it on every line: a machine, or `explain`, may see any one."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]
                 ) -> MutableMapping[str, Any]:
        if event.get("event") == "gate.attempt_failed" and "hint" in event:
            target, reason = str(event.get("target", "")), str(event.get("reason"))
            if self._last.get(target) == reason:
                del event["hint"]
            self._last[target] = reason
        return event


def _scrub_secrets(_logger: Any, _name: str, event: MutableMapping[str, Any]
                   ) -> MutableMapping[str, Any]:
    """Last line of defence: no registered secret in any string of any event."""
    if not _SECRETS:
        return event
    return {key: _scrubbed(value) for key, value in event.items()}


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: _scrubbed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(item) for item in value]
    return value


def _order_keys(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """Put timestamp, level and event first so a JSON line reads well in `docker logs`."""
    head: dict[str, Any] = {key: event.pop(key) for key in ("timestamp", "level", "event")
                            if key in event}
    return {**head, **event}


def get_logger() -> Any:
    return structlog.get_logger("mt5-gate")
