"""CURVE authentication end to end: `mt5-gate sim` with CURVE against the gate, probe and
health; wrong keys are `auth` configuration errors; secrets never leak."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import zmq
import zmq.auth

from entrypoint.cli import main
from tests.support.bounds import EXIT_S
from tests.support.helpers import (
    GATE,
    REPO,
    Proc,
    StartSim,
    base_env,
    free_port,
    main_in_process,
    run_gate,
)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Keypairs for the gateway, an allowed client and a stranger, as Docker-secret files."""
    files = {}
    for name in ("server", "client", "stranger"):
        public, secret = zmq.curve_keypair()
        (tmp_path / f"{name}.pub").write_bytes(public + b"\n")
        (tmp_path / f"{name}.secret").write_bytes(secret + b"\n")
        files[f"{name}_pub"] = tmp_path / f"{name}.pub"
        files[f"{name}_secret"] = tmp_path / f"{name}.secret"
    allow = tmp_path / "allowed_clients"
    allow.write_bytes(files["client_pub"].read_bytes())
    files["allow"] = allow
    return files


def curve_sim(sim: StartSim, keys: dict[str, Path], allow: bool = True) -> tuple[Proc, int]:
    args = ["--curve-secret-key-file", str(keys["server_secret"])]
    if allow:
        args += ["--curve-allow", str(keys["allow"])]
    return sim(*args)


def wait_args(port: int, *extra: str) -> list[str]:
    return ["wait", "--host", "127.0.0.1", "--port", str(port), "--backoff-initial", "0.05",
            "--backoff-max", "0.2", "--timeout", "20", *extra]


def secret_texts(keys: dict[str, Path]) -> list[str]:
    return [keys[k].read_text().strip() for k in ("server_secret", "client_secret",
                                                  "stranger_secret")]


def test_right_keys_are_ready_and_the_secret_stays_out_of_logs_and_runner_env(
        keys: dict[str, Path], sim: StartSim) -> None:
    """Server key file + client secret file: ready; no secret in logs or the runner's env."""
    _simulator, port = curve_sim(sim, keys)
    env = base_env(GATEWAY_CURVE_SERVER_KEY_FILE=str(keys["server_pub"]),
                   GATE_CURVE_SECRET_KEY_FILE=str(keys["client_secret"]))
    code, events, stdout, _ = run_gate([*wait_args(port), "--", "env"], env=env)
    assert code == 0
    start = events[0]
    assert start["curve"]["client_key"].endswith("...")
    for secret in secret_texts(keys):
        assert secret not in repr(events)
        assert secret not in stdout


def test_ephemeral_client_key_when_none_is_given(keys: dict[str, Path], sim: StartSim) -> None:
    """Only the server's key (inline): a fresh keypair is made; a gateway accepting any
    client answers."""
    _simulator, port = curve_sim(sim, keys, allow=False)
    code, events, _, _ = run_gate(wait_args(
        port, "--curve-server-key", keys["server_pub"].read_text().strip()))
    assert code == 0
    assert events[0]["curve"]["client_key"] == "ephemeral"


@pytest.mark.parametrize(("server_key", "client_secret", "error"), [
    ("stranger_pub", "client_secret", "server key is probably wrong"),
    ("server_pub", "stranger_secret", "rejected this client's CURVE key"),
    (None, None, "the gateway requires CURVE"),
])
def test_wrong_keys_are_auth_and_exit_78_within_a_few_attempts(
        keys: dict[str, Path], server_key: str | None, client_secret: str | None,
        error: str, sim: StartSim) -> None:
    """A wrong server key, a client not on the allow-list, or no CURVE at all: `auth`,
    exit 78 after three attempts (not after the 20 s deadline), with a hint."""
    _simulator, port = curve_sim(sim, keys)
    extra = []
    if server_key:
        extra += ["--curve-server-key-file", str(keys[server_key])]
    if client_secret:
        extra += ["--curve-secret-key-file", str(keys[client_secret])]
    code, events, _, took = run_gate(wait_args(port, *extra))
    assert code == 78
    failed = [e for e in events if e["event"] == "gate.attempt_failed"]
    assert [e["reason"] for e in failed] == ["auth"] * 3
    assert error in failed[0]["error"]
    assert events[-1]["reason"] == "auth"
    assert "TROUBLESHOOTING.md#auth" in events[-1]["hint"]
    # Three attempts (0.05-0.2 s pauses: ~0.5 s, plus start-up: ~1.5 s loaded), not the
    # 20 s deadline: 10 s is halfway, 8 s of room for a loaded CPU.
    assert took < 10
    for secret in secret_texts(keys):
        assert secret not in repr(events)


