"""End to end in real containers: the image built from the Dockerfile, run by podman and by
Compose v2 against podman's API (marker `container`; see shared/CONTAINERS.md)."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.containers import (
    HARDENED,
    Compose,
    build_image,
    compose_project,
    container_logs,
    elapsed,
    healthcheck_driver,
    json_events,
    kube_played,
    pod,
    podman,
    podman_api,
    require_podman,
    wait_for_line,
)
from tests.support.helpers import REPO

pytestmark = [pytest.mark.container, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def image() -> str:
    require_podman()
    return build_image()


@pytest.fixture(scope="module")
def docker_host(image: str) -> Iterator[str]:
    with podman_api() as host:
        yield host


# `compose(project, env)`: a Compose project on podman's API, brought down after the test.
StartCompose = Callable[[str, dict[str, str]], Compose]


@pytest.fixture
def compose(docker_host: str) -> Iterator[StartCompose]:
    with contextlib.ExitStack() as projects:

        def start(project: str, env: dict[str, str]) -> Compose:
            return projects.enter_context(compose_project(docker_host, project, env))

        yield start


@pytest.fixture
def kube_play() -> Iterator[Callable[[Path], None]]:
    """``kube_play(manifest)``: `podman kube play`, and `kube down` after the test."""
    with contextlib.ExitStack() as played:
        yield lambda manifest: played.enter_context(kube_played(manifest))


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
    done = podman(
        "run",
        "--rm",
        "-e",
        "GATEWAY_HOST=127.0.0.1",
        "-e",
        "GATE_TIMEOUT=3",
        image,
        check=False,
        timeout=60,
    )
    assert done.returncode == 69
    events = json_events(done.stderr.splitlines())
    assert events[0]["event"] == "gate.start"
    assert events[0]["pid"] == 1
    assert events[-1]["event"] == "gate.timeout"
    assert events[-1]["last_reason"] == "refused"
    assert "`mt5-gate explain --reason refused`" in events[-1]["hint"]
    # The command the hint names works in the image: the section is in the package.
    section = podman(
        "run", "--rm", "--entrypoint", "mt5-gate", image, "explain", "--reason", "refused"
    ).stdout
    assert section.startswith("## refused\n"), section


def test_sim_stack_waits_then_execs_and_gates_the_downstream_service(compose: StartCompose) -> None:
    """Compose with the sim profile, the simulator 8 s late: the strategy logs start,
    attempt_failed, ready, exec in order, then ticks; the downstream service started only
    after the gateway answered (depends_on: service_healthy)."""
    project = f"mt5e2e{os.getpid()}"
    stack = compose(project, {"MT5_IMAGE": "localhost/mt5-strategy:test", "SIM_START_DELAY": "8"})
    with healthcheck_driver(project):
        stack.run("up", "-d", "--no-build", timeout=240)
        lines = wait_for_line(lambda: stack.logs("strategy_runner"), "tick 3:", 90)
    events = json_events(lines)
    order = [e["event"] for e in events]
    assert order[0] == "gate.start"
    assert "gate.attempt_failed" in order
    assert order.index("gate.attempt_failed") < order.index("gate.ready") < order.index("gate.exec")
    assert any(line.startswith("ready pid=") for line in lines)
    ready_at = datetime.datetime.fromisoformat(
        next(e for e in events if e["event"] == "gate.ready")["timestamp"].replace("Z", "+00:00")
    )
    exec_at = datetime.datetime.fromisoformat(
        next(e for e in events if e["event"] == "gate.exec")["timestamp"].replace("Z", "+00:00")
    )
    downstream_started = _stamp(stack.inspect("tick_monitor")["State"]["StartedAt"])
    # Not before the strategy runs: while the gate waits, its state file keeps health at 1.
    assert downstream_started > exec_at > ready_at
    monitor_lines = wait_for_line(lambda: stack.logs("tick_monitor"), "tick 1:", 60)
    assert any(line.startswith("ready pid=") for line in monitor_lines)


def test_stop_while_waiting_ends_in_under_2s_with_143(compose: StartCompose) -> None:
    """`docker compose stop` while the gate waits: exit 143 well inside the 10 s grace."""
    project = f"mt5stop{os.getpid()}"
    stack = compose(
        project, {"MT5_IMAGE": "localhost/mt5-strategy:test", "GATEWAY_HOST": "no-gateway-here"}
    )
    stack.run("up", "-d", "--no-build", "strategy_runner", timeout=120)
    wait_for_line(lambda: stack.logs("strategy_runner"), "gate.attempt_failed", 60)
    started = time.monotonic()
    stack.run("stop", "--timeout", "10", "strategy_runner", timeout=60)
    took = elapsed(started)
    state = stack.inspect("strategy_runner")["State"]
    events = json_events(stack.logs("strategy_runner"))
    assert state["ExitCode"] == 143
    assert took < 2.0
    assert events[-1]["event"] == "gate.signal"
    assert events[-1]["signal"] == "SIGTERM"
    print(f"stop while waiting: {took:.2f} s, exit {state['ExitCode']}")


def test_hardened_run_waits_logs_and_execs_the_runner_as_pid_1(image: str) -> None:
    """Read-only root, no capabilities, no-new-privileges, an OpenShift-style arbitrary UID
    with group 0, 64 MiB and 32 PIDs: the gate waits for a late gateway, logs JSON, answers
    a healthcheck, and execs the runner as PID 1 with that UID."""
    # The runner's line must not appear verbatim in its own command (logged by gate.start).
    runner = (
        "import os; print('runner', f'pid={os.getpid()} uid={os.getuid()} "
        "gid={os.getgid()}', flush=True); import time; time.sleep(120)"
    )
    with pod(f"mt5hard{os.getpid()}") as name:
        gate = f"{name}-gate"
        podman(
            "run",
            "--detach",
            "--name",
            gate,
            "--pod",
            name,
            *HARDENED,
            "-e",
            "GATEWAY_HOST=127.0.0.1",
            "-e",
            "GATE_TIMEOUT=120",
            image,
            "python",
            "-c",
            runner,
            timeout=120,
        )
        # 60 s: podman start-up of a cold container on a loaded 2-core machine, not the gate
        wait_for_line(lambda: container_logs(gate), "gate.attempt_failed", 60)
        waiting_health = podman("exec", gate, "mt5-gate", "health", check=False, timeout=60)
        podman(
            "run",
            "--detach",
            "--name",
            f"{name}-sim",
            "--pod",
            name,
            "--entrypoint",
            "mt5-gate",
            image,
            "sim",
            "--bind",
            "127.0.0.1",
            timeout=120,
        )
        # 60 s: the gate's backoff is at most 5 s by then; the rest is podman on a busy host
        lines = wait_for_line(lambda: container_logs(gate), "runner pid=1 uid=", 60)
        ready_health = podman("exec", gate, "mt5-gate", "health", check=False, timeout=60)
        state = podman(
            "inspect",
            gate,
            "--format",
            "{{.State.Running}} {{.State.OOMKilled}} {{.HostConfig.ReadonlyRootfs}}",
            timeout=60,
        ).stdout.split()
    events = json_events(lines)
    order = [e["event"] for e in events]
    assert order[0] == "gate.start", lines
    assert events[0]["pid"] == 1
    assert order.index("gate.attempt_failed") < order.index("gate.ready") < order.index("gate.exec")
    assert "runner pid=1 uid=1000650000 gid=0" in lines
    assert waiting_health.returncode == 1, waiting_health.stdout + waiting_health.stderr
    assert ready_health.returncode == 0, ready_health.stdout + ready_health.stderr
    assert state == ["true", "false", "true"]


def test_healthcheck_is_unhealthy_while_the_gate_waits_then_healthy_after_the_exec(
    image: str,
) -> None:
    """The image's HEALTHCHECK while the gate waits for a gateway that answers "not ready"
    (MAINTENANCE): `podman healthcheck run` exits 1 and health says the gate is still
    waiting (status `starting`, inside the start period); once a good gateway answers and
    the runner is exec'd, the same healthcheck exits 0 (`healthy`)."""
    with pod(f"mt5hc{os.getpid()}") as name:
        gate, refusing = f"{name}-gate", f"{name}-refusing"
        podman(
            "run",
            "--detach",
            "--name",
            refusing,
            "--pod",
            name,
            "--entrypoint",
            "mt5-gate",
            image,
            "sim",
            "--bind",
            "127.0.0.1",
            "--bad-status",
            timeout=120,
        )
        podman(
            "run",
            "--detach",
            "--name",
            gate,
            "--pod",
            name,
            "-e",
            "GATEWAY_HOST=127.0.0.1",
            "-e",
            "GATE_TIMEOUT=120",
            image,
            timeout=120,
        )
        # 60 s: podman start-up of a cold container on a loaded 2-core machine, not the gate
        wait_for_line(lambda: container_logs(gate), "gate.attempt_failed", 60)
        waiting = podman("healthcheck", "run", gate, check=False, timeout=60)
        waiting_status = podman(
            "inspect", gate, "--format", "{{.State.Health.Status}}", timeout=60
        ).stdout.strip()
        said = podman("exec", gate, "mt5-gate", "health", check=False, timeout=60)
        podman("rm", "--force", "--time", "2", refusing, timeout=60)
        podman(
            "run",
            "--detach",
            "--name",
            f"{name}-sim",
            "--pod",
            name,
            "--entrypoint",
            "mt5-gate",
            image,
            "sim",
            "--bind",
            "127.0.0.1",
            timeout=120,
        )
        wait_for_line(lambda: container_logs(gate), "gate.exec", 60)
        ready = podman("healthcheck", "run", gate, check=False, timeout=60)
        ready_status = podman(
            "inspect", gate, "--format", "{{.State.Health.Status}}", timeout=60
        ).stdout.strip()
    assert waiting.returncode == 1, waiting.stdout + waiting.stderr
    assert waiting_status in ("starting", "unhealthy"), waiting_status
    assert said.returncode == 1, said.stdout
    assert "the gate is still waiting" in said.stdout, said.stdout
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert ready_status == "healthy", ready_status


