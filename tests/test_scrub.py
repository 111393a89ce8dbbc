"""No piece of a secret of 8 bytes or more is ever shown, and URLs hide their credentials.

Secrets: a bridge that echoes the `$file:` token (whole, 16 bytes of it, inside a reply
that is not UTF-8, as UTF-16) is a real loopback ZeroMQ peer; the gate's log (wait) and
report (probe) must hold no 8-byte piece of the token in any rendering. URLs: a query key
that names a credential shows `***` wherever a URL is shown (gate.start, every
gate.attempt_failed, gate.timeout, mesh, explain), and a usage error names the keys only.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq

from entrypoint.addresses import redact_url, url_error, url_keys_only
from entrypoint.log import logs
from tests.support.bounds import FAST_ATTEMPT, FAST_BACKOFF, after_deadline
from tests.support.cli import run_gate
from tests.support.helpers import base_env
from tests.support.servers import zmq_server

SECRET = "S3cr3t-Tok-9f8e7d6c5b4a3"  # 24 bytes


def shown_pieces(text: str, secret: str = SECRET) -> list[str]:
    """Every 8-byte piece of ``secret`` that ``text`` shows, in the renderings a log uses
    (as is, hex, UTF-16 as JSON escapes)."""
    found = []
    for start in range(len(secret) - 7):
        piece = secret[start : start + 8]
        wide = json.dumps(piece.encode("utf-16-le").decode("latin-1"))[1:-1]
        if any(form in text for form in (piece, piece.encode().hex(), wide)):
            found.append(piece)
    return found


@pytest.fixture
def secret_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_SECRETS", [])
    logs.register_secret(SECRET)


@pytest.mark.parametrize(
    "text",
    [
        SECRET,
        f"echo {SECRET[4:20]} back",  # 16 bytes of it
        f"x{SECRET[:8]}y{SECRET[-8:]}z",  # two 8-byte pieces
        json.dumps(SECRET),
        json.dumps(json.dumps({"token": SECRET})),  # escaped twice
        SECRET.encode().hex(),
        json.dumps(SECRET.encode("utf-16-le").decode("latin-1")),
        (b"\xff" + SECRET.encode()).decode("utf-8", "backslashreplace"),
    ],
)
@pytest.mark.usefixtures("secret_registered")
def test_scrub_hides_every_piece_of_8_bytes_in_every_rendering(text: str) -> None:
    scrubbed = logs.scrub(text)
    assert shown_pieces(scrubbed) == [], scrubbed
    assert "***" in scrubbed, scrubbed


@pytest.mark.usefixtures("secret_registered")
def test_scrub_keeps_pieces_shorter_than_8_bytes_and_ordinary_text() -> None:
    text = f"status {SECRET[:7]} ok"
    assert logs.scrub(text) == text


@pytest.mark.usefixtures("secret_registered")
def test_a_non_utf8_reply_is_scrubbed_before_it_is_cut() -> None:
    """The issue's case: 70 bytes, then the secret: cut at 80 bytes first, 10 of its bytes
    were shown; scrubbed first, none are."""
    from entrypoint.errors import AttemptFailed
    from entrypoint.gateway.replies import decode_reply

    with pytest.raises(AttemptFailed) as failed:
        decode_reply([b"\xff" + b"A" * 69 + SECRET.encode() + b"\xfe"])
    assert shown_pieces(str(failed.value)) == [], str(failed.value)
    assert SECRET[:4] not in str(failed.value), str(failed.value)


def _echo(shape: Callable[[bytes], bytes]) -> Callable[[list[bytes]], list[bytes]]:
    def reply(frames: list[bytes]) -> list[bytes]:
        return [shape(frames[0])]

    return reply


def _secret_of(request: bytes) -> bytes:
    return str(json.loads(request)["token"]).encode()


ECHOES: dict[str, Callable[[bytes], bytes]] = {
    "whole": lambda req: json.dumps({"status": "ERROR", "echo": req.decode()}).encode(),
    "16 bytes": lambda req: b'{"status":"ERROR","seen":"' + _secret_of(req)[4:20] + b'"}',
    "non-utf8": lambda req: b"\xff" + b"A" * 69 + _secret_of(req) + b"\xfe",
    "utf-16": lambda req: ("not json " + _secret_of(req).decode()).encode("utf-16-le"),
    "plain text": lambda req: b"unauthorized token " + _secret_of(req)[2:18],
}


@pytest.mark.parametrize("echo", sorted(ECHOES))
@pytest.mark.parametrize("command", ["wait", "probe"])
def test_a_bridge_echoing_the_secret_never_gets_a_piece_of_it_shown(
    echo: str, command: str, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(SECRET + "\n")
    with zmq_server(zmq.ROUTER, _echo(ECHOES[echo])) as port:
        env = base_env(
            GATEWAY_HOST="127.0.0.1",
            GATEWAY_PORT=str(port),
            GATE_PING_REQUEST=f'{{"action":"health","token":"$file:{token}"}}',
            GATE_LOG_LEVEL="debug",
        )
        args = [command, *FAST_ATTEMPT]
        if command == "wait":
            args += ["--timeout", "2", *FAST_BACKOFF]
        ran = run_gate(args, env, timeout=after_deadline(2))
    shown = ran.stdout + ran.stderr
    assert ran.code in (69, 1), (ran.code, shown)
    assert "***" in shown, shown  # the echo was seen, and scrubbed
    assert shown_pieces(shown) == [], shown


URL = "http://user:PW-8b1e2f3c4d@127.0.0.1:{port}/x?token=TK-5a6b7c8d9e&signature=SG-0f1e2d3c&a=b"
HIDDEN = ("PW-8b1e2f3c4d", "TK-5a6b7c8d9e", "SG-0f1e2d3c")


def test_redact_url_hides_the_password_and_credential_query_values() -> None:
    shown = redact_url("https://u:pw-secret@h:1/p?api_key=K1&Auth=A1&X-Amz-Signature=S&page=2")
    assert shown == "https://u:***@h:1/p?api_key=***&Auth=***&X-Amz-Signature=***&page=2"
    for word in ("token", "key", "secret", "password", "passwd", "sig", "signature", "auth"):
        assert redact_url(f"http://h/?{word}=v&x=1") == f"http://h/?{word}=***&x=1"


def test_a_usage_error_names_the_keys_only() -> None:
    url = "redis://user:pw-1234@h:1/0?x=qv-5678&token=tk-9012#fr-3456"
    assert url_keys_only(url) == "redis://***@h:1/0?x=***&token=***#***"
    said = url_error(url, "parser said 'qv-5678' and pw-1234 are wrong")
    for value in ("user", "pw-1234", "qv-5678", "tk-9012", "fr-3456"):
        assert value not in said, said


@pytest.fixture
def closed_port() -> Iterator[Callable[[], int]]:
    """Ports that refuse: each held bound, never listening, until the test ends (a port
    released at once could be taken by anything before the gate tries it)."""
    held: list[socket.socket] = []

    def take() -> int:
        sock = socket.socket()
        held.append(sock)
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

    yield take
    for sock in held:
        sock.close()


def test_every_line_of_a_wait_shows_the_url_without_its_credentials(
    tmp_path: Path, closed_port: Callable[[], int]
) -> None:
    """gate.start, each gate.attempt_failed and gate.timeout (with the gateway ready, it
    names the dependency); then explain, reading that log back."""
    url = URL.format(port=closed_port())
    with zmq_server(zmq.ROUTER, _echo(lambda _r: b'{"status":"OK"}')) as port:
        env = base_env(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(port))
        args = ["wait", "--timeout", "2", *FAST_ATTEMPT, *FAST_BACKOFF, "--also", url]
        ran = run_gate(args, env, timeout=after_deadline(2))
    assert ran.code == 69, ran.stderr
    named = [e for e in ran.events if "token=***" in json.dumps(e)]
    assert {"gate.start", "gate.attempt_failed", "gate.timeout"} <= {e["event"] for e in named}
    assert not [value for value in HIDDEN if value in ran.stderr], ran.stderr
    log = tmp_path / "gate.log"
    log.write_text(ran.stderr)
    explained = run_gate(["explain", str(log)], log="text")
    assert "token=***" in explained.stdout, explained.stdout
    assert not [value for value in HIDDEN if value in explained.stdout], explained.stdout


def test_mesh_shows_the_url_without_its_credentials(closed_port: Callable[[], int]) -> None:
    env = base_env(
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(closed_port()),
        GATE_MESH_HTTP=URL.format(port=closed_port()),
    )
    ran = run_gate(["mesh", "--log-format", "json"], env, log="text")
    shown = ran.stdout + ran.stderr
    assert "http://user:***@127.0.0.1" in shown, shown
    assert not [value for value in HIDDEN if value in shown], shown


@pytest.mark.parametrize(
    "url",
    [
        "zmq+req://127.0.0.1:5555?x=PW-8b1e2f3c4d",
        "http://user:PW-8b1e2f3c4d@127.0.0.1:bad/x?token=TK-5a6b7c8d9e",
        "postgresql://u:PW-8b1e2f3c4d@127.0.0.1:5432/db?sslmode=TK-5a6b7c8d9e",
        "ftp://user:PW-8b1e2f3c4d@127.0.0.1/?token=TK-5a6b7c8d9e",
    ],
)
@pytest.mark.parametrize("door", ["--also", "GATE_MESH_HTTP"])
def test_a_usage_error_never_echoes_user_information_or_query_values(url: str, door: str) -> None:
    env = {"GATEWAY_HOST": "127.0.0.1"}
    if door == "--also":
        ran = run_gate(["wait", "--also", url], env, in_process=True)
    else:
        ran = run_gate(["mesh", "--log-format", "json"], {**env, door: url}, in_process=True)
    shown = ran.stdout + ran.stderr
    assert ran.code == 64, shown
    assert len(ran.stderr.strip().splitlines()) == 1, shown
    assert not [value for value in ("user", *HIDDEN) if value in shown], shown
