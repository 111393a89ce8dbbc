"""Documentation that the code points at must exist and agree with it."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

from entrypoint.gateway.broker_states import STATES
from entrypoint.gateway.presets import PRESETS
from entrypoint.reasons import HINTS, STEPS, Reason, bridge_sections, dependency_hint
from tests.support.bounds import COMMAND_S, EXIT_S
from tests.support.helpers import REPO, base_env

# How a hint names a section: a command, since the image has neither repository nor browser.
NAMED = re.compile(r"`mt5-gate explain --reason (\S+)`")


def test_every_reason_has_a_troubleshooting_section_named_by_its_hint() -> None:
    """Each reason: a `## reason` section in TROUBLESHOOTING.md, its hint links to it."""
    text = (REPO / "docs" / "TROUBLESHOOTING.md").read_text()
    sections = set(re.findall(r"^## (\S+)$", text, re.MULTILINE))
    for reason in Reason:
        assert reason.value in sections, reason
        assert HINTS[reason].endswith(f"See `mt5-gate explain --reason {reason.value}`")
        assert STEPS[reason], reason


def test_the_package_ships_troubleshooting_md_as_it_is_in_docs() -> None:
    """`explain --reason` reads the copy in the package: edit docs/TROUBLESHOOTING.md, then
    copy it over entrypoint/docs/TROUBLESHOOTING.md."""
    shipped = (REPO / "entrypoint" / "docs" / "TROUBLESHOOTING.md").read_text()
    assert shipped == (REPO / "docs" / "TROUBLESHOOTING.md").read_text()


def test_the_package_ships_bridges_md_as_it_is_in_docs() -> None:
    """`explain --bridge` reads the copy in the package: edit docs/BRIDGES.md, then copy it
    over entrypoint/docs/BRIDGES.md."""
    shipped = (REPO / "entrypoint" / "docs" / "BRIDGES.md").read_text()
    assert shipped == (REPO / "docs" / "BRIDGES.md").read_text()


def test_every_preset_has_its_bridges_section() -> None:
    """`explain --bridge NAME` finds a section for every preset, each whole (a recipe's
    `# recipe:` comment inside its code block does not end it)."""
    sections = bridge_sections()
    assert set(PRESETS) <= set(sections), set(PRESETS) - set(sections)
    for name in PRESETS:
        own = f"### `{name}`: "  # or the rehearsal presets' shared section
        shared = "## Rehearsal dialects\n"
        assert sections[name].startswith((own, shared)), sections[name][:80]
        assert f"`{name}`" in sections[name], sections[name][:80]
        assert sections[name].count("```") % 2 == 0, (name, sections[name][-300:])
    assert sections["all"] == (REPO / "docs" / "BRIDGES.md").read_text()
    listed = sections[""].rsplit("Presets: ", 1)[1].strip().split(", ")
    assert sorted(listed) == sorted(PRESETS), listed


def _strings_shown_to_users(path: Path) -> list[str]:
    """The string constants of a module that are not docstrings (nor f-string parts of
    them): what a hint, a message or a --help line can print."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_message_names_a_path_of_the_repository() -> None:
    """The gate runs in an image with no repository: a hint, a message or --help names the
    command that prints a document (`mt5-gate explain --reason/--bridge`), never a
    `docs/...` path. The packaged documents' own locations are the exception."""
    packaged = {"docs/TROUBLESHOOTING.md", "docs/BRIDGES.md"}
    found = [
        (str(path.relative_to(REPO)), text[:120])
        for path in sorted((REPO / "entrypoint").rglob("*.py"))
        for text in _strings_shown_to_users(path)
        if "docs/" in text and text not in packaged
    ]
    assert found == []


def sections_named() -> set[str]:
    """Every section a hint, a broker state's advice or a dependency's hint names."""
    texts = [
        *HINTS.values(),
        *(state.advice() for state in STATES.values()),
        dependency_hint(Reason.REFUSED, "tcp://db:5432"),
    ]
    named = {name for text in texts for name in NAMED.findall(text)}
    assert len(named) == len(Reason) + len(STATES) + 1, named
    return named


def test_every_section_a_hint_names_is_printed_by_the_package_as_installed(tmp_path: Path) -> None:
    """What a wheel (and the image, scripts/build_image.sh) installs is setuptools'
    build_py of pyproject.toml: built from a copy of the sources, run away from the
    repository, `mt5-gate explain --reason NAME` prints each section a hint names."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "entrypoint", source / "entrypoint", ignore=shutil.ignore_patterns("__pycache__")
    )
    built = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import setuptools; setuptools.setup()",
            "--quiet",
            "build_py",
            "--build-lib",
            str(built),
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=COMMAND_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    docs = (REPO / "docs" / "TROUBLESHOOTING.md").read_text()
    for name in sorted(sections_named()):
        shown = subprocess.run(
            [sys.executable, "-m", "entrypoint", "explain", "--reason", name],
            cwd=tmp_path,
            env={**base_env(), "PYTHONPATH": str(built)},
            capture_output=True,
            text=True,
            timeout=EXIT_S,
            check=False,
        )
        assert shown.returncode == 0, (name, shown.stderr)
        assert re.match(rf"##+ {re.escape(name)}\n", shown.stdout), shown.stdout[:200]
        assert shown.stdout.strip() in docs, name
    bridges = (REPO / "docs" / "BRIDGES.md").read_text()
    for name in ["", *PRESETS]:
        shown = subprocess.run(
            [sys.executable, "-m", "entrypoint", "explain", "--bridge", *([name] if name else [])],
            cwd=tmp_path,
            env={**base_env(), "PYTHONPATH": str(built)},
            capture_output=True,
            text=True,
            timeout=EXIT_S,
            check=False,
        )
        assert shown.returncode == 0, (name, shown.stderr)
        first = shown.stdout.split("\nPresets: ")[0].strip()
        assert first.startswith("##"), (name, shown.stdout[:200])
        assert first in bridges, (name, shown.stdout[:200])


def test_quick_start_says_how_mt5_gate_gets_on_the_path() -> None:
    """The quick start's `make` targets install the package editable into .venv (the
    Makefile), so `mt5-gate` is .venv/bin/mt5-gate (pyproject's script): the README says
    so, and how to put it on PATH."""
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    makefile = (REPO / "Makefile").read_text()
    assert "VENV ?= .venv" in makefile
    assert "pip install --quiet --disable-pip-version-check -e ." in makefile
    assert 'mt5-gate = "entrypoint.__main__:run"' in (REPO / "pyproject.toml").read_text()
    for told in (".venv/bin/mt5-gate", "source .venv/bin/activate", "editable"):
        assert told in quick, told


def test_every_reason_is_in_the_readme_table() -> None:
    """The README's reason table lists every reason the code can report."""
    readme = (REPO / "README.md").read_text()
    for reason in Reason:
        assert f"| `{reason.value}` |" in readme, reason


def test_changelog_has_an_unreleased_section() -> None:
    """Keep a Changelog form: an Unreleased section with Added entries."""
    text = (REPO / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    assert "### Added" in text
