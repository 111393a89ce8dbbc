"""Documentation that the code points at must exist and agree with it."""

from __future__ import annotations

import re

from entrypoint.reasons import HINTS, STEPS, Reason
from tests.support.helpers import REPO


def test_every_reason_has_a_troubleshooting_section_named_by_its_hint() -> None:
    """Each reason: a `## reason` section in TROUBLESHOOTING.md, its hint links to it."""
    text = (REPO / "docs" / "TROUBLESHOOTING.md").read_text()
    sections = set(re.findall(r"^## (\S+)$", text, re.MULTILINE))
    for reason in Reason:
        assert reason.value in sections, reason
        assert HINTS[reason].endswith(f"docs/TROUBLESHOOTING.md#{reason.value}")
        assert STEPS[reason], reason


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
