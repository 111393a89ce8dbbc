"""--help is wrapped to the terminal's width, measured when help is formatted.

argparse makes a formatter for every ``add_argument`` and its own formatter asks the
terminal's size in its constructor (importing ``shutil``), which a healthcheck that
prints no help paid on every run. ``MeasuredWidthFormatter`` measures in ``format_help``
instead: these tests check that help comes out exactly as with the width argparse would
have measured, and that the width is the terminal's when help is printed.
"""

from __future__ import annotations

import argparse
import functools

import pytest

from entrypoint.cli import build_parser
from entrypoint.commands import names
from entrypoint.commands.arguments import MeasuredWidthFormatter


def parser_of(command: str | None) -> argparse.ArgumentParser:
    """The top-level parser, or the parser of ``command`` (its options built)."""
    parser = build_parser(only=command)
    if command is None:
        return parser
    subparsers = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    chosen: argparse.ArgumentParser = subparsers.choices[command]
    return chosen


def with_width(parser: argparse.ArgumentParser, width: int) -> argparse.ArgumentParser:
    """The parser's own formatter class, given ``width`` explicitly."""
    parser.formatter_class = functools.partial(type(parser._get_formatter()), width=width)
    return parser


@pytest.mark.parametrize("columns", [40, 80, 132])
@pytest.mark.parametrize("command", [None, *names()])
def test_help_is_what_argparse_measuring_the_terminal_would_give(
    command: str | None, columns: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argparse's formatter takes the terminal's columns less 2: the same help."""
    monkeypatch.setenv("COLUMNS", str(columns))
    assert isinstance(parser_of(command)._get_formatter(), MeasuredWidthFormatter)
    measured = parser_of(command).format_help()
    given = with_width(parser_of(command), columns - 2).format_help()
    assert measured == given
    assert measured.startswith(f"usage: mt5-gate{' ' + command if command else ''}")


def test_the_width_is_the_terminals_when_help_is_formatted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Built in a wide terminal, printed in a narrow one: wrapped to the narrow one."""
    monkeypatch.setenv("COLUMNS", "200")
    parser = parser_of("health")
    monkeypatch.setenv("COLUMNS", "50")
    narrow = parser.format_help()
    assert narrow == parser_of("health").format_help()
    monkeypatch.setenv("COLUMNS", "200")
    wide = parser_of("health").format_help()
    assert len(narrow.split("\n\n")[0].splitlines()) > len(wide.split("\n\n")[0].splitlines())


def test_a_width_given_explicitly_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    wide = with_width(parser_of("health"), 158).format_help()
    monkeypatch.setenv("COLUMNS", "160")
    assert wide == parser_of("health").format_help()
