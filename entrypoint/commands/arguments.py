"""How a command declares its flags: whole option groups from ``config``, plus its own.

The pattern of pre-commit's ``_add_color_option(parser)``: a command's ``add_arguments``
calls ``add_groups(parser, CONNECTION, READINESS, ...)`` with exactly the groups it uses,
so a flag that would do nothing on a command is not accepted there, and every flag
names its variable and default in --help the same way.
"""

from __future__ import annotations

import argparse
import re
from typing import NoReturn

from entrypoint.errors import UsageError
from entrypoint.settings.options import Option, OptionGroup


def _as_written(message: str) -> str:
    return message


def _as_written_plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


# argparse asks gettext for each of its own words ("usage: ", "options", an error's
# wording): a search of the file system for a catalogue per word, after importing locale,
# ~1-3 ms of every start, each healthcheck's included. The gate speaks English only (its
# own words are never translated), so argparse's stay as written too: one language in
# every message, and no search for a catalogue that no installation has.
argparse._ = _as_written  # type: ignore[attr-defined]
argparse.ngettext = _as_written_plural  # type: ignore[attr-defined]


class OptionParser(argparse.ArgumentParser):
    """argparse, but a usage error is a UsageError (exit 64, one line), not exit 2, and
    names the variable of the flag it is about (users configure by variable too)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # This command's, from add_groups: by flag (by variable for one with no flag).
        self.options: dict[str, Option] = {}

    def error(self, message: str) -> NoReturn:
        flag = re.search(r"argument (--[a-z-]+)", message)
        option = self.options.get(flag.group(1)) if flag else None
        if option is not None:
            message = message.replace(option.flag or "", option.names, 1)
        raise UsageError(f"{self.prog}: {message}")


class MeasuredWidthFormatter(argparse.HelpFormatter):
    """argparse's formatter, which asks the terminal's width only when it formats help.

    argparse makes a formatter for every ``add_argument`` (to check the metavar), and
    argparse's own asks the terminal's size in its constructor, importing ``shutil``: ~2 ms
    of every healthcheck, which prints no help. Here the width is measured as argparse
    would measure it, but in ``format_help``, the one place that uses it (--help, and the
    usage line of an error); a width given explicitly is used as it is."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        # Any width will do until format_help measures the real one.
        super().__init__(prog, indent_increment, max_help_position, 80 if width is None else width)
        self._unmeasured = width is None
        self._asked_help_position = max_help_position

    def format_help(self) -> str:
        if self._unmeasured:
            import shutil  # noqa: PLC0415 - only when help is formatted (see above)

            self._unmeasured = False
            self._width = shutil.get_terminal_size().columns - 2  # as argparse computes it
            self._max_help_position = min(
                self._asked_help_position, max(self._width - 20, self._indent_increment * 2)
            )
        return super().format_help()


class HelpFormatter(MeasuredWidthFormatter, argparse.RawDescriptionHelpFormatter):
    """A command's help: its paragraphs kept as written, and help wrapped at spaces only,
    so a JSON default stays copyable in one piece."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap  # noqa: PLC0415 - only when --help is asked for

        return textwrap.wrap(
            " ".join(text.split()), width, break_long_words=False, break_on_hyphens=False
        )


def describe(
    parser: argparse.ArgumentParser, description: str, epilog: str, usage: str | None = None
) -> None:
    """A command's --help text (its own paragraphs, kept as written)."""
    parser.description, parser.epilog = description, epilog
    parser.formatter_class = HelpFormatter
    if usage is not None:
        parser.usage = usage


def add_groups(parser: OptionParser, *groups: OptionGroup) -> None:
    """The flags of ``groups``, under their titles in --help; variable-only options (the
    mesh's target lists) are listed in the group's description."""
    for group in groups:
        by_variable = [opt for opt in group.options if opt.flag is None]
        listed = "also from the environment: " + ", ".join(opt.env for opt in by_variable)
        if len(by_variable) == len(group.options) == 1:  # a variable alone: its whole help
            only = by_variable[0]
            listed = f"{only.help}\n[env {only.env}; default {only.shown_default}]"
        section = parser.add_argument_group(group.title, listed if by_variable else None)
        for opt in group.options:
            parser.options[opt.flag or opt.env] = opt
            if opt.flag is not None:
                section.add_argument(
                    opt.flag,
                    dest=opt.field,
                    metavar=opt.metavar,
                    default=None,
                    action="append" if opt.repeat else "store",
                    help=_help(opt),
                )


def _help(opt: Option) -> str:
    return f"{opt.help} [env {opt.env}; default {opt.shown_default}]"


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")
