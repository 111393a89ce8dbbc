"""Probe's one-line fix after a ``not_ready`` reply: what to set, or what to check.

A suggestion is a line a user may paste into an env file, so it is held to three rules:
- never suggest accepting a refusal: a reply with any word that means "no" anywhere in it
  (an error, ok=false, NOT_CONNECTED, a nested "dead") gets advice about the request;
- never echo a secret: a reply that echoed a ``$file:`` token gets no literal at all;
- never print what a terminal or a shell would act on: a literal is suggested only when
  it is short, printable and free of quotes and backslashes.
A refusal is quoted by the bridge's own reason (its ``error``, then a message that says
"no"), never by an id or a timestamp: a request id echoed back (the heartbeat envelope's
``req_id``) can hold a word such as "no" or "dead" and says nothing.
"""

from __future__ import annotations

import re
from typing import Any

from entrypoint.gateway.dialect import REFUSING_WORDS, Dialect, refusing_key, volatile_key
from entrypoint.log.logs import scrub, untrusted

# Safe to paste between the quotes of GATE_READY_WHEN="status == '...'" in a shell or an
# env file, and to print on a terminal.
_PLAIN_LITERAL = re.compile(r"[A-Za-z0-9 _.:/+-]{1,40}")
_WORD = re.compile(r"[A-Za-z]+")
_GENERIC = (
    "set GATE_READY_WHEN to an expression on this reply that is true only when the "
    "bridge is ready (`mt5-gate explain --bridge`)"
)


def suggest_fix(reply: Any, dialect: Dialect) -> str:
    """One line for ``probe`` after a not_ready reply (see the module's rules)."""
    refusal = _refusal(reply)
    if refusal is not None:
        return (
            f"the bridge refuses this request or is not ready ({refusal}): give it the "
            "request it expects (GATE_PING_REQUEST: action, required fields, token as "
            '"$file:PATH"), or wait until it is ready; see `mt5-gate explain --bridge`'
        )
    if isinstance(reply, str):
        if _pasteable(reply):
            return (
                f'the bridge answers plain text: if "{reply}" means ready, set '
                f"GATE_READY_WHEN=\"@ == '{reply}'\""
            )
        return f"the bridge answers plain text: {_GENERIC}"
    if not isinstance(reply, dict):
        return (
            f"the bridge answers a JSON {type(reply).__name__}, not an object: set "
            "GATE_READY_WHEN to an expression that is true when it is ready"
        )
    status = next((value for key, value in reply.items() if str(key).lower() == "status"), None)
    if isinstance(status, str) and _pasteable(status) and not dialect.custom_judgement:
        return (
            f'if status "{status}" means ready, set '
            f"GATE_EXPECT_STATUS={status} (or GATE_READY_WHEN=\"status == '{status}'\")"
        )
    return _GENERIC


# Where a bridge says why: a non-empty error is a refusal (as the judgement has it), a
# message only when it says "no"; both are quoted before any other text of the reply.
_ERROR_KEYS = frozenset({"error", "errors", "err"})
_MESSAGE_KEYS = frozenset({"message", "msg", "reason"})


def _refusal(reply: Any) -> str | None:
    """What in the reply says "no", shown safely; None when nothing does. The bridge's
    error first (the heartbeat envelope's `error`, not its `req_id`)."""
    top = (
        [
            (str(key).lower(), value)
            for key, value in reply.items()
            if isinstance(value, str) and value.strip()
        ]
        if isinstance(reply, dict)
        else []
    )
    error = next((value for key, value in top if key in _ERROR_KEYS), None)
    if error is not None:
        return untrusted(error, 80)
    for text in [*(value for key, value in top if key in _MESSAGE_KEYS), *_strings(reply)]:
        words = {word.upper() for word in _WORD.findall(text)}
        if words & REFUSING_WORDS:
            return untrusted(text, 80)
    key = refusing_key(reply) if isinstance(reply, dict) else None
    return None if key is None else f"{untrusted(key, 20)}={untrusted(reply[key], 60)}"


def _strings(node: Any) -> list[str]:
    """Every string value in the reply (keys are names, not verdicts), depth first, but
    for ids and timestamps: they change with every reply and never say why."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [
            text
            for key, value in node.items()
            if not volatile_key(str(key))
            for text in _strings(value)
        ]
    if isinstance(node, list):
        return [text for value in node for text in _strings(value)]
    return []


def _pasteable(text: str) -> bool:
    return bool(_PLAIN_LITERAL.fullmatch(text)) and scrub(text) == text