def test_curve_on_the_gate_only_says_so_not_a_wrong_key(keys: dict[str, Path],
                                                        sim: StartSim) -> None:
    """A gateway without CURVE, a gate with it: auth, and the message names the mismatch
    (whichever side noticed first), never "the server key is probably wrong"."""
    _simulator, port = sim()  # no CURVE
    code, events, _, _ = run_gate(wait_args(
        port, "--curve-server-key-file", str(keys["server_pub"])))
    failed = [e for e in events if e["event"] == "gate.attempt_failed"]
    assert code == 78
    assert [e["reason"] for e in failed] == ["auth"] * 3
    for event in failed:
        assert "the gateway does not use CURVE" in event["error"] or \
            "the gateway offers NULL" in event["error"], event["error"]
        assert "probably wrong" not in event["error"]


def test_key_and_key_file_together_is_a_usage_error(
        keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """GATEWAY_CURVE_SERVER_KEY and GATEWAY_CURVE_SERVER_KEY_FILE both set: 64."""
    env = {"GATEWAY_CURVE_SERVER_KEY": keys["server_pub"].read_text().strip(),
           "GATEWAY_CURVE_SERVER_KEY_FILE": str(keys["server_pub"])}
    code, events, _ = main_in_process(["wait", "--host", "127.0.0.1"], env, capsys)
    assert code == 64
    assert "GATEWAY_CURVE_SERVER_KEY_FILE" in events[0]["error"]


def test_malformed_secret_key_is_a_usage_error_that_does_not_echo_it(
        tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A secret key file with the wrong content: 64, and the content is not printed."""
    bad = tmp_path / "bad.secret"
    bad.write_text("this-is-not-a-key-but-looks-secret-1234567890")
    code, events, _ = main_in_process(
        ["wait", "--host", "127.0.0.1", "--curve-server-key-file", str(keys["server_pub"]),
         "--curve-secret-key-file", str(bad)], {}, capsys)
    assert code == 64
    assert "not a 40-character Z85 CURVE key" in events[0]["error"]
    assert "looks-secret" not in repr(events)


def test_zmq_certificate_files_are_accepted(tmp_path: Path, keys: dict[str, Path],
                                            sim: StartSim) -> None:
    """Files made by zmq.auth.create_certificates work as key files too."""
    public_file, secret_file = zmq.auth.create_certificates(str(tmp_path), "gate")
    _simulator, port = sim("--curve-secret-key-file", str(keys["server_secret"]))
    code, _, _, _ = run_gate(wait_args(port, "--curve-server-key-file",
                                       str(keys["server_pub"]), "--curve-secret-key-file",
                                       secret_file, "--curve-public-key-file", public_file))
    assert code == 0


def test_probe_and_health_speak_curve(keys: dict[str, Path], sim: StartSim) -> None:
    """probe and health take the same CURVE options and variables."""
    simulator, port = curve_sim(sim, keys)
    pub_port = int(simulator.wait_for_event("sim.listening")["pub_port"])
    env = base_env(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(port),
                   GATEWAY_PUB_PORT=str(pub_port),
                   GATEWAY_CURVE_SERVER_KEY_FILE=str(keys["server_pub"]),
                   GATE_CURVE_SECRET_KEY_FILE=str(keys["client_secret"]))
    probe = subprocess.run([*GATE, "probe"], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=EXIT_S, check=False)
    health = subprocess.run([*GATE, "health"], env=env, cwd=REPO, capture_output=True,
                            text=True, timeout=EXIT_S, check=False)
    env["GATE_CURVE_SECRET_KEY_FILE"] = str(keys["stranger_secret"])
    rejected = subprocess.run([*GATE, "health"], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=EXIT_S, check=False)
    assert probe.returncode == 0
    assert "Results: 6/6 checks passed" in probe.stdout
    assert health.returncode == 0
    assert rejected.returncode == 1
    assert "auth" in rejected.stdout


def test_help_shows_no_secret_defaults(keys: dict[str, Path]) -> None:
    """--help with CURVE variables set prints no key material."""
    env = base_env(GATE_CURVE_SECRET_KEY_FILE=str(keys["client_secret"]))
    done = subprocess.run([*GATE, "wait", "--help"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=EXIT_S, check=True)
    assert "--curve-secret-key-file" in done.stdout
    for secret in secret_texts(keys):
        assert secret not in done.stdout


def test_a_server_key_that_begins_with_a_dash_is_taken_as_the_value(
        capsys: pytest.CaptureFixture[str]) -> None:
    """"-" is in Z85's alphabet: one key in 85 begins with it, and argparse took such a value
    for an option ("expected one argument", exit 64). Found by a flaky run of the test
    above; now the word after --curve-server-key is always its value."""
    public = next(key for key in iter(lambda: zmq.curve_keypair()[0], b"")
                  if key.startswith(b"-")).decode()
    code = main(["health", "--host", "127.0.0.1", "--port", str(free_port()), "--timeout",
                 "1", "--curve-server-key", public], {})
    out = capsys.readouterr().out
    assert code == 1
    assert "ECONNREFUSED" in out, out  # it got as far as connecting: the key was read
