"""The bridge's dialect: which request the gate sends, and how a reply is judged.

Real MT5 bridges disagree on both. The readiness request is a JSON template
(``--ping-request``), the informational one after readiness another (``--status-request``,
or none), and readiness itself a JMESPath expression evaluated on the reply
(``--ready-when``). Every command that talks to the gateway (wait, probe, health, mesh,
``--also zmq+req://``) builds its requests and judges its replies here and nowhere else.

Templates may hold placeholders as whole JSON string values, filled per request:
``"$now"`` (ISO 8601 UTC), ``"$now_epoch"`` (float seconds), ``"$uuid"`` (uuid4), and
``"$file:/path"`` (a file's stripped content, read once at start: a token). A file's
content is a secret: it is only ever in the rendered request bytes, never in a log, an
error, a repr or the runner's environment. ``"$$..."`` stands for a literal ``"$..."``.

Replies are untrusted. A single UTF-8 frame is decoded as JSON, or judged as a JSON string
when it is text but not JSON (a bridge answering a bare ``OK``). What Windows bridges add
around their text is tolerated: a UTF-8 byte-order mark, a C string's terminating NUL
(MQL5's ``StringToCharArray`` copies it), white space around plain text; and JSON sent as
UTF-16 or Windows-1252 is read as JSON. A reply that cannot be decoded at all is
``bad_reply``; one that decodes but fails the judgement is ``not_ready``.
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.functions

from entrypoint.errors import AttemptFailed, UsageError
from entrypoint.logs import register_secret, untrusted
from entrypoint.reasons import Reason

DEFAULT_PING_REQUEST = '{"action":"PING","timestamp":"$now","source":"mt5-gate"}'
DEFAULT_STATUS_REQUEST = '{"action":"STATUS"}'
NO_REQUEST = "none"
# A token file is a few dozen bytes; anything this big was named by mistake.
MAX_FILE_PLACEHOLDER_BYTES = 64 * 1024
# The default judgement (no --ready-when): ``default_ready`` below, with the accepted
# statuses from --expect-status. It is a JMESPath function, so --ready-when can build on it.
DEFAULT_JUDGEMENT = "default_ready(@, {statuses})"
# Keys whose values change from one reply to the next without saying anything about
# readiness; ignored when deciding whether not_ready replies are "the same reply again".
_VOLATILE_KEY = re.compile(r"time|date|stamp|uuid|nonce|^seq|^id$|_id$|^ts$|uptime",
                           re.IGNORECASE)


class _Functions(jmespath.functions.Functions):
    """``upper()`` and ``lower()``, so that an expression can compare statuses whatever
    their case; ``default_ready(@, statuses)``, the default judgement."""

    @jmespath.functions.signature({"types": []}, {"types": ["array"]})
    def _func_default_ready(self, reply: Any, statuses: list[Any]) -> bool:
        return default_ready(reply, statuses)

    @jmespath.functions.signature({"types": ["string"]})
    def _func_upper(self, text: str) -> str:
        return text.upper()

    @jmespath.functions.signature({"types": ["string"]})
    def _func_lower(self, text: str) -> str:
        return text.lower()


_OPTIONS = jmespath.Options(custom_functions=_Functions())


# --- the default judgement -------------------------------------------------------------

# Top-level keys that carry a bridge's verdict, compared whatever their case (bridges in
# C# and MQL5 write Status, OK, Error).
_STATUS_KEYS = frozenset({"status"})
_YES_NO_KEYS = frozenset({"ok", "success"})
_ERROR_KEYS = frozenset({"error", "errors", "err"})
_RESULT_KEYS = frozenset({"result"})
_SAYS_NO = frozenset({"false", "0", "no"})
# Words that mean "no" as a whole status or result: never accepted as a result, never
# suggested as the status to accept (probe's fix line).
REFUSING_WORDS = frozenset({
    "ERROR", "ERR", "FAIL", "FAILED", "FAILURE", "DENIED", "UNAUTHORIZED", "UNAUTHORISED",
    "FORBIDDEN", "INVALID", "REJECTED", "UNKNOWN", "MAINTENANCE", "DISCONNECTED", "DOWN",
    "BUSY", "OFFLINE", "DEAD", "EXCEPTION", "TIMEOUT", "NOK", "KO", "NOT", "NO", "BAD",
    "WRONG", "MISSING", "UNAVAILABLE", "STOPPED", "CLOSED", "HALTED", "REFUSED", "ABORTED",
    "EXPIRED", "DISABLED", "UNSUPPORTED", "NONE", "NULL", "FALSE",
})


def default_ready(reply: Any, statuses: Iterable[Any]) -> bool:
    """The default judgement, exactly as docs/BRIDGES.md states it.

    Ready when the reply is a JSON object, and among its top-level keys (any case):
    every ``status`` is in ``statuses`` (as text, case-insensitively); no ``ok`` or
    ``success`` says no (false, 0, "false", "0", "no"); every ``error``, ``errors`` and
    ``err`` is null, false or empty; and no ``result`` is false or a refusing word."""
    if not isinstance(reply, dict) or refusing_key(reply) is not None:
        return False
    accepted = {_as_text(status).upper() for status in statuses}
    return all(_as_text(value).upper() in accepted for key, value in reply.items()
               if str(key).lower() in _STATUS_KEYS)


def refusing_key(reply: dict[Any, Any]) -> Any:
    """The first top-level key whose value says no (``ok``/``success`` false or 0, a
    non-empty ``error``/``errors``/``err``, a ``result`` that is false or a refusing
    word), whatever its case; None when none does. Shared by the default judgement and
    probe's fix line, so the two never disagree on what a refusal is."""
    for key, value in reply.items():
        name = str(key).lower()
        if (name in _YES_NO_KEYS and _says_no(value)) or (
                name in _ERROR_KEYS and not _is_empty(value)) or (
                name in _RESULT_KEYS and (value is False or (
                    isinstance(value, str) and value.strip().upper() in REFUSING_WORDS))):
            return key
    return None


