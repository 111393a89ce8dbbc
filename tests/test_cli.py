"""The command line as users script it: exit codes, one-line errors, help that tells the truth."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from entrypoint.cli import _bare_call, build_parser, main
from entrypoint.commands import REGISTRY, Entry, wait
from entrypoint.commands.wait import EXIT_CODES_HELP
from entrypoint.settings.options import options_of
from tests.support.cli import run_gate
from tests.support.helpers import REPO, base_env
from tests.support.sockets import held_closed_port


@pytest.mark.parametrize(
    "args",
    [
        ["wait", "--host", "127.0.0.1", "--timeout", "soon"],
        ["wait", "--host", "127.0.0.1", "--port", "99999"],
        ["wait"],
        ["wait", "--host", "127.0.0.1", "--bogus"],
        ["wait", "--host", "127.0.0.1", "stray-positional"],
        [],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_64_with_one_json_line(args: list[str]) -> None:
    """Bad input: exit 64, one gate.error line, no traceback, nothing attempted."""
    ran = run_gate(args, in_process=True)
    assert ran.code == 64
    assert [e["event"] for e in ran.events] == ["gate.error"]
    assert ran.events[0]["exit_code"] == 64
    assert ran.stdout == ""


def test_argparse_errors_name_the_variable_too() -> None:
    """`--host` without a value: the one-line error names --host and GATEWAY_HOST."""
    ran = run_gate(["wait", "--port", "5555", "--host"], in_process=True)
    assert ran.code == 64
    assert "--host / GATEWAY_HOST" in ran.events[0]["error"]


def test_usage_error_honours_a_log_format_flag() -> None:
    """A usage error is rendered in the --log-format given on the command line."""
    done = run_gate(["wait", "--log-format", "console", "--port", "x"], log="text")
    assert done.code == 64
    assert "gate.error" in done.stderr
    assert not done.stderr.lstrip().startswith("{")


def test_usage_error_from_environment_names_the_variable() -> None:
    """An invalid GATE_CONNECT_TIMEOUT is reported with its flag and variable."""
    env = {"GATEWAY_HOST": "127.0.0.1", "GATE_CONNECT_TIMEOUT": "-2"}
    ran = run_gate(["wait"], env, in_process=True)
    assert ran.code == 64
    assert "--connect-timeout / GATE_CONNECT_TIMEOUT" in ran.events[0]["error"]


def test_unknown_runner_fails_before_waiting() -> None:
    """A typo in COMMAND exits 127 in well under the 600 s the gate would otherwise wait."""
    ran = run_gate(
        ["wait", "--host", "127.0.0.1", "--port", str(held_closed_port()), "--", "no-such-runner-x"]
    )
    assert ran.code == 127
    assert [e["event"] for e in ran.events] == ["gate.error"]
    assert "no-such-runner-x" in ran.events[0]["error"]
    # Refused before the first attempt (~0.1 s, ~1.5 s loaded), not after the 600 s default
    # deadline against a free port; widened from 5 s to leave 8 s for a loaded CPU.
    assert ran.took < 10, (ran.took, ran.events)


def test_runner_that_is_not_executable_exits_126(tmp_path: Path) -> None:
    """A runner file without the execute bit exits 126 before waiting."""
    script = tmp_path / "runner.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    ran = run_gate(
        ["wait", "--host", "127.0.0.1", "--port", str(held_closed_port()), "--", str(script)]
    )
    assert ran.code == 126
    assert "not executable" in ran.events[0]["error"]


def test_runner_that_is_a_directory_exits_126(tmp_path: Path) -> None:
    """A directory is not a runner."""
    ran = run_gate(
        ["wait", "--host", "127.0.0.1", "--port", str(held_closed_port()), "--", str(tmp_path)]
    )
    assert ran.code == 126


def test_non_executable_file_on_path_is_126_not_127(tmp_path: Path) -> None:
    """A runner found on PATH without the execute bit is 'not executable', not 'not found'."""
    (tmp_path / "myrunner").write_text("#!/bin/sh\n")
    env = base_env(PATH=f"{tmp_path}:{os.environ['PATH']}")
    ran = run_gate(
        ["wait", "--host", "127.0.0.1", "--port", str(held_closed_port()), "--", "myrunner"], env
    )
    assert ran.code == 126


def test_help_lists_every_option_variable_and_exit_code() -> None:
    """`mt5-gate wait --help` names each flag, its variable and default, and the exit codes."""
    ran = run_gate(["wait", "--help"], in_process=True)
    assert ran.code == 0
    text = " ".join(ran.stdout.split())
    for opt in options_of(*wait.GROUPS):
        assert opt.flag is None or f"{opt.flag} " in text
        assert f"env {opt.env}" in text
        assert f"default {opt.shown_default}" in text
    for code in ("64", "69", "70", "78", "126", "127", "130", "143"):
        assert re.search(rf"\b{code}\b", text), code


def test_readme_exit_code_table_agrees_with_the_help() -> None:
    """Every exit code wait's --help lists has its README row (the option table is held to
    the code by test_registry)."""
    readme = (REPO / "README.md").read_text()
    for line in EXIT_CODES_HELP.splitlines()[1:]:
        code = line.split()[0]
        assert re.search(rf"^\| `?{code}`? \|", readme, re.MULTILINE), f"exit code {code}"


def test_unexpected_exception_is_one_event_and_exit_70(capsys: pytest.CaptureFixture[str]) -> None:
    """A bug below the CLI becomes a gate.error event with exit 70, not a bare traceback."""
    import json

    from entrypoint.cli import _guarded
    from entrypoint.log.logs import configure_logging

    configure_logging("json", "info")

    def broken() -> int:
        raise RuntimeError("unexpected")

    assert _guarded(broken) == 70
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert (event["event"], event["exit_code"]) == ("gate.error", 70)
    assert "RuntimeError: unexpected" in event["exception"]


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the package version."""
    from entrypoint import __version__

    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["--version"])
    assert caught.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_console_script_is_installed_and_is_the_same_program() -> None:
    """The installed `mt5-gate` script prints what `python -m entrypoint` prints."""
    import shutil
    import sys

    script = Path(sys.executable).parent / "mt5-gate"
    if not script.exists():
        script = Path(shutil.which("mt5-gate") or script)
    assert script.exists(), "pip install -e . installs the mt5-gate console script"
    done = run_gate(["--version"], command=[str(script)])
    module = run_gate(["--version"])
    assert (done.code, done.stdout) == (module.code, module.stdout)


def test_main_in_process_returns_exit_code_for_config_error() -> None:
    """main() is callable in-process and returns, never exits, for usage errors."""
    assert main(["wait", "--host", "gw", "--port", "x"], {}) == 64


@pytest.mark.parametrize("entry", [e for e in REGISTRY if e.bare_call], ids=lambda e: e.name)
def test_a_bare_call_reads_the_name_alone_as_argparse_does(entry: Entry) -> None:
    """A command read without argparse (``Entry.bare_call``: the image's `mt5-gate health`)
    gets the very namespace argparse makes of its name alone, so the two readings of a
    flag-less call can never differ, whatever option is added to its groups."""
    parsed = vars(build_parser(only=entry.name).parse_args([entry.name]))
    assert vars(_bare_call(entry)) == parsed
