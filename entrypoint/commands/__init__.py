"""The command registry: every command of the CLI, one line each.

A command is a module here with ``add_arguments(parser)`` (its description and exactly
the option groups it uses) and ``run(args, command, environ) -> int`` (see ``Command``).
``cli`` loops over ``REGISTRY``: it imports a command's module only when that command
runs (or its --help is asked for), so each command loads only what it uses.
"""

import importlib
from typing import TYPE_CHECKING, NamedTuple, cast

if TYPE_CHECKING:  # the registry is read before any command runs: it imports nothing
    from entrypoint.commands.contract import Command, ReportsUsageErrors


class Entry(NamedTuple):
    """One registered command: its name (and module), its line in ``mt5-gate --help``."""

    name: str
    summary: str
    runner: bool = False  # takes `-- COMMAND [ARG...]`, the program it execs
    sockets: bool = True  # opens sockets: the descriptor limit is raised first (fdlimit)
    own_usage_errors: bool = False  # its module is a ReportsUsageErrors
    # Its flags are exactly its module's GROUPS (a TakesGroups): the command's name alone
    # is parsed without argparse (cli: the image's HEALTHCHECK runs `mt5-gate health`).
    bare_call: bool = False

    def load(self) -> "Command":
        return cast("Command", importlib.import_module(f"{__name__}.{self.name}"))

    def usage_error_reporter(self) -> "ReportsUsageErrors | None":
        return cast("ReportsUsageErrors", self.load()) if self.own_usage_errors else None


REGISTRY: tuple[Entry, ...] = (
    Entry("wait", "wait for the gateway, then exec COMMAND", runner=True),
    Entry("probe", "diagnose the gateway layer by layer, with troubleshooting steps"),
    Entry(
        "health",
        "one bounded attempt, for container healthchecks",
        own_usage_errors=True,
        bare_call=True,
    ),
    Entry("mesh", "check every dependency concurrently and score the mesh"),
    Entry(
        "explain",
        "read the gate's JSON log back: what it waited for, what went wrong, what to do",
        sockets=False,
        own_usage_errors=True,
    ),
    Entry("sim", "run a simulated MT5 gateway (REQ/REP and PUB) for development and tests"),
)


def find(name: str | None) -> Entry | None:
    return next((entry for entry in REGISTRY if entry.name == name), None)


def names() -> list[str]:
    return [entry.name for entry in REGISTRY]
