"""What a person sees from `make demo`: the set-up says what it does, and Ctrl-C is one line.

The set-up is run for real with `make`, but with a stand-in interpreter for PYTHON (pip and a
fresh virtual environment are ~20 s and the network): the recipes, their order, what they
print and what they leave unprinted are make's own. The runner and the demo are real
processes sent real signals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.bounds import AFTER_SIGNAL_S, COMMAND_S, EVENT_S, EXIT_S
from tests.support.helpers import REPO, base_env
from tests.support.processes import Proc, Spawn, StartSim

RUNNER = [sys.executable, "-m", "entrypoint.sim.demo_runner"]

# A stand-in for `python3`: `-m venv DIR` makes DIR/bin/python (a copy of itself); every
# other call is written to $STUB_CALLS, and `scripts/demo.py` says that it ran.
STUB_PYTHON = """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0
fi
echo "$*" >> "$STUB_CALLS"
if [ "$1" = "scripts/demo.py" ]; then echo "(scripts/demo.py runs here)"; fi
"""


def dependencies() -> list[str]:
    """The names of the package's own libraries, as pyproject.toml lists them."""
    with (REPO / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    return [
        spec.split(">")[0].split("=")[0].split("[")[0].strip() for spec in project["dependencies"]
    ]


class Make:
    """`make` in the repository with a stand-in PYTHON and a virtual environment in tmp."""

    def __init__(self, tmp_path: Path) -> None:
        self.stub = tmp_path / "python3"
        self.stub.write_text(STUB_PYTHON)
        self.stub.chmod(0o755)
        self.venv = tmp_path / "venv"
        self.calls = tmp_path / "calls.log"
        # Not a sub-make of the `make test` that may be running this suite: no inherited
        # flags, no "Entering directory" lines.
        self.env = {
            k: v
            for k, v in base_env(STUB_CALLS=str(self.calls)).items()
            if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}
        }

    def __call__(self, target: str) -> list[str]:
        done = subprocess.run(
            ["make", "--no-print-directory", target, f"VENV={self.venv}", f"PYTHON={self.stub}"],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            timeout=COMMAND_S,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        assert done.stderr == b""
        return done.stdout.decode().splitlines()

    def pip_calls(self) -> list[str]:
        return [c for c in self.calls.read_text().splitlines() if c.startswith("-m pip")]


def test_make_demo_says_what_each_setup_step_does(tmp_path: Path) -> None:
    """A fresh `make demo`: one line before the virtual environment, one before pip (naming
    the libraries it installs), one as the demo starts; no command echoed, pip --quiet."""
    make = Make(tmp_path)
    lines = make("demo")
    assert len(lines) == 4, lines
    creating, installing, starting, ran = lines
    assert creating.startswith(
        f"demo: first run: creating the virtual environment in {make.venv} ("
    )
    assert installing.startswith("demo: installing mt5-gate")
    assert installing.endswith("with pip (~15 s)...")
    for name in dependencies():
        assert name in installing
    assert starting.startswith("demo: starting (")
    assert "Ctrl-C" in starting
    assert ran == "(scripts/demo.py runs here)"
    pip = make.pip_calls()
    assert len(pip) == 1
    assert "--quiet" in pip[0].split()


def test_make_demo_is_quiet_once_set_up_and_says_so_when_it_reinstalls(tmp_path: Path) -> None:
    """A second `make demo` only starts the demo; a pyproject.toml newer than the install
    re-runs pip (and says so) but does not claim to create the environment again."""
    make = Make(tmp_path)
    make("demo")
    again = make("demo")
    os.utime(make.venv / ".installed", (0, 0))  # older than pyproject.toml
    reinstall = make("demo")
    assert [line.split(" (")[0] for line in again] == [
        "demo: starting",
        "(scripts/demo.py runs here)",
    ]
    assert [line.split(" (")[0] for line in reinstall] == [
        "demo: installing mt5-gate, pyzmq, tenacity, structlog, jmespath with pip",
        "demo: starting",
        "(scripts/demo.py runs here)",
    ]


def test_make_test_setup_speaks_as_mt5_gate(tmp_path: Path) -> None:
    """The same set-up steps reached from `make test` (through .installed-test) say
    "mt5-gate:", not "demo:", and add one line for the test tools."""
    make = Make(tmp_path)
    lines = make(f"{make.venv}/.installed-test")
    assert [line.split(":")[0] for line in lines] == ["mt5-gate"] * 3, lines
    assert "creating the virtual environment" in lines[0]
    assert "installing mt5-gate" in lines[1]
    assert "installing the test tools" in lines[2]
    assert all("--quiet" in call.split() for call in make.pip_calls())


def start_runner(sim: StartSim, spawn: Spawn, *args: str) -> Proc:
    """The demo runner on a simulated feed, once it has printed its first tick (it is then
    in its receive loop, where it spends its life)."""
    simulator, _ = sim(wait_listening=False)
    pub_port = int(simulator.wait_for_event("sim.listening", timeout=EVENT_S)["pub_port"])
    runner = spawn(
        [*RUNNER, *args], env=base_env(GATEWAY_HOST="127.0.0.1", GATEWAY_PUB_PORT=str(pub_port))
    )
    runner.wait_for_stdout("ready pid=", timeout=EVENT_S)
    runner.wait_for_stdout("tick 1:", timeout=EVENT_S)
    return runner


def assert_stopped_with_one_line(runner: Proc, code: int, line: str) -> None:
    assert runner.wait(timeout=AFTER_SIGNAL_S) == code
    # Everything it printed: the ready line, ticks, then the one line, last and once.
    assert runner.stdout_lines[-1] == line
    others = [
        out for out in runner.stdout_lines[:-1] if not out.startswith(("ready pid=", "tick "))
    ]
    assert others == []
    assert runner.stderr_lines == []


@pytest.mark.parametrize(
    ("sig", "code", "line"),
    [
        (signal.SIGINT, 130, "demo runner: stopped by Ctrl-C (SIGINT)"),
        (signal.SIGTERM, 143, "demo runner: stopped by SIGTERM"),
    ],
)
def test_runner_stops_on_a_signal_with_one_line(
    sim: StartSim, spawn: Spawn, sig: int, code: int, line: str
) -> None:
    """Ctrl-C (or a `docker stop`) while ticks arrive: exit 128+N, one line, no traceback."""
    runner = start_runner(sim, spawn, "--ticks", "0")
    os.kill(runner.pid, sig)
    assert_stopped_with_one_line(runner, code, line)


def test_runner_second_signal_while_stopping_keeps_the_first(sim: StartSim, spawn: Spawn) -> None:
    """Ctrl-C then at once a SIGTERM (what the demo's clean-up sends a runner that is still
    there): still exit 130 and the one Ctrl-C line, not a traceback from the clean-up."""
    runner = start_runner(sim, spawn, "--ticks", "0")
    os.kill(runner.pid, signal.SIGINT)
    os.kill(runner.pid, signal.SIGTERM)
    assert_stopped_with_one_line(runner, 130, "demo runner: stopped by Ctrl-C (SIGINT)")


# The runner run as `python -m` runs it, with an import hook that sends the process a real
# SIGINT while pyzmq is being imported: where a Ctrl-C right after the gate's exec landed.
CTRL_C_DURING_IMPORT = """
import os, runpy, signal, sys

class CtrlCOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == "zmq":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlCOnImport())
runpy.run_module("entrypoint.sim.demo_runner", run_name="__main__", alter_sys=True)
"""


def test_runner_ctrl_c_while_it_starts_is_one_line(spawn: Spawn) -> None:
    """A Ctrl-C during the runner's imports (pyzmq takes ~20 ms) is the same one line and
    exit 130: it used to be a 25-line KeyboardInterrupt traceback."""
    runner = spawn(
        [sys.executable, "-c", CTRL_C_DURING_IMPORT, "--ticks", "1"],
        env=base_env(GATEWAY_PUB_PORT="1"),
    )  # never reached
    assert runner.wait(timeout=EXIT_S) == 130
    assert runner.stdout_lines == ["demo runner: stopped by Ctrl-C (SIGINT)"]
    assert runner.stderr_lines == []


@pytest.mark.timeout(120)  # the backstop behind the hang guards below
def test_demo_ctrl_c_while_the_runner_prints_ticks(spawn: Spawn) -> None:
    """`scripts/demo.py --ticks 0`, Ctrl-C (SIGINT to its whole process group, as a
    terminal sends it) once the exec'd runner prints ticks: exit 130, the runner's one line
    then the demo's one line, no traceback from any of its processes."""
    demo = spawn(
        [sys.executable, "scripts/demo.py", "--ticks", "0"], env=base_env(), start_new_session=True
    )
    # The demo's own start, its gate's, the simulator's 4 s delay, the runner's start.
    demo.wait_for_stdout("tick 1:", timeout=4 + 3 * EVENT_S)
    os.killpg(demo.pid, signal.SIGINT)
    # The demo gives its children 2 s to stop on their own, then 5 s after a SIGTERM.
    assert demo.wait(timeout=AFTER_SIGNAL_S + 2 + 5) == 130
    out = demo.stdout_lines
    assert out[0].startswith("demo: a simulated MT5 gateway will listen on 127.0.0.1:")
    assert out[1] == (
        "demo: the gate waits for it, then execs the demo runner, which prints ticks until Ctrl-C"
    )
    assert out[-2:] == [
        "demo runner: stopped by Ctrl-C (SIGINT)",
        "demo: stopped by Ctrl-C (exit 130); no process is left behind",
    ]
    assert not any("Traceback" in line for line in [*out, *demo.stderr_lines])
    assert any("gate.exec" in line for line in demo.stderr_lines)
