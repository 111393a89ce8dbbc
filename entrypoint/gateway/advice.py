"""Probe's one-line fix after a ``not_ready`` reply: what to set, or what to check.

A suggestion is a line a user may paste into an env file, so it is held to three rules:
- never suggest accepting a refusal: a reply with any word that means "no" anywhere in it
  (an error, ok=false, NOT_CONNECTED, a nested "dead") gets advice about the request;
- never echo a secret: a reply that echoed a ``$file:`` token gets no literal at all;
- never print what a terminal or a shell would act on: a literal is suggested only when
  it is short, printable and free of quotes and backslashes.
"""

from __future__ import annotations

import re
from typing import Any

from entrypoint.gateway.dialect import REFUSING_WORDS, Dialect, refusing_key
from entrypoint.logs import scrub, untrusted

# Safe to paste between the quotes of GATE_READY_WHEN="status == '...'" in a shell or an
# env file, and to print on a terminal.
_PLAIN_LITERAL = re.compile(r"[A-Za-z0-9 _.:/+-]{1,40}")
_WORD = re.compile(r"[A-Za-z]+")
_GENERIC = ("set GATE_READY_WHEN to an expression on this reply that is true only when the "
            "bridge is ready (docs/BRIDGES.md)")


def suggest_fix(reply: Any, dialect: Dialect) -> str:
    """One line for ``probe`` after a not_ready reply (see the module's rules)."""
    refusal = _refusal(reply)
    if refusal is not None:
        return (f"the bridge refuses this request or is not ready ({refusal}): give it the "
                "request it expects (GATE_PING_REQUEST: action, required fields, token as "
                "\"$file:PATH\"), or wait until it is ready; see docs/BRIDGES.md")
    if isinstance(reply, str):
        if _pasteable(reply):
            return (f"the bridge answers plain text: if \"{reply}\" means ready, set "
                    f"GATE_READY_WHEN=\"@ == '{reply}'\"")
        return f"the bridge answers plain text: {_GENERIC}"
    if not isinstance(reply, dict):
        return (f"the bridge answers a JSON {type(reply).__name__}, not an object: set "
                "GATE_READY_WHEN to an expression that is true when it is ready")
    status = next((value for key, value in reply.items() if str(key).lower() == "status"),
                  None)
    if isinstance(status, str) and _pasteable(status) and not dialect.custom_judgement:
        return (f"if status \"{status}\" means ready, set "
                f"GATE_EXPECT_STATUS={status} (or GATE_READY_WHEN=\"status == '{status}'\")")
    return _GENERIC


def _refusal(reply: Any) -> str | None:
    """What in the reply says "no", shown safely; None when nothing does."""
    for text in _strings(reply):
        words = {word.upper() for word in _WORD.findall(text)}
        if words & REFUSING_WORDS:
            return untrusted(text, 80)
    key = refusing_key(reply) if isinstance(reply, dict) else None
    return None if key is None else f"{untrusted(key, 20)}={untrusted(reply[key], 60)}"


def _strings(node: Any) -> list[str]:
    """Every string value in the reply (keys are names, not verdicts), depth first."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [text for value in node.values() for text in _strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in _strings(value)]
    return []


def _pasteable(text: str) -> bool:
    return bool(_PLAIN_LITERAL.fullmatch(text)) and scrub(text) == text
