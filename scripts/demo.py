"""The README's first command: a simulated gateway that starts late, the gate waiting for
it with readable logs, then the exec into a demo strategy runner that prints a few ticks.

Run with ``make demo`` (or ``python3 scripts/demo.py`` inside the venv). Ctrl-C stops
everything: the gate (or the runner it exec'd) exits 130 with one line saying so, the
simulator is stopped, this script says it stopped, and no process is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START_DELAY_S = "4"
# After Ctrl-C, how long the gate (or runner) and the simulator, which got the same SIGINT
# from the terminal, have to exit on their own (they take milliseconds) before a SIGTERM.
GRACE_S = 2.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="demo.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ticks",
        type=int,
        default=5,
        help="ticks the runner prints before it exits (default 5; 0: until Ctrl-C)",
    )
    ticks = parser.parse_args(argv).ticks
    until = f"prints {ticks} ticks" if ticks > 0 else "prints ticks until Ctrl-C"
    rep_port, pub_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(rep_port),
        "GATEWAY_PUB_PORT": str(pub_port),
    }
    python = sys.executable
    started: list[subprocess.Popen[bytes]] = []  # the simulator, then the gate
    try:
        print(
            f"demo: a simulated MT5 gateway will listen on 127.0.0.1:{rep_port} (ticks on port "
            f"{pub_port}) in {START_DELAY_S} s;\ndemo: the gate waits for it, then execs "
            f"the demo runner, which {until}\n",
            flush=True,
        )
        started.append(
            subprocess.Popen(
                [
                    python,
                    "-m",
                    "entrypoint",
                    "sim",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(rep_port),
                    "--pub-port",
                    str(pub_port),
                    "--start-delay",
                    START_DELAY_S,
                    "--log-format",
                    "json",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        started.append(
            subprocess.Popen(
                [
                    python,
                    "-m",
                    "entrypoint",
                    "wait",
                    "--log-format",
                    "console",
                    "--timeout",
                    "60",
                    "--backoff-initial",
                    "0.5",
                    "--backoff-max",
                    "2",
                    "--",
                    python,
                    "-m",
                    "entrypoint.sim.demo_runner",
                    "--ticks",
                    str(max(ticks, 0)),
                ],
                env=env,
            )
        )
        code = started[-1].wait()
        if code in (130, -signal.SIGINT):
            # The Ctrl-C reached the runner, and it exited, before this process ran its own
            # handler (the signal goes to the whole group at once): the same Ctrl-C.
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        # Ctrl-C reached the whole process group: the gate (or the runner it exec'd) and the
        # simulator stop on their own, and say so; they get a moment before a SIGTERM.
        _stop(started, grace_s=GRACE_S)
        print("demo: stopped by Ctrl-C (exit 130); no process is left behind", flush=True)
        return 130
    finally:
        _stop(started, grace_s=0)  # the simulator after a normal end; a no-op after Ctrl-C
    print(f"\ndemo: the runner exited with {code}", flush=True)
    return code


def _stop(procs: list[subprocess.Popen[bytes]], grace_s: float) -> None:
    """End ``procs``: up to ``grace_s`` to exit on their own, then SIGTERM, then SIGKILL
    after 5 s. Bounded, so a second Ctrl-C meanwhile is ignored (no traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
