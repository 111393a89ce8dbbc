"""End to end in real containers: the image built from the Dockerfile, run by podman and by
Compose v2 against podman's API (marker `container`; see shared/CONTAINERS.md)."""

from __future__ import annotations

import datetime
import os
import re
import time
from collections.abc import Iterator

import pytest

from tests.containers import (
    Compose,
    build_image,
    elapsed,
    healthcheck_driver,
    json_events,
    podman,
    podman_api,
    require_podman,
    wait_for_line,
)

pytestmark = [pytest.mark.container, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def image() -> str:
    require_podman()
    return build_image()


@pytest.fixture(scope="module")
def docker_host(image: str) -> Iterator[str]:
    with podman_api() as host:
        yield host


def _stamp(text: str) -> datetime.datetime:
    """An RFC 3339 time as podman writes it (nanoseconds, Z or an offset), as aware UTC."""
    match = re.fullmatch(r"(\S{19})(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text.strip())
    assert match is not None, text
    fraction = (match.group(2) or "0")[:6].ljust(6, "0")
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.datetime.fromisoformat(f"{match.group(1)}.{fraction}{zone}")


def test_image_runs_as_non_root_with_the_gate_as_entrypoint(image: str) -> None:
    """The image's user is numeric and not root; the entrypoint is the gate."""
    fields = "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Healthcheck.Test}}"
    inspected = podman("image", "inspect", "--format", fields, image).stdout.strip()
    user, entrypoint, healthcheck = inspected.split("|")
    assert user == "10001:10001"
    assert entrypoint == '["mt5-gate","wait","--"]'
    assert healthcheck == '["CMD","mt5-gate","health"]'
    uid = podman("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip()
    assert uid == "10001"


def test_gateway_that_never_comes_exits_69_explaining_why(image: str) -> None:
    """GATE_TIMEOUT=3 and nothing listening: exit 69, the last event says why."""
    done = podman("run", "--rm", "-e", "GATEWAY_HOST=127.0.0.1", "-e", "GATE_TIMEOUT=3", image,
                  check=False, timeout=60)
    assert done.returncode == 69
    events = json_events(done.stderr.splitlines())
    assert events[0]["event"] == "gate.start"
    assert events[0]["pid"] == 1
    assert events[-1]["event"] == "gate.timeout"
    assert events[-1]["last_reason"] == "refused"
    assert "TROUBLESHOOTING.md#refused" in events[-1]["hint"]


def test_sim_stack_waits_then_execs_and_gates_the_downstream_service(docker_host: str) -> None:
    """Compose with the sim profile, the simulator 8 s late: the strategy logs start,
    attempt_failed, ready, exec in order, then ticks; the downstream service started only
    after the gateway answered (depends_on: service_healthy)."""
    project = f"mt5e2e{os.getpid()}"
    stack = Compose(docker_host, project, {"MT5_IMAGE": "localhost/mt5-strategy:test",
                                           "SIM_START_DELAY": "8"})
    try:
        with healthcheck_driver(project):
            stack.run("up", "-d", "--no-build", timeout=240)
            lines = wait_for_line(lambda: stack.logs("strategy_runner"), "tick 3:", 90)
        events = json_events(lines)
        order = [e["event"] for e in events]
        assert order[0] == "gate.start"
        assert "gate.attempt_failed" in order
        assert order.index("gate.attempt_failed") < order.index("gate.ready") < \
            order.index("gate.exec")
        assert any(line.startswith("ready pid=") for line in lines)
        ready_at = datetime.datetime.fromisoformat(
            next(e for e in events if e["event"] == "gate.ready")["timestamp"]
            .replace("Z", "+00:00"))
        downstream_started = _stamp(stack.inspect("tick_monitor")["State"]["StartedAt"])
        assert downstream_started > ready_at
        monitor_lines = wait_for_line(lambda: stack.logs("tick_monitor"), "tick 1:", 60)
        assert any(line.startswith("ready pid=") for line in monitor_lines)
    finally:
        stack.down()


def test_stop_while_waiting_ends_in_under_2s_with_143(docker_host: str) -> None:
    """`docker compose stop` while the gate waits: exit 143 well inside the 10 s grace."""
    project = f"mt5stop{os.getpid()}"
    stack = Compose(docker_host, project, {"MT5_IMAGE": "localhost/mt5-strategy:test",
                                           "GATEWAY_HOST": "no-gateway-here"})
    try:
        stack.run("up", "-d", "--no-build", "strategy_runner", timeout=120)
        wait_for_line(lambda: stack.logs("strategy_runner"), "gate.attempt_failed", 60)
        started = time.monotonic()
        stack.run("stop", "--timeout", "10", "strategy_runner", timeout=60)
        took = elapsed(started)
        state = stack.inspect("strategy_runner")["State"]
        events = json_events(stack.logs("strategy_runner"))
    finally:
        stack.down()
    assert state["ExitCode"] == 143
    assert took < 2.0
    assert events[-1]["event"] == "gate.signal"
    assert events[-1]["signal"] == "SIGTERM"
    print(f"stop while waiting: {took:.2f} s, exit {state['ExitCode']}")
