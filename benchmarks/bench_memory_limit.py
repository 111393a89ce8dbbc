#!/usr/bin/env python3
"""The smallest container memory limit the gate works under, measured with podman.

Each trial runs the image hardened as the README documents (read-only root, no
capabilities, no-new-privileges, an arbitrary UID with group 0, 32 PIDs) with
``--memory M --memory-swap M`` in a pod of its own, and counts as working only if:
the gate waits for a gateway that is not there yet, answers a concurrent
``mt5-gate health`` (a second Python process in the same cgroup, as a healthcheck is),
then execs the runner once a simulated gateway starts in the pod, and the container is
never OOM-killed. The runner is ``sleep``, so the figure is the gate's own cost.

It also reads the peak usage of the cgroup (``memory.max_usage_in_bytes``, cgroup v1)
at a generous limit. Needs root, podman and the image (``make image`` builds
``localhost/mt5-strategy:local``; the container tests build ``:test``)::

    .venv/bin/python benchmarks/bench_memory_limit.py [--image IMAGE] [--trials 3]

Traffic stays inside each pod's own network namespace (loopback).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HARDENED = (
    "--read-only",
    "--read-only-tmpfs=false",
    "--cap-drop=ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    "1000650000:0",
    "--pids-limit",
    "32",
)
MIB = 1024 * 1024


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def logs(name: str) -> str:
    done = podman("logs", name, timeout=60)
    return done.stdout + done.stderr


def poll(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def trial(image: str, limit_mib: int, tag: str) -> tuple[bool, str, float]:
    """(worked, what happened, peak MiB of the gate's cgroup or 0 when unknown)."""
    pod = f"mt5mem{os.getpid()}{tag}"
    gate = f"{pod}-gate"
    podman("pod", "rm", "--force", pod)
    podman("pod", "create", "--name", pod)
    try:
        started = podman(
            "run",
            "--detach",
            "--name",
            gate,
            "--pod",
            pod,
            *HARDENED,
            "--memory",
            f"{limit_mib}m",
            "--memory-swap",
            f"{limit_mib}m",
            "-e",
            "GATEWAY_HOST=127.0.0.1",
            "-e",
            "GATE_TIMEOUT=60",
            image,
            "sleep",
            "30",
        )
        if started.returncode != 0:
            return False, f"podman run failed: {started.stderr.strip()[-200:]}", 0.0
        if not poll(lambda: "gate.attempt_failed" in logs(gate), 60):
            return False, _ended(gate, "never logged an attempt"), 0.0
        health = podman("exec", gate, "mt5-gate", "health", timeout=60)
        if health.returncode != 1:  # 1: not ready yet, as it should say; 137: killed
            return False, _ended(gate, f"health exited {health.returncode}"), 0.0
        podman(
            "run",
            "--detach",
            "--name",
            f"{pod}-sim",
            "--pod",
            pod,
            "--entrypoint",
            "mt5-gate",
            image,
            "sim",
            "--bind",
            "127.0.0.1",
        )
        if not poll(lambda: "gate.exec" in logs(gate), 60):
            return False, _ended(gate, "never reached the exec"), 0.0
        peak = _peak_mib(gate)
        oom = podman("inspect", gate, "--format", "{{.State.OOMKilled}}").stdout.strip()
        if oom == "true":
            return False, "OOM-killed after the exec", peak
        return True, "waited, answered health, exec'd", peak
    finally:
        podman("pod", "rm", "--force", "--time", "1", pod)


def _ended(gate: str, what: str) -> str:
    state = json.loads(podman("inspect", gate, "--format", "{{json .State}}").stdout or "{}")
    if state.get("OOMKilled"):
        return f"{what}: OOM-killed"
    if state.get("Status") == "exited":
        return f"{what}: exited {state.get('ExitCode')}"
    return what


def _peak_mib(gate: str) -> float:
    cgroup = podman("inspect", gate, "--format", "{{.State.CgroupPath}}").stdout.strip()
    path = Path("/sys/fs/cgroup/memory") / cgroup.lstrip("/") / "memory.max_usage_in_bytes"
    try:
        return int(path.read_text()) / MIB
    except (OSError, ValueError):
        return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--image", default="localhost/mt5-strategy:local", help="default: what `make image` builds"
    )
    parser.add_argument("--trials", type=int, default=3, help="per limit (default 3)")
    parser.add_argument("--low", type=int, default=8, help="MiB known or assumed too small")
    parser.add_argument("--high", type=int, default=64, help="MiB that must work")
    args = parser.parse_args()
    if podman("image", "exists", args.image).returncode != 0:
        print(f"error: image {args.image} not found: build it with `make image`", file=sys.stderr)
        return 2

    rows: list[tuple[int, int, str, float]] = []

    def works(limit: int) -> bool:
        outcomes = [trial(args.image, limit, f"{limit}x{i}") for i in range(args.trials)]
        passed = sum(ok for ok, _, _ in outcomes)
        worst = next((what for ok, what, _ in outcomes if not ok), outcomes[0][1])
        peak = max(p for _, _, p in outcomes)
        rows.append((limit, passed, worst, peak))
        print(f"  {limit} MiB: {passed}/{args.trials} {worst}", file=sys.stderr, flush=True)
        return bool(passed == args.trials)

    if not works(args.high):
        print(f"error: the gate does not work even with {args.high} MiB", file=sys.stderr)
        return 1
    low, high = args.low, args.high  # invariant: high works; low is not known to
    while high - low > 1:
        middle = (low + high) // 2
        if works(middle):
            high = middle
        else:
            low = middle

    print(f"| memory limit | trials that worked (of {args.trials}) | outcome | peak usage |")
    print("|---|---|---|---|")
    for limit, passed, what, peak in sorted(rows, reverse=True):
        print(
            f"| {limit} MiB | {passed} | {what} | {peak:.1f} MiB |"
            if peak
            else f"| {limit} MiB | {passed} | {what} | - |"
        )
    print(
        f"\nSmallest limit that worked {args.trials} of {args.trials} times: **{high} MiB** "
        f"(hardened run, a concurrent `mt5-gate health`, runner `sleep`)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
