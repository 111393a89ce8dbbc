"""Replies written as ``OK|key=value|...`` or ``KO|<text>`` (AwesomeTrading/PyMetaTrader),
decoded into a document the judgement reads like any JSON reply.

PyMetaTrader's EA answers every request with one text frame: ``OK|`` and its payload, or
``KO|`` and the terminal's error description. A payload of ``key=value`` fields
(``ACCOUNT``: ``id=<login>|name=...|server=...``) becomes ``data``; a payload without any
(``PONG``, a ``KO`` text) is kept as ``message``. So ``OK|id=0|...`` is ``{"status": "OK",
"data": {"id": "0", ...}}`` and ``KO|Request is invalid`` is ``{"status": "KO", "data":
{}, "message": "Request is invalid"}``, which ``--ready-when`` judges and the log shows in
the bridge's own words. Values stay text, as the EA wrote them (JMESPath's ``to_number``
compares them as numbers).

A field starts only where ``|`` is followed by a key and ``=``, so an account name that
holds a ``|`` stays in its value. A key given twice with different values is
``bad_reply``, as in JSON. A reply that is neither ``OK|`` nor ``KO|`` is decoded as any
other reply (``replies.decode_reply``): no document, so it is never ready.
"""

from __future__ import annotations

import re
from typing import Any

from entrypoint.errors import AttemptFailed
from entrypoint.gateway.replies import decode_reply
from entrypoint.log.logs import untrusted
from entrypoint.reasons import Reason

_VERDICTS = ("OK", "KO")
_FIELD_START = re.compile(r"\|(?=[A-Za-z_][A-Za-z0-9_]*=)")
_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)


def decode_text_fields(frames: list[bytes]) -> Any:
    """The reply as a document (see the module's docstring), or as ``decode_reply`` reads
    it when it is not an ``OK``/``KO`` text reply."""
    reply = decode_reply(frames)
    if not isinstance(reply, str):
        return reply
    verdict, bar, payload = reply.partition("|")
    if verdict not in _VERDICTS or (not bar and reply not in _VERDICTS):
        return reply
    fields = _fields(payload)
    return (
        {"status": verdict, "data": fields}
        if fields
        else {
            "status": verdict,
            "data": fields,
            "message": payload,
        }
    )


def _fields(payload: str) -> dict[str, str]:
    """The ``key=value`` fields of a payload; an empty dict when it holds none (PONG)."""
    found: dict[str, str] = {}
    for piece in _FIELD_START.split(payload):
        field = _FIELD.fullmatch(piece)
        if field is None:
            continue
        key, value = field.groups()
        if key in found and found[key] != value:
            raise AttemptFailed(
                "reply",
                Reason.BAD_REPLY,
                f"reply gives field {untrusted(key, 40)} twice, with different values",
            )
        found[key] = value
    return found