def _as_text(value: Any) -> str:
    """A status as text: a string as it is, anything else as JSON writes it (200, true)."""
    return value if isinstance(value, str) else json.dumps(value)


def _says_no(value: Any) -> bool:
    if value is False:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == 0
    return isinstance(value, str) and value.strip().lower() in _SAYS_NO


def _is_empty(value: Any) -> bool:
    """null, false, "", [] or {}; the number 0 is an error code, not "no error"."""
    return value is None or value is False or (
        isinstance(value, (str, list, dict)) and not value)


# --- requests --------------------------------------------------------------------------

def _now(_arg: str) -> Any:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _now_epoch(_arg: str) -> Any:
    return time.time()


def _uuid(_arg: str) -> Any:
    import uuid  # noqa: PLC0415 - a millisecond of start-up, only for templates that use it

    return str(uuid.uuid4())


_PER_REQUEST: dict[str, Callable[[str], Any]] = {
    "$now": _now, "$now_epoch": _now_epoch, "$uuid": _uuid,
}
PLACEHOLDERS = (*_PER_REQUEST, "$file:PATH")


class _Secret:
    """A ``$file:`` value: its text renders into requests, never into anything shown."""

    __slots__ = ("_text", "path")

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self._text = text
        register_secret(text)

    def reveal(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"<secret from {self.path}>"


@dataclasses.dataclass(frozen=True)
class RequestTemplate:
    """A request with its placeholders located; ``render`` fills them in."""

    text: str  # as configured: placeholders unfilled, so it is safe to log
    _body: Any = dataclasses.field(repr=False, compare=False)

    def render(self) -> bytes:
        return json.dumps(_fill(self._body), separators=(",", ":")).encode()

    def describe(self) -> str:
        return " ".join(self.text.split())


def _fill(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _fill(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(value) for value in node]
    if isinstance(node, _Secret):
        return node.reveal()
    if isinstance(node, _Placeholder):
        return node.make(node.name)
    return node


@dataclasses.dataclass(frozen=True)
class _Placeholder:
    name: str
    make: Callable[[str], Any]


def parse_request(text: str, where: str) -> RequestTemplate:
    """A request template from its JSON text, or UsageError naming ``where`` (flag / VAR).

    ``$file:`` placeholders are read now, once; the others are filled per request."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        detail = f"{exc.msg} at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) \
            else "nested too deeply"
        raise UsageError(f"{where}: not valid JSON ({detail})") from None
    if not isinstance(body, dict):
        raise UsageError(f"{where}: must be a JSON object such as {DEFAULT_STATUS_REQUEST}")
    return RequestTemplate(text, _locate(body, where))


def _locate(node: Any, where: str) -> Any:
    if isinstance(node, dict):
        return {key: _locate(value, where) for key, value in node.items()}
    if isinstance(node, list):
        return [_locate(value, where) for value in node]
    if not isinstance(node, str) or not node.startswith("$"):
        return node
    if node.startswith("$$"):
        return node[1:]
    if node in _PER_REQUEST:
        return _Placeholder(node, _PER_REQUEST[node])
    if node.startswith("$file:"):
        return _read_secret(node[len("$file:"):], where)
    raise UsageError(f"{where}: unknown placeholder {untrusted(node, 40)}; known: "
                     f"{', '.join(PLACEHOLDERS)} (write $$ for a literal $)")


def _read_secret(path: str, where: str) -> _Secret:
    # Errors name the path, never the content.
    if not path:
        raise UsageError(f"{where}: $file: needs a path, e.g. \"$file:/run/secrets/token\"")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_PLACEHOLDER_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{where}: cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_FILE_PLACEHOLDER_BYTES:
        raise UsageError(f"{where}: {path} is larger than {MAX_FILE_PLACEHOLDER_BYTES} bytes")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UsageError(f"{where}: {path} is not UTF-8 text") from None
    if not text:
        raise UsageError(f"{where}: {path} is empty")
    return _Secret(path, text)


# --- judging replies -------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Judgement:
    """A JMESPath expression on the reply: truthy means ready. Truthy is JMESPath's sense
    (anything but false, null, "", [] and {}) less the number 0: bridges written in MQL5
    send booleans as 0/1, and ``GATE_READY_WHEN=connected`` must not pass on
    ``{"connected": 0}``. Failing closed here costs a wait; failing open starts a strategy
    against a disconnected terminal."""

    expression: str
    _compiled: Any = dataclasses.field(repr=False, compare=False)

    def accepts(self, reply: Any) -> bool:
        return is_truthy(self._compiled.search(reply, options=_OPTIONS))


def is_truthy(value: Any) -> bool:
    """Whether a judgement's value means ready (see ``Judgement``)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, (int, float)):
        return value != 0
    return value not in ("", [], {})


def default_expression(statuses: Iterable[str]) -> str:
    """The default judgement for these accepted statuses (a JSON literal: any text is safe)."""
    listed = json.dumps(sorted(statuses), separators=(",", ":")).replace("`", "\\`")
    return DEFAULT_JUDGEMENT.format(statuses=f"`{listed}`")


def parse_judgement(expression: str, where: str) -> Judgement:
    try:
        compiled = jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{where}: not a valid JMESPath expression: {first}") from None
    return Judgement(expression, compiled)


def decode_reply(frames: list[bytes]) -> Any:
    """The reply's value: JSON, or the text itself (stripped) when it is UTF-8 but not JSON.

    A UTF-8 byte-order mark and trailing NUL bytes are dropped first. Bytes that are not
    UTF-8 text (or are, but hold NULs: UTF-16 read as UTF-8) are tried as UTF-16 and as
    Windows-1252, and taken only if that gives JSON: anything else is ``bad_reply``, never
    guessed at."""
    if len(frames) != 1:
        raise AttemptFailed("reply", Reason.PROTOCOL,
                            f"multipart reply with {len(frames)} frames; expected one frame")
    raw = frames[0]
    # A C string ends at its first NUL; MQL5 sends the terminator, or a whole fixed-size
    # buffer with stale bytes after it.
    c_string, _nul, after = raw.removeprefix(codecs.BOM_UTF8).partition(b"\x00")
    text = _utf8(c_string)
    if text is not None and not after.strip(b"\x00"):
        try:
            return _json(text)
        except ValueError:
            return text.strip()  # plain text: judged as a JSON string
    # Bytes after a NUL, or not UTF-8: JSON in a C string's head, in UTF-16 or in
    # Windows-1252, and nothing else; a guess at text would be judged on garbage.
    for candidate in (text, *_other_encodings(raw)):
        if candidate is None:
            continue
        try:
            return _json(candidate)
        except ValueError:
            continue
    raise AttemptFailed("reply", Reason.BAD_REPLY,
                        f"reply is not UTF-8 (nor JSON in UTF-16 or Windows-1252): "
                        f"{untrusted(raw[:80])}")


def _json(text: str) -> Any:
    """json.loads; nesting too deep for the parser is bad_reply (not a crash), and so is
    a key given twice with different values: which one counts is the parser's guess, and
    {"status": "ERROR", "status": "OK"} must not be ready by that guess."""
    try:
        return json.loads(text, object_pairs_hook=_unambiguous)
    except RecursionError:
        raise AttemptFailed("reply", Reason.BAD_REPLY,
                            "reply is JSON nested too deeply to decode") from None


def _unambiguous(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj and obj[key] != value:
            raise AttemptFailed("reply", Reason.BAD_REPLY,
                                f"reply gives key {untrusted(key, 40)} twice, with different "
                                "values")
        obj[key] = value
    return obj


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _other_encodings(raw: bytes) -> Iterator[str]:
    """The reply read as UTF-16 (by its byte-order mark, else little-endian as Windows
    sends it), then as Windows-1252; each without a C string's terminating NULs."""
    if raw.startswith(codecs.BOM_UTF16_BE):
        candidates = [("utf-16-be", raw[2:])]
    else:
        candidates = [("utf-16-le", raw.removeprefix(codecs.BOM_UTF16_LE))]
    candidates.append(("cp1252", raw.rstrip(b"\x00")))
    for encoding, body in candidates:
        try:
            yield body.decode(encoding).rstrip("\x00")
        except UnicodeDecodeError:
            continue


@dataclasses.dataclass(frozen=True)
class Dialect:
    """What the gate asks the bridge, and when it takes the answer for "ready"."""

    ping: RequestTemplate
    status: RequestTemplate | None
    judgement: Judgement
    custom_judgement: bool = False  # --ready-when was given (not built from statuses)

    def judge(self, frames: list[bytes]) -> Any:
        """The decoded reply when it says ready; otherwise AttemptFailed (``not_ready``,
        ``bad_reply`` or ``protocol``)."""
        reply = decode_reply(frames)
        try:
            ready = self.judgement.accepts(reply)
        except RecursionError:
            raise AttemptFailed("reply", Reason.BAD_REPLY,
                                "reply is nested too deeply to judge") from None
        except Exception as exc:  # noqa: BLE001 - the reply is the bridge's: see below
            # The expression is checked at start; what it meets here is whatever the bridge
            # sent (a price as a string compared with a number, NaN in floor()), and jmespath
            # raises TypeError, ValueError or OverflowError as readily as its own errors.
            # Any of them means "not shown ready": retried, never a crash, never ready.
            raise AttemptFailed("reply", Reason.NOT_READY,
                                f"reply {untrusted(reply, 200)}: {self.judgement.expression} "
                                f"could not be evaluated on it "
                                f"({untrusted(f'{type(exc).__name__}: {exc}', 120)})") from None
        if not ready:
            raise NotReady(reply, self.judgement.expression)
        return reply

    def describe(self) -> dict[str, Any]:
        """What gate.start logs: the templates as configured ($file: paths, not contents)."""
        return {"ping_request": self.ping.describe(),
                "status_request": self.status.describe() if self.status else None,
                "ready_when": self.judgement.expression}


class NotReady(AttemptFailed):
    """A well-formed reply that the judgement rejects: the bridge says "not (yet)"."""

    def __init__(self, reply: Any, expression: str) -> None:
        super().__init__("reply", Reason.NOT_READY,
                         f"reply {untrusted(reply, 200)} does not satisfy {expression}")
        self.reply = reply
        # The reply without the parts that differ every time (timestamps, ids), so that
        # the same refusal repeated is recognised as such.
        self.same_as = untrusted(_without_volatile(reply), 2000)


def _without_volatile(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _without_volatile(value) for key, value in node.items()
                if not _VOLATILE_KEY.search(str(key))}
    if isinstance(node, list):
        return [_without_volatile(value) for value in node]
    return node


def dialect_from_values(ping: str, status: str, ready_when: str | None,
                        statuses: frozenset[str], wheres: Mapping[str, str]) -> Dialect:
    """Build and validate the dialect; ``wheres`` names each option as "--flag / VAR"."""
    ping_template = parse_request(ping, wheres["ping_request"])
    status_template = None if status.strip().lower() == NO_REQUEST else \
        parse_request(status, wheres["status_request"])
    if ready_when is None:
        judgement = parse_judgement(default_expression(statuses), wheres["expect_status"])
        return Dialect(ping_template, status_template, judgement)
    if not ready_when.strip():
        raise UsageError(f"{wheres['ready_when']}: must not be empty")
    return Dialect(ping_template, status_template,
                   parse_judgement(ready_when, wheres["ready_when"]), custom_judgement=True)


DEFAULT_DIALECT = dialect_from_values(
    DEFAULT_PING_REQUEST, DEFAULT_STATUS_REQUEST, None,
    frozenset({"OK", "PONG", "OPERATIONAL"}),
    {"ping_request": "--ping-request", "status_request": "--status-request",
     "expect_status": "--expect-status", "ready_when": "--ready-when"})
