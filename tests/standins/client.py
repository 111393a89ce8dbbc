"""Start a stand-in bridge as a subprocess and follow its JSON event lines.

    with start("dwx_ea", "--pull-port", "0", "--push-port", "0", "--pub-port", "0") as ea:
        ... connect to ea.ports["pull"], ea.ports["push"] ...
        ea.wait_for(lambda e: e["event"] == "sent" and e["bytes"] == "", timeout=5)

stdout is read on a background thread; every line is kept (a line that is not a JSON
object is kept as ``{"event": "raw", "line": ...}``). Waits use a condition variable and a
deadline, never a bare sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
Event = dict[str, Any]


class StandIn:
    """A running stand-in: ``proc``, ``ports`` (from its listening line) and its events."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.ports: dict[str, int] = {}
        self._events: list[Event] = []
        self._stderr: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                event = {"event": "raw", "line": line.rstrip("\n")}
            with self._cond:
                self._events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self._stderr.append(line)

    def events(self) -> list[Event]:
        """Every event line seen so far, oldest first (a copy)."""
        with self._cond:
            return list(self._events)

    def stderr(self) -> str:
        with self._cond:
            return "".join(self._stderr)

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 10.0) -> Event:
        """The first event (seen so far or arriving before the deadline) that matches.

        Raises TimeoutError at the deadline, or as soon as the stand-in's stdout closes.
        """
        deadline = time.monotonic() + timeout
        checked = 0
        with self._cond:
            while True:
                for event in self._events[checked:]:
                    if predicate(event):
                        return event
                checked = len(self._events)
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    break
                self._cond.wait(left)
            why = "its stdout closed" if self._eof else f"{timeout:g} s passed"
            tail = self._events[-10:]
            stderr = "".join(self._stderr)[-2000:]
        raise TimeoutError(f"no matching event: {why}; last events: {tail}; stderr: {stderr!r}")

    def stop(self) -> int:
        """SIGTERM, wait up to 5 s, then SIGKILL; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for reader in self._readers:
            reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode

    def __enter__(self) -> StandIn:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start(module: str, *args: str, timeout: float = 10.0) -> StandIn:
    """Run ``python -m tests.standins.<module> *args`` and wait for its listening line.

    ``timeout`` covers any ``--start-delay``. On failure the process is stopped and
    TimeoutError says why (with its stderr).
    """
    name = module if "." in module else f"tests.standins.{module}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", name, *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    standin = StandIn(proc)
    try:
        listening = standin.wait_for(lambda event: event.get("event") == "listening", timeout)
    except BaseException:
        standin.stop()
        raise
    standin.ports = {str(key): int(value) for key, value in listening["ports"].items()}
    return standin
