"""Log events are declared once (entrypoint/log/events.py) and the README's tables are them.

The other half of the contract, that every JSON line a gate writes in this suite is a
declared event with declared fields, is checked where every test reads a gate's lines
(``parse_lines`` in the test support).
"""

from __future__ import annotations

import ast
import re

import pytest

from entrypoint.log import events
from tests.support.helpers import REPO


def readme_rows(first: str) -> list[str]:
    """The rows of the README table whose first event is ``first``."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| `{first}` |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("| `"):
            break
        rows.append(line)
    return rows


@pytest.mark.parametrize("declared", [events.GATE_EVENTS, events.SIM_EVENTS], ids=["gate", "sim"])
def test_readme_events_table_is_the_declarations(declared: tuple[events.Event, ...]) -> None:
    """Both ways: each declared event is a row (name, level, fields as declared), and each
    row is a declared event, in the same order."""
    rows = readme_rows(declared[0].name)
    assert rows == [f"| `{event.name}` | {event.level} | {event.about} |" for event in declared]


@pytest.mark.parametrize(
    "event", [*events.GATE_EVENTS, *events.SIM_EVENTS], ids=lambda event: event.name
)
def test_each_declared_field_is_described(event: events.Event) -> None:
    """The README cell names every field the event may carry, and only those (a value
    such as `pause` or `dns` is in backticks too, so only field-like names are checked)."""
    named = set(re.findall(r"`([a-z_]+)`", event.about))
    assert set(event.fields) <= named, set(event.fields) - named
    assert event.level in ("debug", "info", "warning", "error")


def test_no_event_name_is_spelled_outside_the_declarations() -> None:
    """Writers and the reader say `events.READY`, never "gate.ready": a renamed event
    cannot leave a writer or explain behind."""
    spelled = []
    for path in (REPO / "entrypoint").rglob("*.py"):
        if path.name in SPELLS_ITS_OWN:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and re.search(r"^(gate|sim)\.[a-z_]+$|\"(gate|sim)\.[a-z_]+\"", node.value)
            ):
                spelled.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value}")
    assert spelled == []


# events.py declares them; signals.py writes the line of a second signal from inside the
# handler, before anything else is imported (test_wait checks that line's event and fields);
# __main__.py the line of a stop before the gate's own handlers, before even `import signal`
# (test_early_signals checks it).
SPELLS_ITS_OWN = {"events.py", "signals.py", "__main__.py"}
