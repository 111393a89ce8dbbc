"""What a command module provides, for the type checker only.

Protocol classes are costly to create (~1 ms at import), and every healthcheck would pay
for them: the registry and ``cli`` import this module only under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Protocol

from entrypoint.commands.arguments import OptionParser
from entrypoint.errors import UsageError
from entrypoint.settings.options import OptionGroup


class Command(Protocol):
    """What a command module provides."""

    def add_arguments(self, parser: OptionParser) -> None:
        """Describe the command on ``parser`` and declare the option groups it uses."""

    def run(self, args: argparse.Namespace, command: list[str], environ: Mapping[str, str]) -> int:
        """Do the command's job; the exit code (or raise a GateError, see cli)."""


class ReportsUsageErrors(Command, Protocol):
    """A command with its own contract for usage errors (``health``: exit 1, one line)."""

    def report_usage_error(self, exc: UsageError) -> int: ...


class TakesGroups(Command, Protocol):
    """A command whose flags are exactly its option groups' (``Entry.bare_call``)."""

    GROUPS: tuple[OptionGroup, ...]
