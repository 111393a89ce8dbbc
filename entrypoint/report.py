"""Rendering check results for people (symbols, colour on a TTY) and for machines (JSON).

A person reads ``probe``, ``mesh`` and ``explain`` at 3 a.m.: no line they print for people
is wider than ``WIDTH`` columns (colour codes do not count; a wide emoji counts two, as a
terminal shows it, so no line has more than ``WIDTH`` characters either), the rule of the
console log (``consolelog``). Text too long for its line is folded at spaces onto
continuation lines indented under where it started, every word kept whole; only a single
word longer than a whole line (a reply without spaces, a URL) is cut, with a marker naming
where it is shown whole (``--json``). The JSON output is never folded nor cut.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterable
from typing import Any, TextIO

from entrypoint.checks import FAIL, PASS, SKIP, WARN, CheckResult

SYMBOLS = {PASS: "✅", FAIL: "❌", WARN: "⚠️ ", SKIP: "➖"}
_COLOURS = {PASS: "\x1b[32m", FAIL: "\x1b[31m", WARN: "\x1b[33m", SKIP: "\x1b[2m"}
_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

WIDTH = 160  # columns; consolelog.WIDTH is the same limit for the log's console lines
WHOLE = "whole: --json"  # where a word cut short is shown whole
MAX_INDENT = WIDTH - 60  # a continuation line keeps at least 60 columns for its text


class Painter:
    """Adds ANSI colour only when writing to a terminal and NO_COLOR is not set."""

    def __init__(self, stream: TextIO) -> None:
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        # no-color.org: "when present and not an empty string"
        self.enabled = tty and not os.environ.get("NO_COLOR")

    def status(self, status: str, text: str) -> str:
        return f"{_COLOURS[status]}{text}{_RESET}" if self.enabled else text

    def bold(self, text: str) -> str:
        return f"{_BOLD}{text}{_RESET}" if self.enabled else text


def result_line(
    result: CheckResult, paint: Painter, name_width: int = 28, whole: str = WHOLE
) -> str:
    """The result's row; a detail too long for it goes on under the detail's first column
    (lines joined by \\n). ``whole``: the marker of a word cut short (``hanging``)."""
    timing = f"{result.duration_ms:8.1f} ms"
    critical = " [critical]" if result.critical and result.status == FAIL else ""
    name = result.name if len(result.name) <= name_width else result.name[: name_width - 1] + "…"
    lead = (
        f"  {SYMBOLS[result.status]} {paint.status(result.status, f'{name:<{name_width}}')} "
        f"{timing}  "
    )
    return "\n".join(hanging(lead, f"{result.detail}{critical}", whole=whole))


def columns(text: str) -> int:
    """The columns ``text`` takes: colour codes none, a wide character (an emoji such as ✅)
    two, any other character one: never fewer than its characters, and as a terminal shows
    the report's symbols (⚠️ is ⚠ and VS16, two columns as an emoji)."""
    plain = _ANSI.sub("", text)
    if plain.isascii():
        return len(plain)
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in plain)


def hanging(
    lead: str, text: str, indent: int | None = None, *, whole: str = WHOLE, width: int = WIDTH
) -> list[str]:
    """``lead`` then ``text``, as lines of at most ``width`` columns: the text folded at
    spaces, each continuation line indented by ``indent`` columns (by default under where
    the text started: a hanging indent), a line break in the text starting a continuation
    line. A word longer than a whole continuation line is cut where it falls and ends in
    ``… (whole)``: ``whole`` says where it is shown in full. Short text is one line,
    exactly ``lead + text``. ``lead`` may hold colour codes; ``text`` is plain."""
    if "\n" not in text and columns(lead) + columns(text) <= width:
        return [lead + text]
    indent = min(columns(lead) if indent is None else indent, MAX_INDENT)
    margin = " " * indent
    lines = [lead]
    fresh = True  # nothing of the text on the current line yet
    for number, paragraph in enumerate(text.split("\n")):
        if number:
            lines.append(margin)
            fresh = True
        for word in paragraph.split(" "):
            used = columns(lines[-1])
            gap = 0 if fresh else 1
            if used + gap + columns(word) <= width:
                lines[-1] += " " * gap + word
            elif not word:  # a second space where the line breaks
                continue
            elif indent + columns(word) <= width:
                lines.append(margin + word)
            else:  # longer than any line: cut, where it falls if enough of it shows there
                tail = f"… ({whole})"
                room = width - used - gap
                if room < columns(tail) + 16 or not lines[-1].strip():
                    if lines[-1].strip():
                        lines.append(margin)
                    gap, room = 0, width - indent
                lines[-1] += " " * gap + _cut(word, room - columns(tail)) + tail
            fresh = False
    return lines


def duration(seconds: float | None) -> str:
    """Seconds as a person reads them: 9.1 s, 1 min 0 s, 2 h 5 min."""
    if seconds is None:
        return "?"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


# C0 and C1 control characters and DEL: what a terminal acts on instead of showing.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with every control character shown as an escape, never acted on."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def _cut(word: str, room: int) -> str:
    """The start of ``word`` that fits in ``room`` columns."""
    used = 0
    for end, char in enumerate(word):
        used += columns(char)
        if used > room:
            return word[:end]
    return word


def score(results: Iterable[CheckResult]) -> tuple[int, int]:
    """(passed, counted): skipped checks ("not permitted") count neither way."""
    counted = [r for r in results if r.status != SKIP]
    return sum(r.status == PASS for r in counted), len(counted)


def percent(passed: int, total: int) -> str:
    return f"{(100.0 * passed / total if total else 100.0):.1f}%"


def dump_json(document: dict[str, Any], stream: TextIO) -> None:
    stream.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    stream.flush()
