"""Replies as bridges write them, decoded into a value the judgement can read.

Replies are untrusted. A single UTF-8 frame is decoded as JSON, or judged as a JSON string
when it is text but not JSON (a bridge answering a bare ``OK``). What Windows bridges add
around their text is tolerated: a UTF-8 byte-order mark, a C string's terminating NUL
(MQL5's ``StringToCharArray`` copies it), white space around plain text; and JSON sent as
UTF-16 or Windows-1252 is read as JSON. A Python-literal dict, as MQL bridges written for
Python clients send it (darwinex/dwx-zeromq-connector: ``{'_action': 'HEARTBEAT', ...}``),
is read by a literal parser of our own over Python's syntax tree: never ``eval``, and
nothing but strings, numbers, booleans, None, lists, tuples and dicts. A reply that cannot
be decoded at all is ``bad_reply``.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from entrypoint.errors import AttemptFailed
from entrypoint.log.logs import untrusted
from entrypoint.reasons import Reason

if TYPE_CHECKING:  # imported where a literal is parsed: only a Python-literal reply needs it
    import ast


def decode_reply(frames: list[bytes]) -> Any:
    """The reply's value: JSON, or the text itself (stripped) when it is UTF-8 but not JSON.

    A UTF-8 byte-order mark and trailing NUL bytes are dropped first. Bytes that are not
    UTF-8 text (or are, but hold NULs: UTF-16 read as UTF-8) are tried as UTF-16 and as
    Windows-1252, and taken only if that gives JSON: anything else is ``bad_reply``, never
    guessed at."""
    if len(frames) != 1:
        raise AttemptFailed(
            "reply",
            Reason.PROTOCOL,
            f"multipart reply with {len(frames)} frames; expected one frame",
        )
    raw = frames[0]
    # A C string ends at its first NUL; MQL5 sends the terminator, or a whole fixed-size
    # buffer with stale bytes after it.
    c_string, _nul, after = raw.removeprefix(codecs.BOM_UTF8).partition(b"\x00")
    text = _utf8(c_string)
    if text is not None and not after.strip(b"\x00"):
        try:
            return _json(text)
        except ValueError:
            pass
        literal = python_literal(text)
        return text.strip() if literal is None else literal  # plain text: a JSON string
    # Bytes after a NUL, or not UTF-8: JSON in a C string's head, in UTF-16 or in
    # Windows-1252, and nothing else; a guess at text would be judged on garbage.
    for candidate in (text, *_other_encodings(raw)):
        if candidate is None:
            continue
        try:
            return _json(candidate)
        except ValueError:
            continue
    # The whole reply goes to untrusted, which scrubs before it cuts: cut first, a secret
    # the bridge echoed could lose the head that made it recognisable (issue 27).
    raise AttemptFailed(
        "reply",
        Reason.BAD_REPLY,
        f"reply is not UTF-8 (nor JSON in UTF-16 or Windows-1252): {untrusted(raw, 160)}",
    )


def _json(text: str) -> Any:
    """json.loads; nesting too deep for the parser is bad_reply (not a crash), and so is
    a key given twice with different values: which one counts is the parser's guess, and
    {"status": "ERROR", "status": "OK"} must not be ready by that guess."""
    try:
        return json.loads(text, object_pairs_hook=_unambiguous)
    except RecursionError:
        raise AttemptFailed(
            "reply", Reason.BAD_REPLY, "reply is JSON nested too deeply to decode"
        ) from None


def _unambiguous(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj and obj[key] != value:
            raise AttemptFailed(
                "reply",
                Reason.BAD_REPLY,
                f"reply gives key {untrusted(key, 40)} twice, with different values",
            )
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


class _NotLiteral(Exception):
    """The syntax tree holds something that is not a plain literal."""


def python_literal(text: str) -> dict[str, Any] | None:
    """``text`` as a Python-literal dict, or None when it is not one.

    Parsed into a syntax tree and converted node by node: only constants, lists, tuples
    and dicts (a negative number is a minus applied to a constant). A key given twice with
    different values is ``bad_reply``, as in JSON."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    import ast  # noqa: PLC0415 - ~1 ms to import, for every healthcheck otherwise

    try:
        tree = ast.parse(stripped, mode="eval")
        value = _literal(tree.body)
    except (SyntaxError, ValueError, _NotLiteral, MemoryError, TypeError):
        return None
    except RecursionError:
        raise AttemptFailed(
            "reply", Reason.BAD_REPLY, "reply is a Python literal nested too deeply to decode"
        ) from None
    return value if isinstance(value, dict) else None


def _literal(node: ast.AST) -> Any:
    import ast  # noqa: PLC0415 - loaded by python_literal: a lookup in sys.modules

    if (isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool)) or (
        isinstance(node, ast.Constant) and node.value is None
    ):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub | ast.UAdd)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
        and not isinstance(node.operand.value, bool)
    ):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        pairs: list[tuple[str, Any]] = []
        for key_node, value_node in zip(node.keys, node.values, strict=True):
            if key_node is None:  # {**other}
                raise _NotLiteral
            key = _literal(key_node)
            if isinstance(key, list):
                raise _NotLiteral
            pairs.append((key if isinstance(key, str) else json.dumps(key), _literal(value_node)))
        return _unambiguous(pairs)
    raise _NotLiteral
