"""The fixtures every test module may use. Each one that starts something ends it after the
test, whatever the test did: the processes through one ``Processes`` (tests/support/
processes.py), the client sockets through one ``ZmqSockets`` (tests/support/sockets.py)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
import structlog

from tests.support.processes import Processes, Spawn, StartGate, StartSim, StartStandIn
from tests.support.sockets import ZmqSockets, release_closed_ports


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without GATE_*/GATEWAY_* variables, with default logging and with
    pytest's own SIGINT/SIGTERM handling (``run_gate(..., in_process=True)`` installs the
    gate's); the closed ports it held (``held_closed_port``) are released after it."""
    for key in list(os.environ):
        if key.startswith(("GATE_", "GATEWAY_")) or key == "NO_COLOR":
            monkeypatch.delenv(key)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    structlog.reset_defaults()
    release_closed_ports()


@pytest.fixture
def processes() -> Iterator[Processes]:
    """The processes the `spawn`, `gate`, `sim` and `standin` fixtures start, ended after
    the test in the reverse order of their start (a gate before the simulator it waits
    for), every one even if ending another fails."""
    with Processes() as started:
        yield started


@pytest.fixture
def spawn(processes: Processes) -> Spawn:
    """Start any process, ``spawn(argv, env=None, **popen)`` (a ``Proc``); every one is
    killed after the test, with its process group if it has its own session."""
    return processes.spawn


@pytest.fixture
def gate(processes: Processes) -> StartGate:
    """Start ``mt5-gate ARGS`` (``gate("wait", "--port", ..., env=None, netns=None)``, a
    ``Proc``); every one is killed after the test."""
    return processes.gate


@pytest.fixture
def sim(processes: Processes) -> StartSim:
    """Start simulated gateways, ``sim("--bad-status", env=None, wait_listening=True,
    bind="127.0.0.1", netns=None)``: (the process, its REP port); every one is stopped after
    the test, also one that never listened, and one the test stopped itself is left as is."""
    return processes.sim


@pytest.fixture
def standin(processes: Processes) -> StartStandIn:
    """Start a stand-in bridge, ``standin("dwx_ea", "--pull-port", "0", ...)`` (see
    tests/standins/): returns once it listens; every one is stopped after the test."""
    return processes.standin


@pytest.fixture
def zmq_sockets() -> Iterator[ZmqSockets]:
    """ZeroMQ client sockets, ``zmq_sockets(zmq.REQ, curve=None)``; all closed after the
    test, then their context."""
    sockets = ZmqSockets()
    yield sockets
    sockets.close()
