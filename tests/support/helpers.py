"""Process and socket helpers shared by the tests: real processes, real sockets, deadlines."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
GATE = [sys.executable, "-m", "entrypoint"]
IN_CI = os.environ.get("CI", "").lower() == "true"


def base_env(**extra: str) -> dict[str, str]:
    """The environment a gate subprocess gets: ours minus GATE_*/GATEWAY_*, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GATE_", "GATEWAY_")) and k != "NO_COLOR"}
    env["PYTHONPATH"] = str(REPO)
    env["GATE_LOG_FORMAT"] = "json"
    # A child that hangs is sent SIGABRT before it is killed (Proc.wait): with this set,
    # Python prints every thread's stack, so a rare hang explains itself in the test report.
    env["PYTHONFAULTHANDLER"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port that nothing listens on right now (the OS picks it, we release it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.01) -> Any:
    """Return the first truthy value of ``predicate`` within ``timeout`` s, else fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)


def parse_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line must be one JSON object; return them in order."""
    events = []
    for line in text.splitlines():
        if line.strip():
            event = json.loads(line)
            assert isinstance(event, dict), line
            events.append(event)
    return events


def names(events: Sequence[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


class Proc:
    """A child process whose stderr JSON lines are collected as they arrive."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None,
                 **popen: Any) -> None:
        self.argv = list(argv)
        self.started = time.monotonic()
        self.popen = subprocess.Popen(argv, env=env or base_env(), cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, **popen)
        self._lines: queue.Queue[str] = queue.Queue()
        self.stderr_lines: list[str] = []
        self.stdout_lines: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.popen.stderr, self.stderr_lines),
                             daemon=True),
            threading.Thread(target=self._read, args=(self.popen.stdout, self.stdout_lines),
                             daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self, stream: Any, sink: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            sink.append(line)
            self._lines.put(line)

    def events(self) -> list[dict[str, Any]]:
        return parse_lines("\n".join(self.stderr_lines))

    def wait_for_event(self, name: str, timeout: float = 10) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in self.events():
                if event.get("event") == name:
                    return event
            return None

        return dict(poll_until(found, timeout))

    def wait_for_stdout(self, text: str, timeout: float = 10) -> str:
        return self._wait_for_line(self.stdout_lines, text, timeout)

    def wait_for_stderr(self, text: str, timeout: float = 10) -> str:
        return self._wait_for_line(self.stderr_lines, text, timeout)

    @staticmethod
    def _wait_for_line(lines: list[str], text: str, timeout: float) -> str:
        def found() -> str | None:
            return next((line for line in list(lines) if text in line), None)

        return str(poll_until(found, timeout))

    def wait(self, timeout: float = 30) -> int:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.send_signal(signal.SIGABRT)  # faulthandler: the stacks of the hang
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)
            self.kill()
            stacks = "\n".join(self.stderr_lines[-60:])
            pytest.fail(f"{self.argv} did not exit within {timeout} s; its last output:\n"
                        f"{stacks}")
        self._finish()
        return code

    def _finish(self) -> None:
        for reader in self._readers:
            reader.join(5)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)
        self._finish()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._finish()


def run_gate(args: Sequence[str], env: dict[str, str] | None = None,
             timeout: float = 30) -> tuple[int, list[dict[str, Any]], str, float]:
    """Run ``mt5-gate ARGS`` to completion: (exit code, log events, stdout, seconds taken)."""
    started = time.monotonic()
    done = subprocess.run([*GATE, *args], env=env or base_env(), cwd=REPO, capture_output=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    took = time.monotonic() - started
    stderr = done.stderr.decode("utf-8", "replace")
    # A raw traceback is never acceptable; one inside a JSON gate.error (exit 70) is the
    # documented way an internal error is reported, and parse_lines rejects any non-JSON line.
    assert not any(line.startswith("Traceback") for line in stderr.splitlines()), stderr
    return done.returncode, parse_lines(stderr), done.stdout.decode(), took


def main_in_process(argv: Sequence[str], environ: dict[str, str],
                    capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]], str]:
    """``mt5-gate ARGV`` through ``cli.main`` in this process (no fork, no interpreter
    start): (exit code, JSON log events, stdout). For what neither waits nor execs."""
    from entrypoint.cli import main

    code = main(list(argv), {"GATE_LOG_FORMAT": "json", **environ})
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    return code, parse_lines(captured.err), captured.out


# The `gateway` fixture (conftest.py): starts a simulated gateway with these `mt5-gate sim`
# flags and returns (its process, its REP port); every one is stopped after the test.
StartGateway = Callable[..., tuple["Proc", int]]

# The `sim` fixture (conftest.py): ``start_sim(*args, env=..., wait_listening=...)``, and
# every simulator it started is stopped after the test (`gateway` is the same fixture).
StartSim = StartGateway

# The `gate` fixture: ``Proc([*GATE, *args], env=..., **popen)``; the `spawn` fixture:
# ``Proc(argv, env=..., **popen)``. Every process either started is killed after the test
# (its process group too, for one started with ``start_new_session=True``).
StartGate = Callable[..., "Proc"]
Spawn = Callable[..., "Proc"]


def start_sim(*args: str, env: dict[str, str] | None = None,
              wait_listening: bool = True,
              on_start: Callable[[Proc], object] | None = None) -> tuple[Proc, int]:
    """Start ``mt5-gate sim`` on loopback; return it and its REP port once it listens.
    ``on_start`` is given the process as soon as it exists (before the wait)."""
    argv = [*GATE, "sim", "--bind", "127.0.0.1", *args]
    if "--port" not in args:
        argv += ["--port", "0"]
    if "--pub-port" not in args:
        argv += ["--pub-port", "0"]
    proc = Proc(argv, env=env or base_env())
    if on_start is not None:
        on_start(proc)
    if not wait_listening:
        return proc, 0
    event = proc.wait_for_event("sim.listening", timeout=15)
    return proc, int(event["port"])


def skip_or_fail(problem: str) -> None:
    """Skip locally with the reason printed; under CI=true the test must run, so fail."""
    if IN_CI:
        pytest.fail(f"{problem} (CI=true: this must run, not skip)")
    pytest.skip(problem)


def require_root(what: str) -> None:
    """Skip (locally) or fail (under CI=true) when the test cannot run as this user."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    for tool in ("ip", "iptables"):
        dirs = [*os.environ.get("PATH", "").split(":"), "/usr/sbin", "/sbin"]
        if not any((Path(d) / tool).exists() for d in dirs):
            missing.append(tool)
    if missing:
        skip_or_fail(f"{what} needs {', '.join(missing)}")


def iter_fds(pid: int) -> Iterator[int]:
    for entry in os.listdir(f"/proc/{pid}/fd"):
        yield int(entry)


def run_on_pty(argv: Sequence[str], env: dict[str, str], stream: str = "stdout",
               timeout: float = 20) -> tuple[int, str]:
    """Run ``argv`` with its stdout or stderr on a pseudo-terminal: (exit code, output)."""
    import pty

    leader, follower = pty.openpty()
    on_tty = stream == "stdout"
    proc = subprocess.Popen(list(argv), env=env, cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=follower if on_tty else subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL if on_tty else follower)
    os.close(follower)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed its end of the terminal
                break
            if not chunk:
                break
            output += chunk
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    return code, output.decode("utf-8", "replace")
