"""Benchmarks for mt5-gate, side by side with the floor and with Debian's wait-for-it.

    python benchmarks/bench_gate.py [--runs 20] [--trials 10] [--long] [--plot PNG]

Prints Markdown tables of medians, p95s and ratios, all measured in this one run on this
machine. Servers are the simulated gateway on 127.0.0.1, or inside network namespaces
this script creates (and deletes) for the sections that need a DROP rule (root only).

1. Start-up on an answering gateway: ``mt5-gate wait -- true``, the import floor
   ``python -c "import zmq, structlog, tenacity"``, each library alone (what a lazy
   import could save), bare ``python -c pass`` and ``wait-for-it`` (TCP only), interleaved.
2. Detection latency: the gateway binds after an outage of 5 s and 60 s (10 min with
   --long); latency is the runner's first line (``date +%s.%N``) minus the gateway's bind
   time, for the gate against the simulator (libzmq), for the gate against a JeroMQ 0.3
   REP server (pure Java, ZMTP 2.0: no handshake event for the monitor), and for
   wait-for-it's fixed 1 s polling. Trials run concurrently, staggered, to keep the wall
   time sane.
3. Load on a down gateway: TCP connection attempts per minute (SYNs counted by an iptables
   rule in the gateway's namespace) against a refused and a DROPped port.
4. Mesh: 17 checks, 3 of them at DROPped ports: wall time against the longest timeout.
5. Waiting cost: CPU seconds and peak RSS of a gate waiting on a dead gateway.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
sys.path.insert(0, str(REPO))
from tests.support.netns import GATEWAY_IP, GATEWAY_NAME, NetnsPair, sh  # noqa: E402 - after the path is set


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
            [
                *_gate_cmd(),
                "sim",
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--pub-port",
                "0",
                "--tick-hz",
                "0",
                *args,
            ],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
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


FLOOR = "floor: `python -c 'import zmq, structlog, tenacity'`"


def bench_startup(runs: int) -> list[list[str]]:
    # Byte-compile the gate as pip does when it installs it into the image, so that its
    # start-up is not charged for compiling its own source (the floor's libraries are
    # compiled already) when PYTHONDONTWRITEBYTECODE keeps Python from caching it.
    subprocess.run([PY, "-m", "compileall", "-q", str(REPO / "entrypoint")], check=True)
    sim = Sim()
    sim.wait_bound(15)
    commands = {
        "`mt5-gate wait -- true`": [
            *_gate_cmd(),
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(sim.port),
            "--log-level",
            "error",
            "--",
            "true",
        ],
        FLOOR: [PY, "-c", "import zmq, structlog, tenacity"],
        "`python -c 'import zmq'`": [PY, "-c", "import zmq"],
        "`python -c 'import structlog'`": [PY, "-c", "import structlog"],
        "`python -c 'import tenacity'`": [PY, "-c", "import tenacity"],
        "bare: `python -c pass`": [PY, "-c", "pass"],
    }
    if shutil.which("wait-for-it"):
        commands["`wait-for-it -- true` (TCP only)"] = [
            "wait-for-it",
            "-q",
            "-t",
            "5",
            f"127.0.0.1:{sim.port}",
            "--",
            "true",
        ]
    times: dict[str, list[float]] = {name: [] for name in commands}
    try:
        for _ in range(runs):
            for name, argv in commands.items():  # interleaved
                started = time.perf_counter()
                subprocess.run(
                    argv,
                    env=_env(),
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                times[name].append(time.perf_counter() - started)
    finally:
        sim.stop()
    floor = statistics.median(times[FLOOR])
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        rows.append(
            [
                name,
                f"{median * 1000:.1f}",
                f"{percentile(values, 95) * 1000:.1f}",
                f"{median / floor:.2f}x",
            ]
        )
    return rows


GATE_JEROMQ = "gate (JeroMQ)"


def _waiter(tool: str, port: int, outage_s: float) -> list[str]:
    if tool in ("gate", GATE_JEROMQ):
        return [
            *_gate_cmd(),
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--timeout",
            str(outage_s + 60),
            "--",
            "date",
            "+%s.%N",
        ]
    return ["wait-for-it", "-q", "-t", "0", f"127.0.0.1:{port}", "--", "date", "+%s.%N"]


def _one_detection(
    tool: str, outage_s: float, offset_s: float, results: list[float], errors: list[str]
) -> None:
    time.sleep(offset_s)  # stagger trials so that their binds do not coincide
    port = _free_port()
    gate = subprocess.Popen(
        _waiter(tool, port, outage_s),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if tool == GATE_JEROMQ:
        _one_jeromq_detection(gate, port, outage_s, results, errors)
        return
    # A random fraction of a second, so the bind falls at a random phase of a poller's cycle.
    sim = Sim("--start-delay", f"{outage_s + random.random():.3f}", port=port)
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


def _one_jeromq_detection(
    gate: subprocess.Popen[str], port: int, outage_s: float, results: list[float], errors: list[str]
) -> None:
    """The same trial with JeroMQ as the gateway. It binds once its JVM is up (0.1-0.3 s
    after start), so latency runs from the bind JeroRep reports (its wall clock, like
    date's), whatever the JVM took."""
    from tests.support.zmq_peers import jeromq_rep_server  # noqa: PLC0415 - needs pytest and a JDK

    try:
        time.sleep(outage_s + random.random())
        with jeromq_rep_server('{"status": "OK"}', port=port) as jero:
            out, _ = gate.communicate(timeout=90)
            results.append(float(out.split()[0]) - jero.bound_at)
    except BaseException as exc:  # noqa: BLE001 - pytest.fail/skip are BaseExceptions too
        errors.append(repr(exc))
        gate.kill()


def _jeromq_available() -> bool:
    return bool(shutil.which("javac") and glob.glob("/usr/share/java/jeromq*.jar"))


def bench_detection(
    outages: list[float], trials: int, long_trials: int
) -> tuple[list[list[str]], dict[str, dict[float, list[float]]]]:
    """Rows for the table, and the raw latencies (ms) per tool and outage for the plot."""
    tools = (
        ["gate"]
        + ([GATE_JEROMQ] if _jeromq_available() else [])
        + (["wait-for-it"] if shutil.which("wait-for-it") else [])
    )
    raw: dict[str, dict[float, list[float]]] = {tool: {} for tool in tools}
    rows = []
    for outage in outages:
        count = long_trials if outage >= 600 else trials
        collected: dict[str, tuple[list[float], list[str]]] = {t: ([], []) for t in tools}
        # Both tools' trials run together; each binds its own port, staggered in time.
        threads = [
            threading.Thread(
                target=_one_detection, args=(tool, outage, i * 0.37 + j * 0.19, *collected[tool])
            )
            for i in range(count)
            for j, tool in enumerate(tools)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for tool in tools:
            ms = [r * 1000 for r in collected[tool][0]]
            raw[tool][outage] = ms
            rows.append(
                [
                    tool,
                    f"{outage:g} s",
                    str(len(ms)),
                    f"{statistics.median(ms):.0f}" if ms else "-",
                    f"{percentile(ms, 95):.0f}" if ms else "-",
                    f"{max(ms):.0f}" if ms else "-",
                    str(len(collected[tool][1])),
                ]
            )
    gate_p95 = {o: percentile(v, 95) for o, v in raw["gate"].items() if v}
    for outage, ms in raw.get(GATE_JEROMQ, {}).items():
        if ms and gate_p95.get(outage):
            rows.append(
                [
                    "ratio",
                    f"{outage:g} s",
                    "",
                    "",
                    f"JeroMQ / libzmq p95 = {percentile(ms, 95) / gate_p95[outage]:.2f}x",
                    "",
                    "",
                ]
            )
    if "wait-for-it" in raw:
        for outage, ms in raw["wait-for-it"].items():
            if ms and gate_p95.get(outage):
                rows.append(
                    [
                        "ratio",
                        f"{outage:g} s",
                        "",
                        "",
                        f"wait-for-it / gate p95 = {percentile(ms, 95) / gate_p95[outage]:.1f}x",
                        "",
                        "",
                    ]
                )
    return rows, raw


def plot_detection(raw: dict[str, dict[float, list[float]]], path: str) -> None:
    import matplotlib  # noqa: PLC0415 - a benchmark-only dependency

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4))
    styles = {
        "gate": ("o", "tab:blue"),
        GATE_JEROMQ: ("^", "tab:green"),
        "wait-for-it": ("s", "tab:orange"),
    }
    for tool, (marker, colour) in styles.items():
        for outage, values in raw.get(tool, {}).items():
            label = tool if outage == min(raw[tool]) else None
            ax.scatter(
                [f"{outage:g} s"] * len(values),
                values,
                marker=marker,
                alpha=0.6,
                label=label,
                color=colour,
            )
    ax.axhline(250, color="grey", linestyle="--", linewidth=1, label="goal: p95 250 ms")
    ax.set_xlabel("outage before the gateway binds")
    ax.set_ylabel("bind → runner's first line (ms)")
    ax.set_title("Detection latency: mt5-gate vs wait-for-it (1 s polling)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _count_attempts(pair: NetnsPair) -> tuple[int, int]:
    """(connection attempts, SYN packets) seen by the gateway namespace.

    A connect() into a DROP rule retransmits its SYN (1, 2, 4... s later), so attempts are
    counted as distinct source ports in an nft set, and SYNs by the set rule's counter.
    """
    listed = json.loads(
        sh(*pair.in_gateway("nft", "-j", "list", "table", "inet", "mt5bench")).stdout
    )["nftables"]
    ports = next(item["set"] for item in listed if "set" in item).get("elem", [])
    rule = next(item["rule"] for item in listed if "rule" in item)
    syns = next(part["counter"]["packets"] for part in rule["expr"] if "counter" in part)
    return len(ports), int(syns)


_NFT_COUNTER = """
table inet mt5bench {
    set seen { type inet_service; size 65535; }
    chain input {
        type filter hook input priority -150;
        tcp dport 5555 tcp flags & (syn | ack) == syn add @seen { tcp sport } counter
    }
}
"""


def _load_run(
    tool: str, fate: str, seconds: float, out: dict[tuple[str, str], tuple[float, float]]
) -> None:
    with NetnsPair() as pair:
        # nft counts (before the filter table), iptables decides the SYN's fate.
        subprocess.run(
            pair.in_gateway("nft", "-f", "-"), input=_NFT_COUNTER, text=True, check=True, timeout=30
        )
        target = ["REJECT", "--reject-with", "tcp-reset"] if fate == "refused" else ["DROP"]
        pair.gateway_rule("-p", "tcp", "--syn", "--dport", "5555", "-j", *target)
        if tool == "gate":
            argv = [
                *_gate_cmd(),
                "wait",
                "--host",
                GATEWAY_IP,
                "--port",
                "5555",
                "--timeout",
                str(seconds),
                "--log-level",
                "error",
            ]
        else:
            argv = ["wait-for-it", "-q", "-t", str(int(seconds)), f"{GATEWAY_IP}:5555"]
        proc = subprocess.Popen(
            pair.in_client(*argv), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            proc.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        attempts, syns = _count_attempts(pair)
        out[(tool, fate)] = (attempts * 60 / seconds, syns * 60 / seconds)


def bench_load(seconds: float) -> list[list[str]]:
    tools = ["gate"] + (["wait-for-it"] if shutil.which("wait-for-it") else [])
    out: dict[tuple[str, str], tuple[float, float]] = {}
    threads = [
        threading.Thread(target=_load_run, args=(tool, fate, seconds, out))
        for tool in tools
        for fate in ("refused", "DROP")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = {"gate": "mt5-gate (default settings)", "wait-for-it": "wait-for-it (1 s poller)"}

    def cell(key: tuple[str, str]) -> str:
        attempts, syns = out.get(key, (0.0, 0.0))
        return f"{attempts:.0f} ({syns:.0f} SYNs)"

    return [[names[tool], cell((tool, "refused")), cell((tool, "DROP"))] for tool in tools]


MESH_TIMEOUT_S = 3.0


def bench_mesh() -> list[list[str]]:
    with NetnsPair() as pair:
        sim = subprocess.Popen(
            pair.in_gateway(
                *_gate_cmd(), "sim", "--bind", "0.0.0.0", "--port", "5555", "--pub-port", "5556"
            ),
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert sim.stderr is not None
            sim.stderr.readline()  # sim.listening
            for port in (7001, 7002, 7003):
                pair.gateway_rule("-p", "tcp", "--dport", str(port), "-j", "DROP")
            live = [
                ("python", "3.11"),
                ("env", "PATH"),
                ("writable", "/tmp"),
                ("file", "/etc/hostname"),
                ("icmp", GATEWAY_IP),
                ("icmp", "127.0.0.1"),
                ("zmq_ping", f"{GATEWAY_IP}:5555"),
                ("zmq_pub", f"{GATEWAY_IP}:5556"),
                ("tcp", f"{GATEWAY_IP}:5555"),
                ("tcp", f"{GATEWAY_IP}:5556"),
                ("dns", GATEWAY_NAME),
                ("dns", "localhost"),
                ("env", "HOME"),
                ("writable", "/var/tmp"),
            ]
            dead = [("tcp", f"{GATEWAY_IP}:{port}") for port in (7001, 7002, 7003)]
            checks = "".join(f'[[check]]\nkind = "{k}"\ntarget = "{t}"\n' for k, t in live + dead)
            mesh_file = Path(tempfile.mkdtemp()) / "mesh.toml"
            mesh_file.write_text(f"include_defaults = false\ntimeout = {MESH_TIMEOUT_S}\n" + checks)
            started = time.monotonic()
            done = subprocess.run(
                pair.in_client(*_gate_cmd(), "mesh", "--json", "--file", str(mesh_file)),
                env=_env(),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            wall = time.monotonic() - started
            doc = json.loads(done.stdout)
        finally:
            sim.terminate()
            sim.wait(10)
    total = len(doc["checks"])
    longest, summed = MESH_TIMEOUT_S, MESH_TIMEOUT_S * total
    return [
        [
            f"{total} checks, score {doc['score']}, exit {done.returncode}",
            f"{wall:.2f}",
            f"{longest:g}",
            f"{wall / longest:.2f}x",
            f"{summed:g}",
            f"{wall / summed:.2f}x",
        ]
    ]


def bench_waiting_cost(seconds: float) -> list[list[str]]:
    """CPU time and peak RSS of a gate waiting ``seconds`` on a refused port."""
    gate = subprocess.Popen(
        [
            *_gate_cmd(),
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(_free_port()),
            "--timeout",
            str(seconds),
            "--log-level",
            "error",
        ],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(gate.pid, 0)
    gate.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return [
        [
            f"{seconds:g} s on a refused port",
            f"{cpu:.2f}",
            f"{100 * cpu / seconds:.2f}%",
            f"{usage.ru_maxrss / 1024:.1f}",
        ]
    ]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="start-up runs per command")
    parser.add_argument("--trials", type=int, default=10, help="detection trials per outage")
    parser.add_argument("--long", action="store_true", help="also a 10-minute outage")
    parser.add_argument(
        "--long-trials", type=int, default=4, help="trials for the 10-minute outage (default 4)"
    )
    parser.add_argument("--outages", default="5,60", help="outage lengths in seconds")
    parser.add_argument(
        "--wait-seconds",
        type=float,
        default=60.0,
        help="how long the waiting-cost run waits (default 60)",
    )
    parser.add_argument(
        "--load-seconds", type=float, default=60.0, help="how long each load run lasts (default 60)"
    )
    parser.add_argument(
        "--plot",
        metavar="PNG",
        default=None,
        help="also draw the detection latencies (needs matplotlib)",
    )
    args = parser.parse_args()
    outages = [float(x) for x in args.outages.split(",")] + ([600.0] if args.long else [])
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d}\n"
    )
    print(f"## Start-up on an answering gateway ({args.runs} interleaved runs each)\n")
    print(table(["command", "median ms", "p95 ms", "vs import floor"], bench_startup(args.runs)))
    print(f"\n## Waiting cost: a gate waiting {args.wait_seconds:g} s on a dead gateway\n")
    print(
        table(
            ["run", "CPU s", "of one core", "peak RSS MiB"], bench_waiting_cost(args.wait_seconds)
        )
    )
    if os.geteuid() == 0 and shutil.which("iptables"):
        print(
            f"\n## Load on a down gateway: TCP connection attempts per minute "
            f"(default settings, {args.load_seconds:g} s each)\n"
        )
        print(table(["tool", "refused port", "DROPped port"], bench_load(args.load_seconds)))
        print("\n## Mesh: 17 checks, 3 at DROPped ports (3 s timeout each)\n")
        print(
            table(
                ["run", "wall s", "longest timeout s", "vs longest", "sum of timeouts s", "vs sum"],
                bench_mesh(),
            )
        )
    else:
        print("\n(load and mesh sections skipped: they need root for network namespaces)")
    print("\n## Detection latency: gateway bind → runner's first line\n")
    rows, raw = bench_detection(outages, args.trials, args.long_trials)
    print(table(["tool", "outage", "trials", "p50 ms", "p95 ms", "max ms", "failed"], rows))
    if args.plot:
        plot_detection(raw, args.plot)
        print(f"\nplot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
