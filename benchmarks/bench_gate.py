"""Benchmarks for mt5-gate: start-up overhead and detection latency, side by side.

    python benchmarks/bench_gate.py [--runs 20] [--trials 10] [--long]

Prints Markdown tables of medians, p95s and ratios, all measured in this one run on this
machine. Every server is the simulated gateway on 127.0.0.1.

1. Start-up overhead on an answering gateway: ``mt5-gate wait -- true`` against the import
   floor ``python -c "import zmq, structlog, tenacity"`` and bare ``python -c pass``,
   interleaved so that machine noise hits all of them alike.
2. Detection latency: the gateway binds after an outage of 5 s and 60 s (and 10 min with
   --long); latency is the runner's first line (``date +%s.%N``) minus the simulator's bind
   time. Trials of one outage run concurrently, staggered, to keep the wall time sane.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATE_", "GATEWAY_"))}
    env["PYTHONPATH"] = str(REPO)
    env["GATE_LOG_FORMAT"] = "json"
    return env


def _gate_cmd() -> list[str]:
    script = shutil.which("mt5-gate", path=str(Path(PY).parent))
    return [script] if script else [PY, "-m", "entrypoint"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


class Sim:
    def __init__(self, *args: str, port: int = 0) -> None:
        self.proc = subprocess.Popen(
            [*_gate_cmd(), "sim", "--bind", "127.0.0.1", "--port", str(port), "--pub-port", "0",
             "--tick-hz", "0", *args],
            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.bound_at: float | None = None
        self.port = port
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            event = json.loads(line)
            if event.get("event") == "sim.listening":
                stamp = datetime.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
                self.bound_at = stamp.timestamp()
                self.port = int(event["port"])
                self._ready.set()

    def wait_bound(self, timeout: float) -> None:
        if not self._ready.wait(timeout):
            raise RuntimeError("simulator did not bind")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def bench_startup(runs: int) -> list[list[str]]:
    sim = Sim()
    sim.wait_bound(15)
    commands = {
        "`mt5-gate wait -- true`": [*_gate_cmd(), "wait", "--host", "127.0.0.1", "--port",
                                    str(sim.port), "--log-level", "error", "--", "true"],
        "floor: `python -c 'import zmq, structlog, tenacity'`":
            [PY, "-c", "import zmq, structlog, tenacity"],
        "bare: `python -c pass`": [PY, "-c", "pass"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    try:
        for _ in range(runs):
            for name, argv in commands.items():  # interleaved
                started = time.perf_counter()
                subprocess.run(argv, env=_env(), check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - started)
    finally:
        sim.stop()
    floor = statistics.median(times["floor: `python -c 'import zmq, structlog, tenacity'`"])
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        rows.append([name, f"{median * 1000:.1f}", f"{percentile(values, 95) * 1000:.1f}",
                     f"{median / floor:.2f}x"])
    return rows


def _one_detection(outage_s: float, offset_s: float, results: list[float],
                   errors: list[str]) -> None:
    time.sleep(offset_s)  # stagger trials so that their binds do not coincide
    port = _free_port()
    gate = subprocess.Popen(
        [*_gate_cmd(), "wait", "--host", "127.0.0.1", "--port", str(port), "--timeout",
         str(outage_s + 60), "--", "date", "+%s.%N"],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    sim = Sim("--start-delay", str(outage_s), port=port)
    try:
        out, _ = gate.communicate(timeout=outage_s + 90)
        sim.wait_bound(5)
        assert sim.bound_at is not None
        results.append(float(out.split()[0]) - sim.bound_at)
    except Exception as exc:  # noqa: BLE001 - a failed trial is reported, not fatal
        errors.append(repr(exc))
        gate.kill()
    finally:
        sim.stop()


def bench_detection(outages: list[float], trials: int, long_trials: int) -> list[list[str]]:
    rows = []
    for outage in outages:
        count = long_trials if outage >= 600 else trials
        results: list[float] = []
        errors: list[str] = []
        threads = [threading.Thread(target=_one_detection, args=(outage, i * 0.37, results,
                                                                  errors))
                   for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ms = [r * 1000 for r in results]
        rows.append([f"{outage:g} s", str(len(ms)),
                     f"{statistics.median(ms):.0f}" if ms else "-",
                     f"{percentile(ms, 95):.0f}" if ms else "-",
                     f"{max(ms):.0f}" if ms else "-", str(len(errors))])
    return rows


def bench_waiting_cost(seconds: float) -> list[list[str]]:
    """CPU time and peak RSS of a gate waiting ``seconds`` on a refused port."""
    gate = subprocess.Popen(
        [*_gate_cmd(), "wait", "--host", "127.0.0.1", "--port", str(_free_port()), "--timeout",
         str(seconds), "--log-level", "error"], env=_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(gate.pid, 0)
    gate.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return [[f"{seconds:g} s on a refused port", f"{cpu:.2f}", f"{100 * cpu / seconds:.2f}%",
             f"{usage.ru_maxrss / 1024:.1f}"]]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="start-up runs per command")
    parser.add_argument("--trials", type=int, default=10, help="detection trials per outage")
    parser.add_argument("--long", action="store_true", help="also a 10-minute outage")
    parser.add_argument("--long-trials", type=int, default=4,
                        help="trials for the 10-minute outage (default 4)")
    parser.add_argument("--outages", default="5,60", help="outage lengths in seconds")
    parser.add_argument("--wait-seconds", type=float, default=60.0,
                        help="how long the waiting-cost run waits (default 60)")
    args = parser.parse_args()
    outages = [float(x) for x in args.outages.split(",")] + ([600.0] if args.long else [])
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d}\n")
    print(f"## Start-up on an answering gateway ({args.runs} interleaved runs each)\n")
    print(table(["command", "median ms", "p95 ms", "vs import floor"], bench_startup(args.runs)))
    print(f"\n## Waiting cost: a gate waiting {args.wait_seconds:g} s on a dead gateway\n")
    print(table(["run", "CPU s", "of one core", "peak RSS MiB"],
                bench_waiting_cost(args.wait_seconds)))
    print("\n## Detection latency: gateway bind → runner's first line\n")
    print(table(["outage", "trials", "p50 ms", "p95 ms", "max ms", "failed"],
                bench_detection(outages, args.trials, args.long_trials)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
