"""The console format: structlog's ConsoleRenderer, fitted to lines a person can read.

A person reads these at 3 a.m., in a terminal or in ``docker logs``: no physical line is
wider than ``WIDTH`` visible characters (colour codes do not count). The fields follow the
event name in the JSON order, packed onto indented continuation lines; a field without a
value (``None``) is left out, since it tells a person nothing (the JSON line keeps it). A
value that fits on a line is never split: it goes on the next line if the current one is
full. Only a value longer than a line is folded, between words, never inside a command in
backquotes where a space outside one will do, and continues on lines indented deeper; a
nested mapping is shown compactly (``{initial_s:0.5,max_s:10.0}``), a list as ``[a,b]``,
and a runner's argv is shown whole when it fits a line, else cut short with a marker saying
that ``--log-format json`` shows it whole. The hint follows the reason it explains, and is
shown once per reason (``_HintOncePerReason``). ``gate.ready`` reached through the PING
queued during a pause says so in words (``during the pause after attempt 4``): right after
"attempt 4 ... refused", ``attempt=4`` read as the failed attempt answering. JSON lines are
not touched by any of this.

Imported only when the first console line is written: structlog imports asyncio.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

import structlog

from entrypoint.log import events

WIDTH = 160
INDENT = " " * 4  # a line of further fields
VALUE_INDENT = " " * 8  # the rest of a value that did not fit on its line
# An error or a hint too long for any line, or the event's first field (what `grep
# gate.error` shows), starts where it falls when this much room is left: the hint stays on
# the line of the reason it explains. Any other value too long for the rest of its line
# starts a line of its own, so that a short error is never split mid-phrase.
FLOWING = frozenset({"error", "hint"})
MIN_START = 24
ARGV_KEYS = frozenset({"command", "argv"})
ARGV_MARKER = " ... +{more} more (all in --log-format json)"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RESET = "\x1b[0m"


class ConsoleLines:
    """An event dict (after the shared processors) as the console's lines, joined by \\n."""

    def __init__(self, colors: bool) -> None:
        self._renderer = structlog.dev.ConsoleRenderer(
            colors=colors, sort_keys=False, exception_formatter=structlog.dev.plain_traceback
        )
        self._hint_once = _HintOncePerReason()

    def __call__(self, method: str, event: dict[str, Any]) -> str:
        event = dict(self._hint_once(None, method, event))
        exception = event.pop("exception", None)
        head: dict[str, Any] = {
            key: event.pop(key) for key in ("timestamp", "level", "event") if key in event
        }
        phrase = _ready_phrase(head.get("event"), event)
        fields = for_people(event)
        whole = self._renderer(None, method, {**head, **dict(fields)})
        pairs = [(key, self._renderer(None, method, {key: value})) for key, value in fields]
        joined = " ".join(pair for _key, pair in pairs)
        if pairs and whole.endswith(" " + joined):
            lines = pack(whole[: -len(joined) - 1], [*phrase, *pairs])
        else:  # not the layout expected of the renderer: at least keep within the width
            lines = fold(whole, WIDTH, WIDTH - len(VALUE_INDENT), VALUE_INDENT)
        if exception is not None:
            for line in str(exception).splitlines():
                lines += fold(line, WIDTH, WIDTH - len(VALUE_INDENT), VALUE_INDENT)
        return "\n".join(lines)


class _HintOncePerReason:
    """Console only: a person reads the hint once per change of reason (per target), not on
    every attempt. JSON keeps it on every line: a machine, or `explain`, may see any one."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def __call__(
        self, _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if event.get("event") == events.ATTEMPT_FAILED.name and "hint" in event:
            target, reason = str(event.get("target", "")), str(event.get("reason"))
            if self._last.get(target) == reason:
                del event["hint"]
            self._last[target] = reason
        return event


def _ready_phrase(name: Any, event: dict[str, Any]) -> list[tuple[str, str]]:
    """``gate.ready`` through the PING queued in a pause: its ``attempt`` and ``via`` as
    words, taken out of ``event`` (the attempt it numbers is the one that failed)."""
    if name != events.READY.name or event.get("via") != "pause" or "attempt" not in event:
        return []
    del event["via"]
    return [("", f"during the pause after attempt {_shown(str(event.pop('attempt')))}")]


def for_people(event: dict[str, Any]) -> list[tuple[str, Any]]:
    """The fields in the order a person reads them, their values made compact; a field
    without a value left out."""
    keys = [key for key, value in event.items() if value is not None]
    if "hint" in event and "reason" in event:  # the hint right after the reason it explains
        keys.remove("hint")
        keys.insert(keys.index("reason") + 1, "hint")
    return [
        (key, _argv(key, event[key]) if key in ARGV_KEYS else _compact(event[key])) for key in keys
    ]


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(f"{_shown(str(key))}:{_inner(item)}" for key, item in value.items())
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(_inner(item) for item in value) + "]"
    return value


def _inner(value: Any) -> str:
    compact = _compact(value)
    return _shown(compact) if isinstance(compact, str) else repr(compact)


def _shown(text: str) -> str:
    """Text inside a compacted value: control characters escaped, as repr() did for the
    whole list before (a terminal must never receive them)."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _argv(key: str, value: Any) -> Any:
    """A command line, whole when ``key=value`` fits on a line of its own (the README says
    what is exec'd: the reader must see it), else cut short with a marker: the whole of it
    is in the JSON log. The renderer quotes it (repr), which ``len(repr(...))`` counts."""
    if not isinstance(value, list | tuple):
        return value
    words = [_shown(str(word)) for word in value]
    room = WIDTH - len(INDENT) - len(key) - 1
    if len(repr(" ".join(words))) <= room:
        return " ".join(words)
    for count in range(len(words) - 1, 0, -1):
        cut = " ".join(words[:count]) + ARGV_MARKER.format(more=len(words) - count)
        if len(repr(cut)) <= room:
            return cut
    marker = ARGV_MARKER.format(more=len(words) - 1)
    return words[0][: max(1, room - len(marker) - 2)] + marker


