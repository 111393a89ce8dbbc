"""The one way a test starts a process that outlives a call: ``Processes``.

Everything a test starts here (``spawn`` any program, ``gate`` a ``mt5-gate`` command,
``sim`` a simulated gateway, ``standin`` a stand-in bridge) is ended when its ``Processes``
closes, whatever the test did: in the reverse order of the starts (a gate before the
simulator it waits for), every one even if ending another fails, and one that already
exited (or that the test ended itself) is left as it is. tests/conftest.py closes one per
test behind the `spawn`, `gate`, `sim` and `standin` fixtures; a module-scoped one is a
``with Processes() as started:`` in a module fixture. A command that simply runs to
completion is ``run_gate`` (tests/support/cli.py) instead.

``netns=`` runs the process in a network namespace pair (tests/support/netns.py): a gate on
the client side, a simulator on the gateway side.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from tests.standins.client import StandIn
from tests.standins.client import start as start_standin
from tests.support.bounds import AFTER_SIGNAL_S, EVENT_S, EXIT_S
from tests.support.helpers import GATE, REPO, base_env, parse_lines, poll_until

if TYPE_CHECKING:
    from types import TracebackType

    from tests.support.netns import NetnsPair


def first_child(pid: int) -> int | None:
    """The first child of ``pid`` (for ``unshare --fork``: its one child, PID 1 of the new
    namespace), or None while it has none, or once it is gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listed:
            children = listed.read().split()
    except OSError:
        return None
    return int(children[0]) if children else None


class Proc:
    """A child process whose stderr JSON lines are collected as they arrive."""

    def __init__(
        self, argv: Sequence[str], env: dict[str, str] | None = None, **popen: Any
    ) -> None:
        self.argv = list(argv)
        self.started = time.monotonic()
        # stdin: nothing to read, unless the test gives one (a pseudo-terminal).
        popen.setdefault("stdin", subprocess.DEVNULL)
        self.popen = subprocess.Popen(
            argv,
            env=env or base_env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **popen,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self.stderr_lines: list[str] = []
        self.stdout_lines: list[str] = []
        self._readers = [
            threading.Thread(
                target=self._read, args=(self.popen.stderr, self.stderr_lines), daemon=True
            ),
            threading.Thread(
                target=self._read, args=(self.popen.stdout, self.stdout_lines), daemon=True
            ),
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

    def wait_for_event(self, name: str, timeout: float = EVENT_S) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in self.events():
                if event.get("event") == name:
                    return event
            return None

        return dict(poll_until(found, timeout))

    def wait_for_stdout(self, text: str, timeout: float = EVENT_S) -> str:
        return self._wait_for_line(self.stdout_lines, text, timeout)

    def wait_for_stderr(self, text: str, timeout: float = EVENT_S) -> str:
        return self._wait_for_line(self.stderr_lines, text, timeout)

    @staticmethod
    def _wait_for_line(lines: list[str], text: str, timeout: float) -> str:
        def found() -> str | None:
            return next((line for line in list(lines) if text in line), None)

        return str(poll_until(found, timeout))

    def wait(self, timeout: float = EXIT_S) -> int:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self._abort_for_stacks()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(AFTER_SIGNAL_S)
            self.kill()
            stacks = "\n".join(self.stderr_lines[-60:])
            pytest.fail(f"{self.argv} did not exit within {timeout} s; its last output:\n{stacks}")
        self._finish()
        return code

    def _abort_for_stacks(self) -> None:
        """SIGABRT to the program under test: its faulthandler prints the stacks of the
        hang. Behind ``unshare --fork`` that is unshare's child (SIGABRT to unshare would
        kill it without a word)."""
        target = self.popen.pid
        if os.path.basename(str(self.argv[0])) == "unshare":
            target = first_child(target) or target
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGABRT)

    def _finish(self) -> None:
        for reader in self._readers:
            reader.join(AFTER_SIGNAL_S)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(AFTER_SIGNAL_S)
        self._finish()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(AFTER_SIGNAL_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(AFTER_SIGNAL_S)
        self._finish()


# The fixtures' types: `spawn(argv, env=None, **popen)`, `gate(*args, env=None, netns=None,
# **popen)`, `sim(*args, env=None, wait_listening=True, bind="127.0.0.1", netns=None)` (the
# process and its REP port), `standin(module, *args)`.
Spawn = Callable[..., Proc]
StartGate = Callable[..., Proc]
StartSim = Callable[..., tuple[Proc, int]]
StartStandIn = Callable[..., StandIn]


def _end(proc: Proc, own_group: bool) -> None:
    if own_group and proc.popen.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # its children too, not only the leader
    proc.kill()


class Processes:
    """Every process started through it, ended when it closes (see the module's doc)."""

    def __init__(self) -> None:
        self._ends = contextlib.ExitStack()

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._ends.close()

    def spawn(self, argv: Sequence[str], env: dict[str, str] | None = None, **popen: Any) -> Proc:
        """Any program (a ``Proc``), killed at the end; with ``start_new_session=True`` its
        whole process group is."""
        proc = Proc(argv, env=env, **popen)
        self._ends.callback(_end, proc, bool(popen.get("start_new_session")))
        return proc

    def gate(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        netns: NetnsPair | None = None,
        **popen: Any,
    ) -> Proc:
        """``mt5-gate ARGS`` (``gate("wait", "--port", ...)``), killed at the end; with
        ``netns``, in the client namespace."""
        argv = [*GATE, *args]
        return self.spawn(netns.in_client(*argv) if netns else argv, env=env, **popen)

    def sim(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        wait_listening: bool = True,
        bind: str | None = "127.0.0.1",
        netns: NetnsPair | None = None,
    ) -> tuple[Proc, int]:
        """``mt5-gate sim --bind BIND ARGS`` (ports 0 unless ARGS name them; ``bind=None``:
        the simulator's own default address; with ``netns``, in the gateway namespace):
        the process and its REP port once it listens (0 with ``wait_listening=False``).
        Stopped at the end, also one that never listened."""
        argv = [*GATE, "sim", *(["--bind", bind] if bind is not None else []), *args]
        if "--port" not in args:
            argv += ["--port", "0"]
        if "--pub-port" not in args:
            argv += ["--pub-port", "0"]
        proc = Proc(netns.in_gateway(*argv) if netns else argv, env=env or base_env())
        self._ends.callback(proc.stop)
        if not wait_listening:
            return proc, 0
        event = proc.wait_for_event("sim.listening", timeout=EVENT_S)
        return proc, int(event["port"])

    def standin(self, module: str, *args: str) -> StandIn:
        """A stand-in bridge, ``standin("dwx_ea", "--pull-port", "0", ...)`` (see
        tests/standins/), once it listens; stopped at the end."""
        started = start_standin(module, *args, timeout=EVENT_S)
        self._ends.callback(started.stop)
        return started
