"""Logging, configured once per process: JSON lines for machines, readable lines for people.

Every event is one line on stderr, flushed as it is written, with ``timestamp`` (ISO 8601
UTC), ``level`` and ``event``. Tracebacks are rendered without local variables, which can
hold secrets. Text that came from the gateway goes through ``untrusted`` first, so it is
JSON-escaped and truncated and can never forge a log line or a terminal escape.

The logger is structlog's in shape (``get_logger().bind(...).info("event", key=value)``,
level filtering, ``exception()``), but the JSON format is written here without structlog:
``import structlog`` imports asyncio, and a healthcheck every 10 s would pay for it on
every run. structlog renders the console format only, and is imported when the first
console line is written (``consolelog``). Before ``configure_logging`` has been called,
events go to structlog's own default configuration, as they always did.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TextIO, cast

from entrypoint.files import forget_standard_stream

UNTRUSTED_LIMIT = 300
# Secrets the gate sends (a bridge token from "$file:..."): a bridge may echo them back in
# a reply, whole or in part, so every rendered reply and log event is scrubbed of every
# piece of them this long (in UTF-8 bytes). A shorter piece is no help to a guesser, and
# hiding it would blank out ordinary text; a shorter secret is refused at start
# (requests.MIN_SECRET_BYTES) and, if registered anyway, is only hidden whole.
SCRUB_PIECE_BYTES = 8
MIN_SCRUBBED_LEN = 4


class _Pieces:
    """Every piece of one secret of ``SCRUB_PIECE_BYTES`` bytes, as it can appear in text
    the gate shows: as is, JSON-escaped (once, and twice: a reply quoted in an error),
    as undecodable bytes are shown (``\\xNN``), as UTF-16 read as UTF-8, and in hex.
    ``spans`` looks for each with str.find (C speed): a few dozen microseconds for a
    log line, a few milliseconds for 64 KiB."""

    __slots__ = ("pieces",)

    def __init__(self, secret: str) -> None:
        self.pieces = tuple(
            sorted({shown for piece in _pieces_of(secret) for shown in _renderings(piece)})
        )

    def spans(self, text: str) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        for piece in self.pieces:
            start = text.find(piece)
            while start >= 0:
                found.append((start, start + len(piece)))
                start = text.find(piece, start + 1)
        return found


def _pieces_of(secret: str) -> list[str]:
    """Each shortest run of the secret's characters that is at least SCRUB_PIECE_BYTES long
    in UTF-8 (the whole secret when it is shorter)."""
    if len(secret.encode()) <= SCRUB_PIECE_BYTES:
        return [secret]
    pieces = []
    for start in range(len(secret)):
        end = start + 1
        while end <= len(secret) and len(secret[start:end].encode()) < SCRUB_PIECE_BYTES:
            end += 1
        if end > len(secret):
            break
        pieces.append(secret[start:end])
    return pieces


def _renderings(piece: str) -> set[str]:
    escaped = json.dumps(piece, ensure_ascii=True)[1:-1]
    raw = piece.encode()
    as_bytes = raw.decode("ascii", "backslashreplace")  # how undecodable bytes are shown
    wide = [piece.encode(codec).decode("latin-1") for codec in ("utf-16-le", "utf-16-be")]
    forms = {piece, escaped, as_bytes, raw.hex(), raw.hex().upper(), *wide}
    # Each of them JSON-escaped, and escaped again: a reply quoted inside an error message.
    for form in list(forms):
        once = json.dumps(form, ensure_ascii=True)[1:-1]
        forms.update((once, json.dumps(once, ensure_ascii=True)[1:-1]))
    return forms


_SECRETS: list[_Pieces] = []

# structlog's (and logging's) level numbers and names.
DEBUG, INFO, WARNING, ERROR, CRITICAL = 10, 20, 30, 40, 50
_LEVEL_NAMES = {
    DEBUG: "debug",
    INFO: "info",
    WARNING: "warning",
    ERROR: "error",
    CRITICAL: "critical",
}
_LEVELS = {
    "notset": 0,
    "debug": DEBUG,
    "info": INFO,
    "warn": WARNING,
    "warning": WARNING,
    "error": ERROR,
    "fatal": CRITICAL,
    "critical": CRITICAL,
}


def register_secret(text: str) -> None:
    if len(text) >= MIN_SCRUBBED_LEN:
        pieces = _Pieces(text)
        # One token in both requests (ping and status) is indexed once, not scanned twice.
        if all(known.pieces != pieces.pieces for known in _SECRETS):
            _SECRETS.append(pieces)


def scrub(text: str) -> str:
    """``text`` with every piece of every registered secret (SCRUB_PIECE_BYTES or longer,
    in any rendering ``_Pieces`` knows) replaced by ``***``: overlapping and adjacent
    pieces are one run, hidden as one."""
    if not _SECRETS:
        return text
    spans = sorted(span for secret in _SECRETS for span in secret.spans(text))
    if not spans:
        return text
    kept: list[str] = []
    at = 0
    run_start, run_end = spans[0]
    for start, end in spans[1:]:
        if start <= run_end:
            run_end = max(run_end, end)
            continue
        kept.extend((text[at:run_start], "***"))
        at, run_start, run_end = run_end, start, end
    kept.extend((text[at:run_start], "***", text[run_end:]))
    return "".join(kept)


def untrusted(value: Any, limit: int = UNTRUSTED_LIMIT) -> str:
    """Render gateway-supplied data as ASCII-only JSON text, cut to ``limit`` characters,
    without any secret the gate sent (a bridge may echo a request back). Scrubbed before
    the cut: a cut first could leave a piece too short to recognise as the secret's."""
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


