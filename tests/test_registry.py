"""The command registry: each command takes exactly the option groups it uses.

A flag that would do nothing on a command is refused there (exit 64, one line; `health`
keeps its own contract, exit 1 and one line); every option is taken by some command; the
README's option table says which, and a new command is one module plus one registry line.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
from collections.abc import Mapping

import pytest

from entrypoint import commands
from entrypoint.cli import build_parser, main
from entrypoint.commands.arguments import OptionParser, add_groups, describe
from entrypoint.settings.config import settings_for
from entrypoint.settings.options import (
    ALL_OPTIONS,
    ATTEMPT,
    CONNECTION,
    READINESS,
    Option,
    options_of,
)
from tests.support.cli import run_gate
from tests.support.helpers import REPO, free_port


def taken_by() -> dict[str, set[Option]]:
    """Each command's options, as its parser has them."""
    parser = build_parser()
    sub = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    return {name: set(sub.choices[name].options.values()) for name in commands.names()}


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        ("probe", ["--timeout", "3"]),
        ("probe", ["--backoff-initial", "1"]),
        ("probe", ["--backoff-max=1"]),
        ("mesh", ["--timeout", "3"]),
        ("mesh", ["--connect-timeout", "1"]),
        ("mesh", ["--reply-timeout", "1"]),
        ("mesh", ["--log-level", "debug"]),
        ("mesh", ["--status-request", "none"]),
        ("wait", ["--pub-port", "5556"]),
        ("wait", ["--file", "mesh.toml"]),
        ("sim", ["--host", "gw"]),
    ],
)
def test_a_flag_without_effect_is_refused(command: str, flag: list[str]) -> None:
    """`probe --timeout 3` does not silently do nothing: exit 64, one gate.error line that
    names the flag and the command."""
    host = ["--host", "127.0.0.1"] if command in ("probe", "mesh", "wait") else []
    ran = run_gate([command, *host, *flag], in_process=True)
    assert ran.code == 64
    assert [event["event"] for event in ran.events] == ["gate.error"]
    assert f"{flag[0].split('=')[0]} has no effect on {command}" in ran.events[0]["error"]
    assert ran.stdout == ""


@pytest.mark.parametrize("flag", [["--host", "gw"], ["--log-format", "json"]])
def test_explain_refuses_them_in_its_own_contract(flag: list[str]) -> None:
    """explain: one plain line on stderr (it reads logs; it writes none) and 64."""
    ran = run_gate(["explain", *flag], in_process=True, log="text")
    assert ran.code == 64
    assert ran.stderr == (
        f"mt5-gate explain: {flag[0]} has no effect on explain, so it is "
        "not accepted (see mt5-gate explain --help)\n"
    )


@pytest.mark.parametrize(
    "flag", [["--backoff-max", "1"], ["--log-level", "debug"], ["--status-request", "none"]]
)
def test_health_refuses_them_in_its_own_contract(flag: list[str]) -> None:
    """health: exit 1 and one `unhealthy:` line on stdout, never 64 (Docker reads 0/1)."""
    ran = run_gate(["health", "--host", "127.0.0.1", *flag], in_process=True)
    assert ran.code == 1
    assert ran.events == []
    assert ran.stdout == (
        f"unhealthy: mt5-gate health: {flag[0]} has no effect on health, so "
        "it is not accepted (see mt5-gate health --help)\n"
    )


def test_every_option_is_taken_by_some_command() -> None:
    """No option is declared that no command accepts (a variable-only one included)."""
    taken = set().union(*taken_by().values())
    for option in ALL_OPTIONS:
        assert option in taken, option.names


def test_readme_option_table_names_each_option_its_commands_and_default() -> None:
    """Both ways: every option has its row (flag, variable, default, the commands that
    take it), and every row is an option."""
    readme = (REPO / "README.md").read_text()
    rows = {}
    for line in readme.splitlines():
        match = re.match(r"^\| (`--[a-z-]+`|—) \| `([A-Z_]+)` \| (.*?) \| ([a-z, ]+) \| ", line)
        if match:
            rows[match[2]] = match
    taken = taken_by()
    assert set(rows) == {option.env for option in ALL_OPTIONS}
    for option in ALL_OPTIONS:
        row = rows[option.env]
        assert row[1] == (f"`{option.flag}`" if option.flag else "—"), option.env
        expected = [name for name, options in taken.items() if option in options]
        assert row[4].split(", ") == expected, option.env
        default = f"`{option.default}`" if option.default else option.shown_default
        assert row[3].replace("`--expect-status`", "--expect-status") == default, option.env


