"""The README's first command: a simulated gateway that starts late, the gate waiting for
it with readable logs, then the exec into a demo strategy runner that prints a few ticks.

Run with ``make demo`` (or ``python3 scripts/demo.py`` inside the venv). Ctrl-C stops
everything: the gate exits 130, the simulator is stopped, and no process is left behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START_DELAY_S = "4"
TICKS = "5"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    rep_port, pub_port = _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "GATEWAY_HOST": "127.0.0.1",
           "GATEWAY_PORT": str(rep_port), "GATEWAY_PUB_PORT": str(pub_port)}
    python = sys.executable
    print(f"demo: simulated gateway on 127.0.0.1:{rep_port} (PUB {pub_port}) starts in "
          f"{START_DELAY_S} s; the gate waits for it, then execs the demo runner\n", flush=True)
    sim = subprocess.Popen(
        [python, "-m", "entrypoint", "sim", "--bind", "127.0.0.1", "--port", str(rep_port),
         "--pub-port", str(pub_port), "--start-delay", START_DELAY_S, "--log-format", "json"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gate = None
    try:
        gate = subprocess.Popen(
            [python, "-m", "entrypoint", "wait", "--log-format", "console", "--timeout", "60",
             "--backoff-initial", "0.5", "--backoff-max", "2",
             "--", python, "-m", "entrypoint.demo_runner", "--ticks", TICKS],
            env=env)
        code = gate.wait()
        print(f"\ndemo: runner exited with {code}", flush=True)
        return code
    except KeyboardInterrupt:
        # Ctrl-C reached the whole process group: the gate (or runner) exits 130 on its own.
        if gate is not None:
            _reap(gate)
        print("\ndemo: interrupted", flush=True)
        return 130
    finally:
        _reap(sim)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
