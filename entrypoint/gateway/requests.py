"""Requests as bridges read them: JSON templates with placeholders, or plain text.

The readiness request is ``--ping-request``, the informational one after readiness
``--status-request`` (or none). A JSON template may hold placeholders as whole string
values, filled per request: ``"$now"`` (ISO 8601 UTC), ``"$now_epoch"`` (float seconds),
``"$uuid"`` (uuid4), and ``"$file:/path"`` (a file's stripped content, read once at start:
a token). A file's content is a secret: it is only ever in the rendered request bytes,
never in a log, an error, a repr or the runner's environment. ``"$$..."`` stands for a
literal ``"$..."``. A request that is not JSON (``HEARTBEAT;``, ``TRADE;GET_ACCOUNT_INFO``:
darwinex/dwx-zeromq-connector's commands) is sent as text, exactly as written.
"""

import json
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from entrypoint.errors import UsageError
from entrypoint.files import read_regular_file
from entrypoint.log.logs import register_secret, untrusted

DEFAULT_PING_REQUEST = '{"action":"PING","timestamp":"$now","source":"mt5-gate"}'
DEFAULT_STATUS_REQUEST = '{"action":"STATUS"}'
NO_REQUEST = "none"
# A token file is a few dozen bytes; anything this big was named by mistake.
MAX_FILE_PLACEHOLDER_BYTES = 64 * 1024
# A shorter secret can be neither guessed safely nor scrubbed from logs without blanking
# ordinary text: it is refused at start.
MIN_SECRET_BYTES = 8


def _now(_arg: str) -> Any:
    # What datetime.now(UTC).isoformat(timespec="milliseconds") writes, from the time
    # module: the default request holds "$now", so every healthcheck renders it, and
    # importing datetime would cost each one ~1 ms (benchmarks/bench_health.py).
    now = time.time()
    seconds = int(now)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{int((now - seconds) * 1000):03d}+00:00"


def _now_epoch(_arg: str) -> Any:
    return time.time()


def _uuid(_arg: str) -> Any:
    import uuid  # noqa: PLC0415 - a millisecond of start-up, only for templates that use it

    return str(uuid.uuid4())


_PER_REQUEST: dict[str, Callable[[str], Any]] = {
    "$now": _now,
    "$now_epoch": _now_epoch,
    "$uuid": _uuid,
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


class RequestTemplate(NamedTuple):
    """A request with its placeholders located; ``render`` fills them in. A text request
    (``is_json`` false) is sent as it is written.

    ``body`` is not compared, hashed or shown: a template is its text (two reads of the
    same ``$file:`` are one template), and its repr stays the text, never a secret's
    location in the body. ``==`` is false for anything but another RequestTemplate, a
    tuple of the same fields included."""

    text: str  # as configured: placeholders unfilled, so it is safe to log
    body: Any  # the parsed JSON with its placeholders located (None for a text request)
    is_json: bool = True
    # It carries a $file: secret: sent only to a peer proven to be ZeroMQ (transports).
    secret: bool = False

    def __eq__(self, other: object) -> bool:
        # False, not NotImplemented, for another type: a plain tuple's == would answer.
        return type(other) is RequestTemplate and (self.text, self.is_json, self.secret) == (
            other.text,
            other.is_json,
            other.secret,
        )

    def __ne__(self, other: object) -> bool:  # tuple's own != would compare the body
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((self.text, self.is_json, self.secret))

    def __repr__(self) -> str:
        return (
            f"RequestTemplate(text={self.text!r}, is_json={self.is_json!r}, secret={self.secret!r})"
        )

    def render(self) -> bytes:
        if not self.is_json:
            return self.text.encode()
        return json.dumps(_fill(self.body), separators=(",", ":")).encode()

    def action(self) -> str | None:
        """What the request asks for, as a bridge routes it: a JSON request's ``action``
        (any case of the key), or a text request itself."""
        if not self.is_json:
            return self.text.strip()
        if isinstance(self.body, dict):
            for key, value in self.body.items():
                if str(key).lower() == "action" and isinstance(value, str):
                    return value
        return None

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


class _Placeholder:  # slotted, not a NamedTuple: ~0.1 ms less for every healthcheck
    __slots__ = ("make", "name")

    def __init__(self, name: str, make: Callable[[str], Any]) -> None:
        self.name = name
        self.make = make


def parse_request(text: str, where: str) -> RequestTemplate:
    """A request template, or UsageError naming ``where`` (flag / VAR).

    Text that starts with ``{``, ``[`` or ``"`` is a JSON template, which must be an object; its
    ``$file:`` placeholders are read now, once, the others filled per request. Any other
    text is a text request (``HEARTBEAT;``), sent as it is written. Never an empty one: a
    bridge may never answer it (a REP stuck for every later client)."""
    if not text.strip():
        raise UsageError(f"{where}: must not be empty (an empty request may wedge a bridge)")
    if not text.lstrip().startswith(("{", "[", '"')):
        if "$" in text and any(name in text for name in (*_PER_REQUEST, "$file:")):
            raise UsageError(
                f"{where}: placeholders work only in JSON requests; a text "
                "request is sent as it is written"
            )
        if len(text.encode()) > MAX_FILE_PLACEHOLDER_BYTES:
            raise UsageError(f"{where}: longer than {MAX_FILE_PLACEHOLDER_BYTES} bytes")
        return RequestTemplate(text, None, is_json=False)
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        detail = (
            f"{exc.msg} at character {exc.pos}"
            if isinstance(exc, json.JSONDecodeError)
            else "nested too deeply"
        )
        raise UsageError(f"{where}: not valid JSON ({detail})") from None
    if not isinstance(body, dict):
        raise UsageError(
            f"{where}: must be a JSON object such as {DEFAULT_STATUS_REQUEST} "
            "(or plain text, sent as written)"
        )
    located = _locate(body, where)
    return RequestTemplate(text, located, secret=_holds_secret(located))


def _holds_secret(node: Any) -> bool:
    if isinstance(node, dict):
        return any(_holds_secret(value) for value in node.values())
    if isinstance(node, list):
        return any(_holds_secret(value) for value in node)
    return isinstance(node, _Secret)


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
        return _read_secret(node[len("$file:") :], where)
    raise UsageError(
        f"{where}: unknown placeholder {untrusted(node, 40)}; known: "
        f"{', '.join(PLACEHOLDERS)} (write $$ for a literal $)"
    )


def _read_secret(path: str, where: str) -> _Secret:
    # Errors name the path, never the content.
    if not path:
        raise UsageError(f'{where}: $file: needs a path, e.g. "$file:/run/secrets/token"')
    try:
        raw = read_regular_file(path, MAX_FILE_PLACEHOLDER_BYTES)
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
    if len(text.encode()) < MIN_SECRET_BYTES:
        raise UsageError(
            f"{where}: the secret in {path} is shorter than {MIN_SECRET_BYTES} "
            "bytes: too short to protect (use a longer token)"
        )
    return _Secret(path, text)
