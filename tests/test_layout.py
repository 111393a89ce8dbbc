"""The layout the README's "Layout" section describes, checked against the imports.

Every ``import`` (type-only ones included) of every module under ``entrypoint/`` is read
from its source: the graph must have no circle, and no module may import from a layer
above its own. The test suite has a layout too: test modules share only what is in
``tests/support/`` (and the stand-ins), never one another; a test body ends nothing by
hand (what it starts, a fixture or a context manager ends); and the time settings given to
the gate are named in ``tests/support/bounds.py`` only.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.helpers import REPO

TESTS = REPO / "tests"

PACKAGE = REPO / "entrypoint"
# Bottom to top, as in the README. A module not listed here fails the test: a new module
# must be given its place.
LAYERS: list[set[str]] = [
    {
        "entrypoint",
        "log",
        "process",
        "addresses",
        "files",
        "deadline",
        "log.logs",
        "reasons",
        "errors",
        "process.signals",
        "process.handoff",
        "checks",
        "report",
        "log.gatelog",
        "process.failclosed",
        "process.fdlimit",
        "log.consolelog",
        "log.events",
        "process.gatestate",
    },
    {
        "gateway",
        "gateway.tcp",
        "gateway.requests",
        "gateway.replies",
        "gateway.judgement",
        "gateway.broker_states",
        "gateway.mt5linux",
    },
    {"gateway.dialect", "gateway.advice", "gateway.connection", "gateway.text_fields"},
    {
        "gateway.endpoint",
        "gateway.presets",
        "gateway.zmq_client",
        "gateway.pending",
        "gateway.answers",
    },
    {
        "gateway.transports",
        "gateway.two_socket",
        "gateway.rpyc_transport",
        "gateway.check",
        "retry",
    },
    {"settings", "settings.options"},
    {"settings.config", "settings.curve"},
    {
        "targets.base",
        "targets.icmp",
        "targets.local",
        "targets.net",
        "targets.services",
        "targets.zmq",
        "targets",
    },
    {"sim"},
    {
        "commands",
        "commands.wait",
        "commands.probe",
        "commands.health",
        "commands.mesh",
        "commands.sim",
        "commands.explain",
    },
    {"cli", "__main__"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    name = ".".join(part for part in parts if part != "__init__")
    return name or "entrypoint"


def imports(path: Path, known: set[str]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("entrypoint")
        ):
            base = node.module.removeprefix("entrypoint").lstrip(".") or "entrypoint"
            names = [
                f"{base}.{alias.name}" if base != "entrypoint" else alias.name
                for alias in node.names
            ]
            names = [name if name in known else base for name in names]
        elif isinstance(node, ast.Import):
            names = [
                alias.name.removeprefix("entrypoint.")
                for alias in node.names
                if alias.name.startswith("entrypoint")
            ]
        found.update(names)
    return found


def graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imports(path, set(paths)) - {name} for name, path in paths.items()}


# A new module in these packages takes its package's layer: adding a target kind is one
# module and one line in targets.KINDS, nothing here.
PACKAGE_LAYERS = {"targets": "targets", "sim": "sim", "commands": "commands"}


def layer(name: str) -> int:
    package = name.split(".", maxsplit=1)[0] if "." in name else None
    placed = PACKAGE_LAYERS.get(package, name) if package else name
    return next(index for index, members in enumerate(LAYERS) if placed in members)


def test_every_module_has_a_place_in_the_layers() -> None:
    """The README's layers name every module there is (or its package's layer does), and
    no module that is gone."""
    modules = set(graph())
    for name in modules:
        layer(name)  # StopIteration: a module with no place
    named = set().union(*LAYERS)
    assert named - modules == set(), "the layers name modules that are gone"


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    """Imports only go down (or sideways within a layer)."""
    upward = [
        (name, imported)
        for name, targets in graph().items()
        for imported in targets
        if layer(imported) > layer(name)
    ]
    assert upward == []


def test_only_the_sim_command_imports_the_simulator() -> None:
    """entrypoint/sim/ is a simulated gateway, not part of the gate: outside it, only the
    `sim` command's module imports it, so no other command ever loads it."""

    def in_sim(name: str) -> bool:
        return name == "sim" or name.startswith("sim.")

    importers = {
        name
        for name, targets in graph().items()
        if not in_sim(name) and any(in_sim(target) for target in targets)
    }
    assert importers == {"commands.sim"}


def test_no_module_is_over_500_lines() -> None:
    """Small modules with one responsibility each: a module past 500 lines is split. (400
    before `ruff format`, which puts each argument of a wrapped call on a line of its own:
    the same code takes about 1.3 times the lines.)"""
    long = {
        module_name(path): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 500
    }
    assert long == {}


def test_the_gateway_layer_does_not_import_the_configuration() -> None:
    """gateway/ receives an Endpoint value object, never GateSettings."""
    edges = graph()
    assert {
        name: sorted(
            t for t in targets if t in ("settings.options", "settings.config", "settings.curve")
        )
        for name, targets in edges.items()
        if name.startswith("gateway")
        and {"settings.options", "settings.config", "settings.curve"} & targets
    } == {}


def test_the_import_graph_has_no_circle() -> None:
    """No module reaches itself through its imports, type-only imports included."""
    edges = graph()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name in done:
            return
        for imported in sorted(edges[name]):
            visit(imported, (*path, name))
        done.add(name)

    for name in sorted(edges):
        visit(name, ())


# --- the test suite's own layout ----------------------------------------------------------


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, as dotted names (relative imports resolved)."""
    package = ".".join(path.relative_to(REPO).parent.parts)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_no_test_module_imports_another() -> None:
    """What test modules share lives in tests/support/ (or tests/standins/); a test module
    imported by another would run its tests' imports twice and hide a shared helper."""
    shared = sorted(TESTS.rglob("*.py"))
    importing = {
        str(path.relative_to(REPO)): sorted(
            name
            for name in imported_modules(path)
            if name.split(".")[-1].startswith("test_") or ".test_" in name
        )
        for path in shared
    }
    assert {path: names for path, names in importing.items() if names} == {}


def test_no_test_body_ends_what_it_started_by_hand() -> None:
    """No try/finally in a test module: what a test starts, a fixture or a context manager
    (tests/support/) ends, whatever the test did."""
    by_hand = [
        f"{path.name}:{node.lineno}"
        for path in sorted(TESTS.glob("test_*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Try) and node.finalbody
    ]
    assert by_hand == []


TIME_FLAGS = {
    "--timeout",
    "--connect-timeout",
    "--reply-timeout",
    "--backoff-initial",
    "--backoff-max",
}


def test_time_settings_are_named_in_bounds_only() -> None:
    """A module-level list of the gate's time flags (a FAST list) exists in bounds.py only,
    named there with the reason for its size."""
    outside = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for path in sorted(TESTS.rglob("*.py"))
        if path.name != "bounds.py"
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and isinstance(node.value, ast.List | ast.Tuple)
        and any(
            isinstance(leaf, ast.Constant) and leaf.value in TIME_FLAGS
            for leaf in ast.walk(node.value)
        )
    ]
    assert outside == []
