"""Rendering check results for people (symbols, colour on a TTY) and for machines (JSON)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any, TextIO

from entrypoint.checks import FAIL, PASS, SKIP, WARN, CheckResult

SYMBOLS = {PASS: "✅", FAIL: "❌", WARN: "⚠️ ", SKIP: "➖"}
_COLOURS = {PASS: "\x1b[32m", FAIL: "\x1b[31m", WARN: "\x1b[33m", SKIP: "\x1b[2m"}
_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"


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


def result_line(result: CheckResult, paint: Painter, name_width: int = 28) -> str:
    timing = f"{result.duration_ms:8.1f} ms"
    critical = " [critical]" if result.critical and result.status == FAIL else ""
    name = result.name if len(result.name) <= name_width else result.name[: name_width - 1] + "…"
    return (f"  {SYMBOLS[result.status]} {paint.status(result.status, f'{name:<{name_width}}')} "
            f"{timing}  {result.detail}{critical}")


def score(results: Iterable[CheckResult]) -> tuple[int, int]:
    """(passed, counted): skipped checks ("not permitted") count neither way."""
    counted = [r for r in results if r.status != SKIP]
    return sum(r.status == PASS for r in counted), len(counted)


def percent(passed: int, total: int) -> str:
    return f"{(100.0 * passed / total if total else 100.0):.1f}%"


def dump_json(document: dict[str, Any], stream: TextIO) -> None:
    stream.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    stream.flush()
