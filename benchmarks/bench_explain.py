#!/usr/bin/env python3
"""`mt5-gate explain` on a 100 MB log: time and peak memory, beside the floors.

The log is built from a real gate run (a refused port, `--timeout 1`) repeated as a
restart loop, with the runner's own output and 300-line bursts of a flapping reason
between runs, until it reaches ``--size-mb``. Each command runs ``--runs`` times in its own
process; the table gives the median wall time and the peak RSS (``ru_maxrss``), side by
side with two floors: Python reading the lines and doing nothing, and the same loop with
``json.loads`` on every line that mentions the gate::

    .venv/bin/python benchmarks/bench_explain.py [--size-mb 100] [--runs 3]

Traffic: the one real gate run connects to a free port on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GATE = [sys.executable, "-m", "entrypoint"]

READ_FLOOR = "import sys\nfor line in open(sys.argv[1], 'rb'):\n    pass\n"
JSON_FLOOR = (
    "import json, sys\nfor line in open(sys.argv[1], 'rb'):\n"
    "    if b'\"gate.' in line:\n        json.loads(line)\n"
)


def real_run() -> bytes:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "GATE_LOG_FORMAT": "json"}
    done = subprocess.run(
        [
            *GATE,
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--timeout",
            "1",
            "--backoff-initial",
            "0.05",
            "--backoff-max",
            "0.2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
        timeout=60,
    )
    return done.stdout


def build_log(path: Path, size_mb: int) -> int:
    run = real_run()
    runner = b"".join(
        f"INFO strategy: bar {i} processed, equity 10{i:03d}.00\n".encode() for i in range(200)
    )
    flapping = b"".join(
        json.dumps(
            {
                "timestamp": "2026-11-23T00:00:01Z",
                "level": "warning",
                "event": "gate.attempt_failed",
                "attempt": i,
                "reason": ("refused", "no_reply")[i % 2],
                "hint": "Nothing listens on 10.0.0.5:5555. " * 6,
            }
        ).encode()
        + b"\n"
        for i in range(300)
    )
    lines = 0
    with path.open("wb") as out:
        while out.tell() < size_mb * 1024 * 1024:
            out.write(run + runner + flapping)
            lines += (run + runner + flapping).count(b"\n")
    return lines


def measure(argv: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one run of ``argv`` in a fresh process."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
        "print(time.perf_counter() - t, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *argv],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    seconds, kib = done.stdout.split()
    return float(seconds), int(kib) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.size_mb < 1 or args.runs < 1:
        print("error: --size-mb and --runs must be at least 1", file=sys.stderr)
        return 64
    with tempfile.TemporaryDirectory(prefix="mt5-explain-bench-") as tmp:
        log = Path(tmp) / "gate.log"
        started = time.perf_counter()
        lines = build_log(log, args.size_mb)
        size = log.stat().st_size / 1024 / 1024
        print(
            f"log: {size:.0f} MiB, {lines} lines (built in {time.perf_counter() - started:.0f} s)\n"
        )
        rows = {
            "Python reads the lines (floor)": [sys.executable, "-c", READ_FLOOR, str(log)],
            "... and json.loads every gate line": [sys.executable, "-c", JSON_FLOOR, str(log)],
            "mt5-gate explain FILE": [*GATE, "explain", str(log)],
            "mt5-gate explain --json FILE": [*GATE, "explain", "--json", str(log)],
            "mt5-gate explain < FILE (a pipe)": ["sh", "-c", f"{' '.join(GATE)} explain < {log}"],
        }
        results = {}
        for name, argv in rows.items():
            samples = [measure(argv) for _ in range(args.runs)]
            results[name] = (statistics.median(s for s, _ in samples), max(m for _, m in samples))
    floor = results["... and json.loads every gate line"][0]
    print(f"| command | median time (of {args.runs}) | MB/s | vs json floor | peak RSS |")
    print("|---|---|---|---|---|")
    for name, (seconds, peak) in results.items():
        print(
            f"| {name} | {seconds:.2f} s | {size / seconds:.0f} | {seconds / floor:.2f}x | "
            f"{peak:.1f} MiB |"
        )
    print(
        f"\n(ru_maxrss of this process's children; this host: {os.cpu_count()} cores, "
        f"page size {resource.getpagesize()} B)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