def visible_len(text: str) -> int:
    return len(_ANSI.sub("", text))


def pack(head: str, pairs: list[tuple[str, str]]) -> list[str]:
    """The head, then each ``key=value`` where it fits: on the current line, on a new
    line indented by ``INDENT``, or folded over several (``fold``)."""
    lines = [head]
    fresh = False  # the last value was folded: the next pair starts its own line
    for key, pair in pairs:
        used = visible_len(lines[-1])
        width = visible_len(pair)
        if not fresh and used + 1 + width <= WIDTH:
            lines[-1] += " " + pair
            continue
        room = WIDTH - used - 1
        plain = _ANSI.sub("", pair)
        must_fold = len(INDENT) + width > WIDTH
        first_field = len(lines) == 1 and key == pairs[0][0]
        if (
            key in FLOWING
            and (must_fold or first_field)
            and not fresh
            and room >= MIN_START
            and " " in plain
            and len(plain.split(" ", 1)[0]) <= room
        ):
            pieces = fold(pair, room, WIDTH - len(VALUE_INDENT))
            lines[-1] += " " + pieces[0]
        elif len(INDENT) + width <= WIDTH:
            lines.append(INDENT + pair)
            fresh = False
            continue
        else:
            pieces = fold(pair, WIDTH - len(INDENT), WIDTH - len(VALUE_INDENT))
            lines.append(INDENT + pieces[0])
        lines += [VALUE_INDENT + piece for piece in pieces[1:]]
        fresh = len(pieces) > 1
    return [line.rstrip(" ") for line in lines]  # the event's padding, before a new line


def fold(text: str, first: int, rest: int, indent: str = "") -> list[str]:
    """``text`` broken at spaces into pieces of at most ``first`` visible characters (the
    first piece) and ``rest`` (the others, which get ``indent`` in front); a word longer
    than a piece is cut. A break inside a command in backquotes (one to copy) is taken only
    when no space outside one will do. Colour codes are kept, and each piece ends with its
    colour reset and starts with the colour still in force."""
    cells: list[tuple[str, str]] = []  # (colour codes before this character, character)
    codes = ""
    position = 0
    for match in _ANSI.finditer(text):
        for char in text[position : match.start()]:
            cells.append((codes, char))
            codes = ""
        codes += match.group()
        position = match.end()
    for char in text[position:]:
        cells.append((codes, char))
        codes = ""
    trailing = codes
    quoted = _in_backquotes([ch for _c, ch in cells])
    pieces: list[str] = []
    style = ""  # the colour codes in force at the start of the next piece
    start, limit = 0, max(1, first)
    while True:
        end = len(cells) if len(cells) - start <= limit else None
        if end is None:
            spaces = [i for i in range(start + 1, start + limit + 1) if cells[i][1] == " "]
            between = [i for i in spaces if not quoted[i]]
            end = (between or spaces or [start + limit])[-1]
        piece = style + "".join(c + ch for c, ch in cells[start:end])
        for c, _ch in cells[start:end]:
            style = _in_force(style, c)
        skip = end < len(cells) and cells[end][1] == " "
        if skip:
            style = _in_force(style, cells[end][0])
        if end == len(cells):
            pieces.append(piece + trailing)
            break
        pieces.append(piece + (_RESET if style else ""))
        start = end + 1 if skip else end
        limit = max(1, rest)
    return [pieces[0], *(indent + piece for piece in pieces[1:])]


def _in_backquotes(chars: list[str]) -> list[bool]:
    """For each character, whether it lies between a pair of backquotes."""
    marks = [i for i, char in enumerate(chars) if char == "`"]
    inside = [False] * len(chars)
    for opening, closing in zip(marks[::2], marks[1::2], strict=False):
        inside[opening + 1 : closing] = [True] * (closing - opening - 1)
    return inside


def _in_force(style: str, codes: str) -> str:
    """The colour codes in force after ``codes``: a reset clears what came before."""
    for code in _ANSI.findall(codes):
        style = "" if code == _RESET else style + code
    return style