# Where the product may read a variable that is not an option: PATH (resolving the
# runner, as a shell would), a mesh `env` check's variable (named by the mesh file), the
# demo runner (a stand-in strategy, not the gate), and NO_COLOR (a convention every
# program honours, read where colour is decided).
READS_ITS_OWN = {
    "process/handoff.py",
    "targets/local.py",
    "sim/demo_runner.py",
    "log/logs.py",
    "report.py",
}
READS_A_VARIABLE = re.compile(r"environ\.get\(|environ\[|getenv\(")


def test_variables_are_read_only_through_the_option_table() -> None:
    """ "A flag beats its variable" lives in options.option_source: no other module reads
    a variable for a setting."""
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for path in (REPO / "entrypoint").rglob("*.py")
        if str(path.relative_to(REPO / "entrypoint")) not in {"settings/options.py", *READS_ITS_OWN}
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if READS_A_VARIABLE.search(line)
    ]
    assert offenders == []


def _example_command() -> types.ModuleType:
    """A command as a contributor writes one: a module with add_arguments and run."""
    module = types.ModuleType("entrypoint.commands.example")
    groups = (CONNECTION, ATTEMPT, READINESS)

    def add_arguments(parser: OptionParser) -> None:
        describe(parser, description="Say which gateway it would ask.", epilog="exit 0")
        add_groups(parser, *groups)

    def run(args: argparse.Namespace, _command: list[str], environ: Mapping[str, str]) -> int:
        settings = settings_for(args, environ, options_of(*groups))
        print(f"would ask {settings.target} with {settings.dialect.ping.describe()}")
        return 0

    module.add_arguments = add_arguments  # type: ignore[attr-defined]
    module.run = run  # type: ignore[attr-defined]
    return module


def test_a_new_command_is_one_module_and_one_registry_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Registered, the module gets its flags and variables, --help, one-line usage errors
    and the error boundary, with nothing else changed."""
    monkeypatch.setitem(sys.modules, "entrypoint.commands.example", _example_command())
    monkeypatch.setattr(
        commands,
        "REGISTRY",
        (*commands.REGISTRY, commands.Entry("example", "say which gateway it would ask")),
    )
    port = free_port()
    assert main(["example", "--port", str(port)], {"GATEWAY_HOST": "gw"}) == 0
    assert capsys.readouterr().out.startswith(f"would ask gw:{port} with ")
    ran = run_gate(["example", "--host", "gw", "--timeout", "1"], in_process=True)
    assert (ran.code, ran.events[0]["error"]) == (
        64,
        "mt5-gate example: --timeout has no effect on example, so it is not accepted "
        "(see mt5-gate example --help)",
    )
    assert main(["--help"], {}) == 0
    assert "say which gateway it would ask" in capsys.readouterr().out


def test_help_groups_options_under_their_titles(capsys: pytest.CaptureFixture[str]) -> None:
    """`wait --help` shows its groups; mesh's help names the variable-only targets."""
    assert main(["wait", "--help"], {}) == 0
    text = capsys.readouterr().out
    for title in (
        "connection:",
        "per-attempt limits:",
        "deadline and backoff:",
        "other dependencies:",
    ):
        assert title in text
    assert "price feed:" not in text  # wait does not take --pub-port
    assert main(["mesh", "--help"], {}) == 0
    assert "GATE_MESH_ICMP, GATE_MESH_HTTP" in " ".join(capsys.readouterr().out.split())


def test_also_help_names_every_target_scheme() -> None:
    """--also's help is static (building the parser must not import the target kinds), so
    it is held to the kinds' own table here."""
    from entrypoint.targets import SCHEMES

    also = next(option for option in ALL_OPTIONS if option.env == "GATE_ALSO")
    assert re.findall(r"([a-z+]+)://", also.help) == list(SCHEMES)
