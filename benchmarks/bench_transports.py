"""Detection latency per transport: a bridge that binds during a backoff pause.

    python benchmarks/bench_transports.py [--trials 10] [--outages 5,60] [--transports req,rpyc]

For each transport the gate waits (`mt5-gate wait --bridge NAME -- date +%s.%N`) while
its bridge is down; the bridge binds after the outage (plus a random fraction of a second,
so the bind falls at a random phase of the gate's reconnect cycle), and the latency is the
runner's first line minus the moment the bridge reported it was bound. The bridges are the
stand-ins of tests/standins/, written from each public bridge's source, with their own
poll timers (1 ms for both two-socket EAs):

* ``req``: the project's simulator (REQ/REP, answers at once);
* ``push-pull``: darwinex/dwx-zeromq-connector's EA (PULL commands, PUSH answers);
* ``req-pull``: khramkov/MQL5-JSON-API (REP acknowledges, PUSH answers);
* ``rpyc``: lucas-campagna/mt5linux's rpyc classic server (``--bridge mt5linux``), its
  terminal attached at once (``--initialize-s 0``: the transport, not a terminal's start).

All trials of one outage run together, each on its own ports, started 1.2 s apart so that
binds never coincide and at most a few bridges poll at once. Prints a Markdown
table of p50/p95/max and the p95 ratio of each two-socket transport to ``req``, all from
this one run on this machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
TRANSPORTS = ("req", "push-pull", "req-pull", "rpyc")
STAGGER_S = 1.2


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATE_", "GATEWAY_"))}
    env.update(PYTHONPATH=str(REPO), GATE_LOG_FORMAT="json", **extra)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))]


def _bridge(transport: str, ports: list[int], delay_s: float) -> list[str]:
    """The argv of the bridge for ``transport``, binding ``ports`` after ``delay_s``."""
    delay = ["--start-delay", f"{delay_s:.3f}"]
    if transport == "req":
        return [
            PY,
            "-m",
            "entrypoint",
            "sim",
            "--bind",
            "127.0.0.1",
            "--port",
            str(ports[0]),
            "--pub-port",
            "0",
            "--tick-hz",
            "0",
            *delay,
        ]
    if transport == "rpyc":
        return [
            PY,
            "-m",
            "tests.standins.mt5linux_server",
            "--port",
            str(ports[0]),
            "--initialize-s",
            "0",
            *delay,
        ]
    if transport == "push-pull":
        return [
            PY,
            "-m",
            "tests.standins.dwx_ea",
            "--pull-port",
            str(ports[0]),
            "--push-port",
            str(ports[1]),
            "--pub-port",
            "0",
            *delay,
        ]
    return [
        PY,
        "-m",
        "tests.standins.json_api_ea",
        "--system-port",
        str(ports[0]),
        "--data-port",
        str(ports[1]),
        "--live-port",
        "0",
        "--stream-port",
        "0",
        *delay,
    ]


def _gate(transport: str, ports: list[int], outage_s: float) -> list[str]:
    bridge = {
        "req": [],
        "push-pull": ["--bridge", "dwx"],
        "req-pull": ["--bridge", "mql5-json-api"],
        "rpyc": ["--bridge", "mt5linux"],
    }[transport]
    reply = ["--reply-port", str(ports[1])] if transport in ("push-pull", "req-pull") else []
    return [
        PY,
        "-m",
        "entrypoint",
        "wait",
        "--host",
        "127.0.0.1",
        *bridge,
        "--port",
        str(ports[0]),
        *reply,
        "--timeout",
        str(outage_s + 60),
        "--",
        "date",
        "+%s.%N",
    ]


def _bound_at(bridge: subprocess.Popen[str], transport: str) -> float:
    """Wall-clock time of the bridge's bind: the simulator's logged timestamp, or the
    moment the stand-in's listening line is read (it is printed right after the bind)."""
    stream = bridge.stderr if transport == "req" else bridge.stdout
    assert stream is not None
    for line in stream:
        event = json.loads(line) if line.startswith("{") else {}
        if transport == "req" and event.get("event") == "sim.listening":
            return datetime.datetime.fromisoformat(
                event["timestamp"].replace("Z", "+00:00")
            ).timestamp()
        if event.get("event") == "listening":
            return time.time()
    raise RuntimeError("the bridge never bound")


def one_trial(
    transport: str, outage_s: float, offset_s: float, results: list[float], errors: list[str]
) -> None:
    time.sleep(offset_s)  # stagger trials so that their binds do not coincide
    ports = [_free_port(), _free_port()]
    gate = subprocess.Popen(
        _gate(transport, ports, outage_s),
        env=_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    bridge = subprocess.Popen(
        _bridge(transport, ports, outage_s + random.random()),
        env=_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        bound = _bound_at(bridge, transport)
        out, _ = gate.communicate(timeout=outage_s + 90)
        results.append((float(out.split()[0]) - bound) * 1000)
    except Exception as exc:  # noqa: BLE001 - a failed trial is reported, not fatal
        errors.append(repr(exc))
        gate.kill()
    finally:
        bridge.terminate()
        bridge.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per transport and outage")
    parser.add_argument("--outages", default="5,60", help="outage lengths in seconds")
    parser.add_argument(
        "--transports", default=",".join(TRANSPORTS), help="which (comma-separated; req first)"
    )
    args = parser.parse_args()
    transports = tuple(args.transports.split(","))
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d}\n"
    )
    rows: list[list[str]] = []
    for outage in (float(x) for x in args.outages.split(",")):
        collected: dict[str, tuple[list[float], list[str]]] = {t: ([], []) for t in transports}
        # One bind every STAGGER_S, the transports interleaved: a bridge's 1 ms poll timer
        # costs CPU, and dozens binding at once would measure the machine's run queue.
        threads = [
            threading.Thread(
                target=one_trial,
                args=(
                    transport,
                    outage,
                    (i * len(transports) + j) * STAGGER_S,
                    *collected[transport],
                ),
            )
            for i in range(args.trials)
            for j, transport in enumerate(transports)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        p95 = {t: percentile(ms, 95) for t, (ms, _e) in collected.items() if ms}
        for transport, (ms, errors) in collected.items():
            ratio = f"{p95[transport] / p95['req']:.2f}x" if ms and p95.get("req") else "-"
            rows.append(
                [
                    transport,
                    f"{outage:g} s",
                    str(len(ms)),
                    f"{statistics.median(ms):.0f}" if ms else "-",
                    f"{p95[transport]:.0f}" if ms else "-",
                    f"{max(ms):.0f}" if ms else "-",
                    ratio,
                    str(len(errors)),
                ]
            )
    header = ["transport", "outage", "trials", "p50 ms", "p95 ms", "max ms", "p95 vs req", "failed"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
