"""What each command imports: only what it uses (speed itself is measured in benchmarks/).

A healthcheck runs every 10 s for the life of the container, so what ``health`` imports is
paid thousands of times a day. These tests read the modules a real gate process imported
(its ``sys.modules`` at exit, the gate's own entry point against a simulated gateway) and
check module names only, so they hold however the command line is parsed and dispatched:

* with JSON logs, nothing imports structlog (its ``__init__`` imports asyncio): the JSON
  lines are written by ``entrypoint.log.logs``; structlog renders the console format only;
* ``health`` with the default judgement imports neither jmespath nor tenacity;
* ``health`` imports no ``dataclasses`` (nor the ``inspect`` it imports): its value objects
  are NamedTuples; the image's flag-less ``mt5-gate health`` imports no argparse; no
  ``socket`` module (``_socket`` does), ``datetime`` or ``locale`` (argparse's gettext
  lookups); no ``shutil`` (argparse's terminal-size query, made only when help is
  formatted) and no ``ast`` (parsed only for a Python-literal reply);
* a target kind's module (``entrypoint.targets.*``) is imported only when that kind is used.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entrypoint.gateway.judgement import default_expression, default_judgement, parse_judgement
from entrypoint.targets import KINDS, SCHEMES
from tests.support.bounds import EXIT_S
from tests.support.helpers import REPO, base_env
from tests.support.processes import StartSim
from tests.support.sockets import held_closed_port

KIND_MODULES = {
    "entrypoint.targets.local",
    "entrypoint.targets.net",
    "entrypoint.targets.services",
    "entrypoint.targets.zmq",
    "entrypoint.targets.icmp",
}


# The gate's own entry point, plus one thing: at exit, the names of every module the
# process imported (sys.modules; ``-X importtime`` misses importlib.import_module's) are
# written to the file MODULES_OUT names. atexit, os and sys are loaded at any start anyway.
RUN_AND_LIST = (
    "import atexit, os, sys\n"
    "def listed():\n"
    "    with open(os.environ['MODULES_OUT'], 'w') as out:\n"
    "        out.write('\\n'.join(sorted(sys.modules)))\n"
    "atexit.register(listed)\n"
    "from entrypoint.__main__ import run\n"
    "sys.exit(run())\n"
)


def imported(args: list[str], tmp_path: Path, **extra: str) -> tuple[int, set[str], str]:
    """Run ``mt5-gate ARGS``: (exit code, every module it imported, stdout)."""
    out = tmp_path / "modules.txt"
    env = {k: v for k, v in base_env(**extra).items() if not k.startswith("COVERAGE_")}
    env["MODULES_OUT"] = str(out)
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=EXIT_S,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    modules = set(out.read_text().split())
    assert "entrypoint.__main__" in modules, done.stderr[-2000:]
    return done.returncode, modules, done.stdout


def test_health_with_json_logs_imports_no_structlog_asyncio_jmespath_or_kinds(
    sim: StartSim, tmp_path: Path
) -> None:
    """The healthcheck's imports: no structlog (nor the asyncio it pulls in), no jmespath for
    the default judgement, no tenacity (health makes one attempt), no target kind."""
    _simulator, port = sim()
    code, modules, stdout = imported(
        ["health", "--host", "127.0.0.1", "--port", str(port)], tmp_path
    )
    assert (code, stdout.split(":")[0]) == (0, "healthy")
    unwanted = {"structlog", "asyncio", "jmespath", "tenacity"} | KIND_MODULES
    assert modules & unwanted == set()


# What `import dataclasses` brings (inspect and what inspect imports), and what argparse's
# width query and the literal parser import: none of it is needed by a healthcheck.
# And the two-socket and rpyc transports' machinery: a `req` healthcheck never uses it.
NOT_FOR_HEALTH = {
    "dataclasses",
    "inspect",
    "dis",
    "tokenize",
    "shutil",
    "ast",
    "entrypoint.gateway.two_socket",
    "entrypoint.gateway.answers",
    # socket.py (with selectors and array): the gate uses _socket, the C module it wraps
    "socket",
    "selectors",
    "datetime",  # "$now" is written with the time module
    "signal",  # the handlers are installed with _signal, the C module it wraps
    "locale",  # argparse's words are not looked up in a catalogue (commands/arguments.py)
    "entrypoint.commands.contract",  # the commands' Protocols, for the type checker only
    # The rpyc transport (--bridge mt5linux) and the client library it imports.
    "entrypoint.gateway.rpyc_transport",
    "entrypoint.gateway.mt5linux",
    "rpyc",
    "plumbum",
}


def test_health_imports_no_dataclasses_inspect_shutil_or_ast(sim: StartSim, tmp_path: Path) -> None:
    """The healthcheck's value objects are NamedTuples (typing is imported anyway, by
    pyzmq); the help formatter asks the terminal's width only for help; ``ast`` comes with
    a Python-literal reply only. Checked for the healthy and the unhealthy check."""
    _simulator, port = sim()
    for port_, verdict in ((port, "healthy"), (held_closed_port(), "unhealthy")):
        code, modules, stdout = imported(
            ["health", "--host", "127.0.0.1", "--port", str(port_)], tmp_path
        )
        assert stdout.split(":")[0] == verdict, (code, stdout)
        assert modules & NOT_FOR_HEALTH == set(), verdict


# What parsing flags costs: argparse (and the gettext it imports at the top) and the
# gate's parser helpers. The image's HEALTHCHECK is `mt5-gate health`, no flag.
PARSING = {"argparse", "gettext", "entrypoint.commands.arguments"}


def test_the_images_healthcheck_parses_nothing(sim: StartSim, tmp_path: Path) -> None:
    """`mt5-gate health` with the gateway in the environment, as the image runs it, is
    read without argparse (cli._bare_call): healthy, unhealthy, and a bad variable's
    one line too. A flag brings argparse back (it is what reads flags)."""
    _simulator, port = sim()
    cases = [
        ({"GATEWAY_PORT": str(port)}, "healthy"),
        ({"GATEWAY_PORT": str(held_closed_port())}, "unhealthy"),
        ({"GATEWAY_PORT": str(port), "GATE_HEALTH_TIMEOUT": "soon"}, "unhealthy"),
    ]
    for env, verdict in cases:
        code, modules, stdout = imported(["health"], tmp_path, GATEWAY_HOST="127.0.0.1", **env)
        assert (code, stdout.split(":")[0]) == (int(verdict == "unhealthy"), verdict), (env, stdout)
        assert modules & PARSING == set(), (env, stdout)
    _code, modules, stdout = imported(
        ["health", "--port", str(port)], tmp_path, GATEWAY_HOST="127.0.0.1"
    )
    assert stdout.startswith("healthy"), stdout
    assert modules >= PARSING, modules & PARSING


def test_every_value_object_health_imports_is_a_named_tuple(tmp_path: Path) -> None:
    """No module ``health`` imports defines a dataclass: each would bring dataclasses back
    (and cost ~0.4 ms to create). Read from the modules a real healthcheck imported."""
    code, modules, _ = imported(
        ["health", "--host", "127.0.0.1", "--port", str(held_closed_port())], tmp_path
    )
    assert code == 1
    ours = sorted(name for name in modules if name.startswith("entrypoint."))
    for name in ours:
        path = REPO / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = REPO / name.replace(".", "/") / "__init__.py"
        assert not re.search(r"^\s*(import|from) dataclasses", path.read_text(), re.MULTILINE), name


def test_an_unhealthy_check_imports_no_structlog_either(tmp_path: Path) -> None:
    """The failing healthcheck (refused) is as lean: its one line is not a log event."""
    code, modules, stdout = imported(
        ["health", "--host", "127.0.0.1", "--port", str(held_closed_port())], tmp_path
    )
    assert (code, stdout.split(":")[0]) == (1, "unhealthy")
    assert modules & {"structlog", "asyncio", "jmespath"} == set()


def test_wait_with_json_logs_imports_no_structlog_and_only_the_kind_it_uses(
    sim: StartSim, tmp_path: Path
) -> None:
    """wait --also tcp://: the JSON lines need no structlog; of the kinds, only the network
    ones are loaded (not the HTTP, Redis, PostgreSQL or local ones, nor ICMP)."""
    _simulator, port = sim()
    code, modules, _ = imported(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--timeout",
            "20",
            "--also",
            f"tcp://127.0.0.1:{port}",
        ],
        tmp_path,
    )
    assert code == 0
    assert "structlog" not in modules
    assert modules & KIND_MODULES == {"entrypoint.targets.net"}
    assert modules & {"http.client", "ssl", "redis", "psycopg"} == set()


def test_the_console_format_is_still_rendered_by_structlog(tmp_path: Path) -> None:
    """The other side of the split: console lines are structlog's ConsoleRenderer's."""
    code, modules, _ = imported(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(held_closed_port()),
            "--timeout",
            "0.2",
            "--log-format",
            "console",
        ],
        tmp_path,
    )
    assert code == 69
    assert "structlog.dev" in modules


def test_the_kinds_table_loads_no_kind_module_until_a_kind_is_built() -> None:
    """Importing the registry (as --help does, for the schemes) loads no kind's module; each
    kind's build still resolves to its module's function."""
    code = (
        "import sys, entrypoint.targets as t; "
        "print(sorted(m for m in sys.modules if m.startswith('entrypoint.targets.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=base_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=EXIT_S,
        check=True,
    )
    assert json.loads(done.stdout.replace("'", '"')) == ["entrypoint.targets.kinds"]
    for kind in KINDS.values():
        assert callable(kind.build), kind
        assert kind.build.__module__.startswith("entrypoint.targets."), kind
    assert set(SCHEMES) == {scheme for kind in KINDS.values() for scheme in kind.schemes}


def test_a_kind_is_immutable() -> None:
    kind = KINDS["tcp"]
    with pytest.raises(AttributeError):
        kind.name = "udp"


# --- the default judgement, evaluated without jmespath -----------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.sampled_from(
        [
            "OK",
            "ok",
            "PONG",
            "pong ",
            "ERROR",
            "no",
            "false",
            "0",
            "",
            "Operational",
            "connected",
            "DISCONNECTED",
            "market closed",
            "it's",
            "`x`",
            "TRADE_DISABLED",
        ]
    ),
)
_KEYS = st.sampled_from(
    [
        "status",
        "Status",
        "STATUS",
        "ok",
        "OK",
        "success",
        "error",
        "errors",
        "err",
        "Error",
        "result",
        "data",
        "state",
        "message",
        "trading_allowed",
        "bot_trading",
        "connected",
        "terminal",
    ]
)
REPLIES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=12,
)
STATUS_SETS = st.sampled_from(
    [("OK", "PONG", "OPERATIONAL"), ("OK",), ("it's", "`x`"), ("Operational", "0"), ("true", "200")]
)


@settings(
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=400,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(reply=REPLIES, statuses=STATUS_SETS)
def test_the_default_judgement_is_what_its_jmespath_expression_says(
    reply: Any, statuses: tuple[str, ...]
) -> None:
    """The default judgement, evaluated directly, agrees with the JMESPath expression it is
    shown as (``default_ready(@, `[...]`)``) on every reply, the statuses' quoting included."""
    native = default_judgement(statuses)
    compiled = parse_judgement(default_expression(statuses), "--expect-status")
    assert native.expression == compiled.expression
    assert native.accepts(reply) == compiled.accepts(reply)


def test_jmespath_is_imported_for_a_written_expression_only() -> None:
    """--ready-when (or a preset's judgement) still brings jmespath, and only then."""
    code = (
        "import sys; from entrypoint.settings.config import settings_from_sources as s; "
        "s({'host': 'gw'}, {}); a = 'jmespath' in sys.modules; "
        "s({'host': 'gw', 'ready_when': 'connected'}, {}); "
        "print(a, 'jmespath' in sys.modules)"
    )
    env = {k: v for k, v in base_env().items() if k != "PYTHONSTARTUP"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=EXIT_S,
        check=True,
    )
    assert done.stdout.split() == ["False", "True"]


def test_no_module_imports_structlog_at_its_top() -> None:
    """Only the console renderer (and the fallback for a process that never configured
    logging) may import structlog: a module-level import would undo all of the above."""
    for path in (REPO / "entrypoint").rglob("*.py"):
        if path.name == "consolelog.py":
            continue
        for line in path.read_text().splitlines():
            assert not re.match(r"(import structlog|from structlog)", line), (path, line)
