from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import structlog

from tests.standins.client import StandIn
from tests.standins.client import start as start_standin
from tests.support.bounds import EVENT_S
from tests.support.helpers import GATE, Proc, Spawn, StartGate, StartGateway, StartSim, start_sim


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without GATE_*/GATEWAY_* variables, with default logging and with
    pytest's own SIGINT/SIGTERM handling (``main()`` in-process installs the gate's)."""
    for key in list(os.environ):
        if key.startswith(("GATE_", "GATEWAY_")) or key == "NO_COLOR":
            monkeypatch.delenv(key)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    structlog.reset_defaults()


@pytest.fixture
def _started() -> Iterator[contextlib.ExitStack]:
    """The processes the `sim`, `gate` and `spawn` fixtures started, ended after the test in
    the reverse order of their start (a gate before the simulator it waits for), every one
    even if ending another fails; ending one that already exited is a no-op."""
    with contextlib.ExitStack() as stack:
        yield stack


def _end(proc: Proc, own_group: bool) -> None:
    if own_group and proc.popen.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # its children too, not only the leader
    proc.kill()


@pytest.fixture
def spawn(_started: contextlib.ExitStack) -> Spawn:
    """Start any process, ``spawn(argv, env=None, **popen)`` (a ``Proc``); every one is
    killed after the test, with its process group if it has its own session."""
    def start(argv: Sequence[str], env: dict[str, str] | None = None, **popen: Any) -> Proc:
        proc = Proc(argv, env=env, **popen)
        _started.callback(_end, proc, bool(popen.get("start_new_session")))
        return proc

    return start


@pytest.fixture
def gate(spawn: Spawn) -> StartGate:
    """Start ``mt5-gate ARGS`` (``gate("wait", "--port", ...)``, a ``Proc``); every one is
    killed after the test, whatever the test did."""
    def start(*args: str, env: dict[str, str] | None = None, **popen: Any) -> Proc:
        return spawn([*GATE, *args], env=env, **popen)

    return start


@pytest.fixture
def sim(_started: contextlib.ExitStack) -> StartSim:
    """Start simulated gateways, ``sim("--bad-status", env=None, wait_listening=True)``:
    (the process, its REP port) as ``start_sim`` returns them; every one is stopped after
    the test, also one that never listened, and one the test stopped itself is left as is."""
    def start(*args: str, env: dict[str, str] | None = None,
              wait_listening: bool = True) -> tuple[Proc, int]:
        return start_sim(*args, env=env, wait_listening=wait_listening,
                         on_start=lambda proc: _started.callback(proc.stop))

    return start


@pytest.fixture
def gateway(sim: StartSim) -> StartGateway:
    """Start simulated gateways (``gateway("--bad-status")``); all are stopped afterwards,
    whatever the test did. The same fixture as `sim`."""
    return sim


@pytest.fixture
def standin(_started: contextlib.ExitStack) -> Callable[..., StandIn]:
    """Start a stand-in bridge, ``standin("dwx_ea", "--pull-port", "0", ...)`` (see
    tests/standins/): returns once it listens; every one is stopped after the test."""
    def start(module: str, *args: str) -> StandIn:
        started = start_standin(module, *args, timeout=EVENT_S)
        _started.callback(started.stop)
        return started

    return start
