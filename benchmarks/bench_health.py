"""CPU of one ``mt5-gate health`` against the floor, and ``wait``'s start-up, side by side.

    python benchmarks/bench_health.py [--runs 15] [--base REV]

A simulated gateway answers on 127.0.0.1; each command below then runs ``--runs`` times,
interleaved (one of each, then the next round), and its CPU (user + system of the child,
from ``os.wait4``) and wall time are recorded. Prints a Markdown table of medians, p95s
and ratios to the floor, all measured in this one run on this machine, and what a
healthcheck every 10 s costs in a day (8640 checks).

1. The floor: ``python -c`` that imports pyzmq, sends ``{"action": "PING"}`` on a REQ
   socket, receives the reply and ``json.loads`` it: what any ZeroMQ healthcheck in Python
   must pay.
2. ``mt5-gate health`` with JSON logs (stderr is not a terminal), as the image's
   HEALTHCHECK runs it: no flag, ``GATEWAY_HOST`` and ``GATEWAY_PORT`` in the environment
   (the command's name alone is read without argparse); and with ``--host``/``--port``.
3. ``mt5-gate wait`` with no COMMAND: start-up to exit 0 on the answering gateway.
4. With ``--base REV``: 2 and 3 again from REV's source (a temporary ``git worktree``),
   interleaved with the others, to show what a change did in the same run.

How the gate is run: as the image runs it, not as the development venv does. The venv's
editable install puts a finder on every interpreter's start (``__editable___mt5_gate...``,
~20-40 ms with the ``pathlib`` it imports), which the image, where pip installed the
package normally, does not pay. So the commands run in a temporary venv (no pip, nothing
installed) whose site-packages holds one ``.pth`` line naming this venv's site-packages
(pyzmq, structlog, tenacity, jmespath; a path line in a ``.pth`` does not run the
``.pth`` files found there), with the source tree on ``PYTHONPATH``, byte-compiled first
as pip compiles it into the image, and ``mt5-gate`` is the console script pip writes.
The floor runs in the same temporary venv.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHECKS_PER_DAY = 8640  # one every 10 s
FLOOR_SCRIPT = """\
import json, sys, zmq
ctx = zmq.Context()
sock = ctx.socket(zmq.REQ)
sock.setsockopt(zmq.LINGER, 0)
sock.connect(f"tcp://127.0.0.1:{sys.argv[1]}")
sock.send(b'{"action": "PING"}')
if not sock.poll(5000):
    sys.exit(1)
json.loads(sock.recv())
sock.close()
ctx.term()
"""
# What pip writes as the console script (pip's template, the interpreter's path on top).
CONSOLE_SCRIPT = """\
#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from entrypoint.__main__ import run
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(run())
"""


def image_like_venv(where: Path) -> tuple[str, str]:
    """(python, mt5-gate) of a bare venv that sees this venv's libraries, not its finder."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = str(where / "bin" / "python")
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    libraries = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "mt5_gate_bench_libraries.pth").write_text("\n".join(sorted(libraries)) + "\n")
    script = where / "bin" / "mt5-gate"
    script.write_text(CONSOLE_SCRIPT.format(python=python))
    script.chmod(0o755)
    return python, str(script)


@contextlib.contextmanager
def source_tree(rev: str | None) -> Iterator[Path]:
    """This checkout, or REV's source in a temporary worktree (removed afterwards)."""
    if rev is None:
        yield REPO
        return
    where = Path(tempfile.mkdtemp(prefix="mt5-gate-base-")) / "tree"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--quiet", "--detach", str(where), rev],
        check=True,
    )
    try:
        yield where
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(where)], check=False
        )
        shutil.rmtree(where.parent, ignore_errors=True)


def _env(tree: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATE_", "GATEWAY_", "PYTHON", "COVERAGE_"))
    }
    env["PYTHONPATH"] = str(tree)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # as the image sets them: the .pyc are pip's
    env["PYTHONUNBUFFERED"] = "1"
    env["GATE_LOG_FORMAT"] = "json"
    return env