class _Output:
    """Where configured events go: the level below which they are dropped, the stream, and
    how an event dict becomes text (JSON here; ``consolelog`` for people)."""

    def __init__(
        self, stream: TextIO, min_level: int, render: Callable[[str, dict[str, Any]], str]
    ) -> None:
        self.stream = _BestEffort(stream)
        self.min_level = min_level
        self.render = render


_OUTPUT: _Output | None = None
_WRITE_LOCK = threading.Lock()  # whole lines, also from the --also threads


def configure_logging(
    log_format: str = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    """Send events to ``stream`` (stderr) in the format asked for, from ``level`` up."""
    global _OUTPUT  # noqa: PLW0603 - configured once per process (again in tests)
    out = stream if stream is not None else sys.stderr
    render: Callable[[str, dict[str, Any]], str] = _render_json
    if use_console(log_format, out):
        colors = _isatty(out) and not os.environ.get("NO_COLOR")  # empty: not set (no-color.org)
        render = _ConsoleOnFirstUse(colors)
    _OUTPUT = _Output(out, _LEVELS.get(level.lower(), INFO), render)


class _ConsoleOnFirstUse:
    """The console renderer, built (structlog imported) when the first line is written."""

    def __init__(self, colors: bool) -> None:
        self._colors = colors
        self._render: Callable[[str, dict[str, Any]], str] | None = None

    def __call__(self, method: str, event: dict[str, Any]) -> str:
        if self._render is None:
            from entrypoint.log.consolelog import ConsoleLines  # noqa: PLC0415 - see the docstring

            self._render = ConsoleLines(self._colors)
        return self._render(method, event)


class _BestEffort:
    """The log stream, where a failed write is dropped: stderr may be a pipe whose reader
    is gone. The gate's job (wait, then exec) must not fail because nobody listens."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):  # EPIPE, EBADF, or a closed file object
            forget_standard_stream("stderr", self._stream)
            return 0

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            forget_standard_stream("stderr", self._stream)


class GateLogger:
    """structlog's bound logger, as far as the gate uses it: ``bind``, the level methods,
    ``exception`` (the current traceback, rendered without local variables) and ``log``.
    Which output it writes to is looked up on every event, so a logger taken before
    ``configure_logging`` writes where that configured."""

    __slots__ = ("_context",)

    def __init__(self, context: dict[str, Any] | None = None) -> None:
        self._context: dict[str, Any] = context if context is not None else {}

    def __repr__(self) -> str:
        return f"<GateLogger(context={self._context!r})>"

    def bind(self, **values: Any) -> GateLogger:
        return GateLogger({**self._context, **values})

    def new(self, **values: Any) -> GateLogger:
        return GateLogger(dict(values))

    def unbind(self, *keys: str) -> GateLogger:
        context = dict(self._context)
        for key in keys:
            del context[key]
        return GateLogger(context)

    def try_unbind(self, *keys: str) -> GateLogger:
        return GateLogger({k: v for k, v in self._context.items() if k not in keys})

    def debug(self, event: str, *args: Any, **kw: Any) -> None:
        _emit(self._context, "debug", event, args, kw)

    def info(self, event: str, *args: Any, **kw: Any) -> None:
        _emit(self._context, "info", event, args, kw)

    msg = info

    def warning(self, event: str, *args: Any, **kw: Any) -> None:
        _emit(self._context, "warning", event, args, kw)

    warn = warning

    def error(self, event: str, *args: Any, **kw: Any) -> None:
        _emit(self._context, "error", event, args, kw)

    def critical(self, event: str, *args: Any, **kw: Any) -> None:
        _emit(self._context, "critical", event, args, kw)

    fatal = critical

    def exception(self, event: str, *args: Any, **kw: Any) -> None:
        kw.setdefault("exc_info", True)
        self.error(event, *args, **kw)

    def log(self, level: int, event: str, *args: Any, **kw: Any) -> None:
        if level >= _min_level():
            _emit(self._context, _LEVEL_NAMES[level], event, args, kw)

    def is_enabled_for(self, level: int) -> bool:
        return level >= _min_level()

    def get_effective_level(self) -> int:
        return _min_level()


def _min_level() -> int:
    return _OUTPUT.min_level if _OUTPUT is not None else 0


def _emit(
    context: dict[str, Any], method: str, event: str, args: tuple[Any, ...], kw: dict[str, Any]
) -> None:
    output = _OUTPUT
    if output is None:  # not configured: structlog's defaults, as before
        import structlog  # noqa: PLC0415 - only in tests and tools that never configure

        getattr(structlog.get_logger("mt5-gate").bind(**context), method)(event, *args, **kw)
        return
    if _LEVELS[method] < output.min_level:
        return
    if args:  # structlog's %-interpolation
        mapping = len(args) == 1 and isinstance(args[0], Mapping) and args[0]
        event = event % (args[0] if mapping else args)
    event_dict = dict(context)
    event_dict.update(kw)
    event_dict["event"] = event
    # The processors structlog ran, in its order: add_log_level, TimeStamper (ISO, UTC),
    # _order_keys, format_exc_info, _scrub_secrets; then the renderer.
    event_dict["level"] = method
    event_dict["timestamp"] = _now_iso()
    event_dict = _order_keys(None, method, event_dict)
    event_dict = _format_exc_info(event_dict)
    event_dict = cast(dict[str, Any], _scrub_secrets(None, method, event_dict))
    with _WRITE_LOCK:  # rendered in order too: the console's hint-once state is shared
        output.stream.write(output.render(method, event_dict) + "\n")
        output.stream.flush()


def _now_iso() -> str:
    import datetime  # noqa: PLC0415 - only once a line is written (health writes none)

    return datetime.datetime.now(tz=datetime.UTC).isoformat().replace("+00:00", "Z")


def _render_json(_method: str, event: dict[str, Any]) -> str:
    return json.dumps(event, default=_json_fallback)


def _json_fallback(value: Any) -> Any:
    """What structlog's JSONRenderer does with what JSON cannot hold: its ``__structlog__``,
    or else its repr."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


def _format_exc_info(event: dict[str, Any]) -> dict[str, Any]:
    """structlog's format_exc_info: ``exc_info`` becomes ``exception``, the traceback as
    Python prints it (no local variables)."""
    exc_info = _exc_info(event.pop("exc_info", None))
    if exc_info is not None:
        import traceback  # noqa: PLC0415 - only when there is a traceback to show

        text = "".join(traceback.format_exception(*exc_info))
        event["exception"] = text[:-1] if text.endswith("\n") else text
    return event


def _exc_info(value: Any) -> tuple[Any, BaseException, Any] | None:
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return value
    if value:
        current = sys.exc_info()
        return current if current[1] is not None else None
    return None


def _scrub_secrets(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
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
    head: dict[str, Any] = {
        key: event.pop(key) for key in ("timestamp", "level", "event") if key in event
    }
    return {**head, **event}


def get_logger() -> GateLogger:
    return GateLogger()
