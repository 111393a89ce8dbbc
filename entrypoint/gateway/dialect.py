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
# How a refusal looks in most dialects, whatever the bridge calls "ok": these fields are
# checked by the default judgement whatever the accepted statuses are.
# ``status`` is compared as text, so --expect-status 200 accepts a numeric 200; ``ok`` and
# ``success`` refuse as false, 0 or "false" (bridges written in MQL5 often send 0/1).
DEFAULT_JUDGEMENT = (
    "type(@) == 'object'"
    " && (!contains(keys(@), 'status') || contains({statuses}, upper(to_string(status))))"
    " && !contains(`[\"false\",\"0\"]`, lower(to_string(ok)))"
    " && !contains(`[\"false\",\"0\"]`, lower(to_string(success)))"
    " && !error"
)
# Keys whose values change from one reply to the next without saying anything about
# readiness; ignored when deciding whether not_ready replies are "the same reply again".
_VOLATILE_KEY = re.compile(r"time|date|stamp|uuid|nonce|^seq|^id$|_id$|^ts$|uptime",
                           re.IGNORECASE)


class _Functions(jmespath.functions.Functions):
    """``upper()`` and ``lower()``, so that an expression can compare statuses whatever
    their case (the default judgement does, as --expect-status always has)."""

    @jmespath.functions.signature({"types": ["string"]})
    def _func_upper(self, text: str) -> str:
        return text.upper()

    @jmespath.functions.signature({"types": ["string"]})
    def _func_lower(self, text: str) -> str:
        return text.lower()


_OPTIONS = jmespath.Options(custom_functions=_Functions())


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
    text = _utf8_text(raw)
    if text is not None:
        try:
            return _json(text)
        except ValueError:
            return text.strip()  # plain text: judged as a JSON string
    for decoded in _other_encodings(raw):
        try:
            return _json(decoded)
        except ValueError:
            continue
    raise AttemptFailed("reply", Reason.BAD_REPLY,
                        f"reply is not UTF-8 (nor JSON in UTF-16 or Windows-1252): "
                        f"{untrusted(raw[:80])}")


def _json(text: str) -> Any:
    """json.loads, with nesting too deep for the parser as bad_reply (not a crash)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise AttemptFailed("reply", Reason.BAD_REPLY,
                            "reply is JSON nested too deeply to decode") from None


def _utf8_text(raw: bytes) -> str | None:
    body = raw.removeprefix(codecs.BOM_UTF8).rstrip(b"\x00")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _other_encodings(raw: bytes) -> Iterator[str]:
    """The reply read as UTF-16 (by its byte-order mark, else little-endian as Windows
    sends it), then as Windows-1252; each without a C string's terminating NUL."""
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
        except jmespath.exceptions.JMESPathError as exc:
            raise AttemptFailed("reply", Reason.NOT_READY,
                                f"reply {untrusted(reply, 200)}: --ready-when could not be "
                                f"evaluated on it ({untrusted(str(exc), 120)})") from None
        except RecursionError:
            raise AttemptFailed("reply", Reason.BAD_REPLY,
                                "reply is nested too deeply to judge") from None
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


# Statuses that mean "no": never suggested as the status to accept.
_REFUSING_STATUSES = frozenset({"ERROR", "ERR", "FAIL", "FAILED", "FAILURE", "DENIED",
                                "UNAUTHORIZED", "FORBIDDEN", "INVALID", "REJECTED",
                                "UNKNOWN", "MAINTENANCE", "DISCONNECTED", "DOWN", "BUSY"})


def suggest_fix(reply: Any, dialect: Dialect) -> str:
    """One line for ``probe`` after a not_ready reply: what to set, or what to check.

    A reply that reads as a refusal (an error, ok/success false, an error-like status) is
    never suggested as "ready": the request or credentials are what need changing."""
    if isinstance(reply, str):
        return (f"the bridge answers plain text: if {untrusted(reply, 60)} means ready, set "
                f"GATE_READY_WHEN=\"@ == {_jmespath_string(reply)}\"")
    if not isinstance(reply, dict):
        return (f"the bridge answers a JSON {type(reply).__name__}, not an object: set "
                "GATE_READY_WHEN to an expression that is true when it is ready")
    refusal = reply.get("error") or (
        reply.get("ok") is False and "ok=false") or (
        reply.get("success") is False and "success=false")
    status = reply.get("status")
    if refusal or (isinstance(status, str) and status.upper() in _REFUSING_STATUSES):
        said = untrusted(refusal if refusal else status, 80)
        return (f"the bridge refuses this request ({said}): give it the request it expects "
                "(GATE_PING_REQUEST: action, required fields, token as \"$file:PATH\"); "
                "see docs/BRIDGES.md")
    if isinstance(status, str) and status and not dialect.custom_judgement:
        return (f"if status {untrusted(status, 40)} means ready, set "
                f"GATE_READY_WHEN=\"status == {_jmespath_string(status)}\"")
    return ("set GATE_READY_WHEN to an expression on this reply that is true only when the "
            "bridge is ready (docs/BRIDGES.md)")


def _jmespath_string(text: str) -> str:
    """``text`` as a JMESPath raw string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


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
