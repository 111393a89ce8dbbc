"""The console format: structlog's ConsoleRenderer, fitted to lines a person can read.

A person reads these at 3 a.m., in a terminal or in ``docker logs``: no physical line is
wider than ``WIDTH`` visible characters (colour codes do not count). The fields follow the
event name in the JSON order, packed onto indented continuation lines; a value too long
for a line (a hint, an error, a reply) starts where it falls and continues on lines
indented deeper; a nested mapping is shown compactly (``{initial_s:0.5,max_s:10.0}``), a
list as ``[a,b]``, and a runner's argv is cut short with a marker saying that
``--log-format json`` shows it whole. The hint follows the reason it explains, and is shown
once per reason (``_HintOncePerReason``). JSON lines are not touched by any of this.

Imported only when the first console line is written: structlog imports asyncio.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

import structlog

from entrypoint import events

WIDTH = 160
INDENT = " " * 4  # a line of further fields
VALUE_INDENT = " " * 8  # the rest of a value that did not fit on its line
# An error or a hint that does not fit where it falls starts there anyway when this much
# room is left, so that the event's first line (what `grep gate.error` shows) has it, and
# the hint stays on the line of the reason it explains; any other value too long for the
# rest of its line starts a line of its own.
FLOWING = frozenset({"error", "hint"})
MIN_START = 24
ARGV_KEYS = frozenset({"command", "argv"})
ARGV_SHOWN = 48  # characters of a runner's command line shown before the marker
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RESET = "\x1b[0m"


class ConsoleLines:
    """An event dict (after the shared processors) as the console's lines, joined by \\n."""

    def __init__(self, colors: bool) -> None:
        self._renderer = structlog.dev.ConsoleRenderer(
            colors=colors, sort_keys=False, exception_formatter=structlog.dev.plain_traceback)
        self._hint_once = _HintOncePerReason()

    def __call__(self, method: str, event: dict[str, Any]) -> str:
        event = dict(self._hint_once(None, method, event))
        exception = event.pop("exception", None)
        head: dict[str, Any] = {key: event.pop(key) for key in ("timestamp", "level", "event")
                                if key in event}
        fields = for_people(event)
        whole = self._renderer(None, method, {**head, **dict(fields)})
        pairs = [(key, self._renderer(None, method, {key: value})) for key, value in fields]
        joined = " ".join(pair for _key, pair in pairs)
        if pairs and whole.endswith(" " + joined):
            lines = pack(whole[: -len(joined) - 1], pairs)
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

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]
                 ) -> MutableMapping[str, Any]:
        if event.get("event") == events.ATTEMPT_FAILED.name and "hint" in event:
            target, reason = str(event.get("target", "")), str(event.get("reason"))
            if self._last.get(target) == reason:
                del event["hint"]
            self._last[target] = reason
        return event


def for_people(event: dict[str, Any]) -> list[tuple[str, Any]]:
    """The fields in the order a person reads them, their values made compact."""
    keys = list(event)
    if "hint" in event and "reason" in event:  # the hint right after the reason it explains
        keys.remove("hint")
        keys.insert(keys.index("reason") + 1, "hint")
    return [(key, _argv(event[key]) if key in ARGV_KEYS else _compact(event[key]))
            for key in keys]


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return "{" + ",".join(f"{_shown(str(key))}:{_inner(item)}"
                              for key, item in value.items()) + "}"
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


def _argv(value: Any) -> Any:
    """A command line, cut short with a marker: the whole of it is in the JSON log."""
    if not isinstance(value, list | tuple):
        return value
    words = [_shown(str(word)) for word in value]
    if len(" ".join(words)) <= ARGV_SHOWN:
        return " ".join(words)
    shown = [words[0][:ARGV_SHOWN]]
    for word in words[1:]:
        if len(" ".join([*shown, word])) > ARGV_SHOWN:
            break
        shown.append(word)
    return f"{' '.join(shown)} ... +{len(words) - len(shown)} more (all in --log-format json)"


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
        if key in FLOWING and not fresh and room >= MIN_START and " " in plain and \
                len(plain.split(" ", 1)[0]) <= room:
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
    than a piece is cut. Colour codes are kept, and each piece ends with its colour reset
    and starts with the colour still in force."""
    cells: list[tuple[str, str]] = []  # (colour codes before this character, character)
    codes = ""
    position = 0
    for match in _ANSI.finditer(text):
        for char in text[position:match.start()]:
            cells.append((codes, char))
            codes = ""
        codes += match.group()
        position = match.end()
    for char in text[position:]:
        cells.append((codes, char))
        codes = ""
    trailing = codes
    pieces: list[str] = []
    style = ""  # the colour codes in force at the start of the next piece
    start, limit = 0, max(1, first)
    while True:
        end = len(cells) if len(cells) - start <= limit else None
        if end is None:
            spaces = [i for i in range(start + 1, start + limit + 1) if cells[i][1] == " "]
            end = spaces[-1] if spaces else start + limit
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


def _in_force(style: str, codes: str) -> str:
    """The colour codes in force after ``codes``: a reset clears what came before."""
    for code in _ANSI.findall(codes):
        style = "" if code == _RESET else style + code
    return style