class Sim:
    """The simulated gateway on a free port of 127.0.0.1 (no ticks: nothing else runs)."""

    def __init__(self, gate: str, tree: Path) -> None:
        self.proc = subprocess.Popen(
            [
                gate,
                "sim",
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--pub-port",
                "0",
                "--tick-hz",
                "0",
            ],
            env=_env(tree),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.port = 0
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(30):
            self.stop()
            raise RuntimeError("the simulator did not bind")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            event = json.loads(line)
            if event.get("event") == "sim.listening":
                self.port = int(event["port"])
                self._ready.set()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU s, wall s) of one run; the command must exit 0."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}")
    return usage.ru_utime + usage.ru_stime, wall


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


FLOOR = "floor: `python -c` import zmq, one REQ PING, json.loads"
IMAGE_HEALTH = "`mt5-gate health`, GATEWAY_HOST/PORT set (the image's HEALTHCHECK)"


def bench(runs: int, base: str | None) -> tuple[list[list[str]], list[list[str]]]:
    """(start-up rows, per-day rows)."""
    with (
        tempfile.TemporaryDirectory(prefix="mt5-gate-bench-") as tmp,
        source_tree(base) as base_tree,
    ):
        python, gate = image_like_venv(Path(tmp) / "venv")
        trees = {"": REPO} | ({f" (base {base})": base_tree} if base else {})
        for tree in trees.values():
            subprocess.run([python, "-m", "compileall", "-q", str(tree / "entrypoint")], check=True)
        sim = Sim(gate, REPO)
        port = str(sim.port)
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            FLOOR: ([python, "-c", FLOOR_SCRIPT, port], _env(REPO)),
            "bare: `python -c pass`": ([python, "-c", "pass"], _env(REPO)),
        }
        for label, tree in trees.items():
            # As the image's HEALTHCHECK runs it: no flag, the gateway from the environment.
            commands[f"{IMAGE_HEALTH}{label}"] = (
                [gate, "health"],
                _env(tree) | {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": port},
            )
            commands[f"`mt5-gate health --host H --port P`{label}"] = (
                [gate, "health", "--host", "127.0.0.1", "--port", port],
                _env(tree),
            )
        for label, tree in trees.items():
            commands[f"`mt5-gate wait` (no COMMAND){label}"] = (
                [gate, "wait", "--host", "127.0.0.1", "--port", port],
                _env(tree),
            )
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        wall: dict[str, list[float]] = {name: [] for name in commands}
        try:
            for argv, env in commands.values():  # a warm-up round, not counted
                measure(argv, env)
            for _ in range(runs):
                for name, (argv, env) in commands.items():  # interleaved
                    used, took = measure(argv, env)
                    cpu[name].append(used)
                    wall[name].append(took)
        finally:
            sim.stop()
    floor = statistics.median(cpu[FLOOR])
    rows = []
    for name in commands:
        median = statistics.median(cpu[name])
        rows.append(
            [
                name,
                f"{median * 1000:.1f}",
                f"{percentile(cpu[name], 95) * 1000:.1f}",
                f"{statistics.median(wall[name]) * 1000:.1f}",
                f"{median / floor:.2f}x",
            ]
        )
    per_day = []
    for name in commands:
        if "wait" in name or "bare" in name:
            continue
        median = statistics.median(cpu[name])
        per_day.append(
            [
                name,
                f"{median * 1000:.1f}",
                f"{median * CHECKS_PER_DAY:.0f}",
                f"{100 * median * CHECKS_PER_DAY / 86400:.2f}%",
            ]
        )
    return rows, per_day


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command (default 15)")
    parser.add_argument(
        "--base",
        metavar="REV",
        default=None,
        help="also run health and wait from this commit's source",
    )
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d}\n"
    )
    rows, per_day = bench(args.runs, args.base)
    print(f"## Healthcheck CPU on an answering gateway ({args.runs} interleaved runs each)\n")
    print(table(["command", "median CPU ms", "p95 CPU ms", "median wall ms", "CPU vs floor"], rows))
    print(f"\n## A healthcheck every 10 s ({CHECKS_PER_DAY} a day)\n")
    print(table(["command", "CPU ms per check", "CPU s per day", "of one core"], per_day))
    return 0


if __name__ == "__main__":
    sys.exit(main())
