"""The cyclic garbage collector during start-up (``__main__.run``, ``cli._start``).

The gate starts with the collector off and, just before a command does its work, freezes
what start-up made and turns it back on: the collections start-up would trigger, and the
full one at exit over all of start-up's objects, cost a healthcheck ~8 ms. These tests
read a real gate process: off while the parser is built, on (start-up frozen) while
``health`` and ``wait`` run, since ``wait``'s loop may run for minutes; and ``cli.main``
called in a process of its own choosing (a test, an embedding program) leaves that
process's collector alone.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.bounds import EXIT_S
from tests.support.helpers import REPO, base_env
from tests.support.processes import StartSim
from tests.support.sockets import held_closed_port

# The gate's own entry point, with the collector's state recorded while the parser is
# built and when the command's run() starts (written to GC_OUT at exit).
RUN_AND_RECORD = (
    "import atexit, gc, importlib, json, os, sys\n"
    "import entrypoint.cli as cli\n"
    "seen = {}\n"
    "command = importlib.import_module('entrypoint.commands.' + sys.argv[1])\n"
    "build, run = cli.build_parser, command.run\n"
    "def building(*args, **kwargs):\n"
    "    seen['building'] = gc.isenabled()\n"
    "    return build(*args, **kwargs)\n"
    "def running(*args, **kwargs):\n"
    "    seen['running'] = gc.isenabled()\n"
    "    seen['frozen'] = gc.get_freeze_count()\n"
    "    return run(*args, **kwargs)\n"
    "cli.build_parser, command.run = building, running\n"
    "def record():\n"
    "    with open(os.environ['GC_OUT'], 'w') as out:\n"
    "        json.dump(seen, out)\n"
    "atexit.register(record)\n"
    "from entrypoint.__main__ import run as gate\n"
    "sys.exit(gate())\n"
)


def collector_seen(args: list[str], tmp_path: Path) -> tuple[int, dict[str, object]]:
    out = tmp_path / "gc.json"
    env = {k: v for k, v in base_env(GC_OUT=str(out)).items() if not k.startswith("COVERAGE_")}
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_RECORD, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=EXIT_S,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert out.exists(), done.stderr[-2000:]
    return done.returncode, json.loads(out.read_text())


@pytest.mark.parametrize("command", ["health", "wait"])
def test_the_collector_is_off_while_starting_and_on_while_the_command_runs(
    command: str, sim: StartSim, tmp_path: Path
) -> None:
    _simulator, port = sim()
    code, seen = collector_seen([command, "--host", "127.0.0.1", "--port", str(port)], tmp_path)
    assert code == 0
    assert seen["building"] is False
    assert seen["running"] is True
    assert isinstance(seen["frozen"], int)
    assert seen["frozen"] > 1000  # start-up's objects: frozen, never scanned again


def test_a_usage_error_is_reported_with_the_collector_still_off(tmp_path: Path) -> None:
    """A start that fails before the command runs exits at once: nothing is frozen."""
    code, seen = collector_seen(
        ["health", "--host", "127.0.0.1", "--port", str(held_closed_port()), "--no-such-flag"],
        tmp_path,
    )
    assert code == 1
    assert seen == {"building": False}


def test_main_in_a_process_of_its_own_leaves_the_collector_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the gate's own start turns the collector off; cli.main called by a program
    (this test) neither freezes that program's objects nor changes its collector."""
    from entrypoint.cli import main

    log = tmp_path / "gate.log"
    log.write_text("")
    frozen = gc.get_freeze_count()
    assert gc.isenabled()
    main(["explain", str(log)], {})
    capsys.readouterr()
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