def test_kube_play_deployment_waits_for_a_late_gateway_and_its_liveness_probe_passes(
    image: str, tmp_path: Path, kube_play: Callable[[Path], None]
) -> None:
    """deploy/k8s as shipped (ConfigMap + Deployment), run by `podman kube play` with a
    pod-local simulated gateway 6 s late: the gate waits, execs the runner as PID 1 under the
    manifest's security context, and the probe podman honours (livenessProbe, turned into a
    container healthcheck) passes. startupProbe and readinessProbe are not honoured by podman
    4.3: only a real cluster runs them (README)."""
    documents = [
        yaml.safe_load((REPO / "deploy" / "k8s" / f).read_text())
        for f in ("configmap.yaml", "deployment.yaml")
    ]
    configmap, deployment = documents
    configmap["data"]["GATEWAY_HOST"] = "127.0.0.1"  # the pod-local simulator
    spec = deployment["spec"]["template"]["spec"]
    strategy = spec["containers"][0]
    strategy["image"] = image
    spec["containers"].append(
        {
            "name": "gateway-sim",
            "image": image,
            "command": [
                "mt5-gate",
                "sim",
                "--bind",
                "127.0.0.1",
                "--start-delay",
                "6",
                "--log-format",
                "json",
            ],
        }
    )
    manifest = tmp_path / "play.yaml"
    manifest.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    container = f"{deployment['metadata']['name']}-pod-0-{strategy['name']}"
    kube_play(manifest)
    # 90 s: the simulator's 6 s delay plus podman start-up on a busy host
    lines = wait_for_line(lambda: container_logs(container), "gate.exec", 90)
    healthcheck = json.loads(
        podman(
            "inspect", container, "--format", "{{json .Config.Healthcheck.Test}}", timeout=60
        ).stdout
    )
    probe = podman("healthcheck", "run", container, check=False, timeout=60)
    inspected = podman(
        "inspect",
        container,
        "--format",
        "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.State.Health.Status}}",
        timeout=60,
    ).stdout.split()
    top = podman("top", container, "pid", "args", timeout=60).stdout.splitlines()
    order = [e["event"] for e in json_events(lines)]
    assert order[0] == "gate.start"
    assert order.index("gate.attempt_failed") < order.index("gate.ready") < order.index("gate.exec")
    assert healthcheck[1:3] == ["mt5-gate", "health"]  # the livenessProbe's command
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert inspected == ["10001:10001", "true", "healthy"]
    assert top[1].split() == ["1", "python", "-m", "entrypoint.sim.demo_runner"]
