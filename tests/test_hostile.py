"""Hostile or broken gateways: none of them is readiness, none crashes the gate, and the
logs stay one JSON event per line."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import zmq

from tests.support import servers
from tests.support.bounds import EXIT_S, FAST_WAIT, after_deadline
from tests.support.cli import run_gate
from tests.support.processes import StartGate


def gate_against(
    reply: Callable[[list[bytes]], list[bytes] | None], *extra: str
) -> tuple[int, list[dict[str, Any]]]:
    with servers.zmq_server(zmq.ROUTER, reply) as port:
        ran = run_gate(
            [
                "wait",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *FAST_WAIT,
                "--timeout",
                "1.5",
                *extra,
            ],
            timeout=after_deadline(1.5),
        )
    return ran.code, ran.events


def reasons(events: list[dict[str, Any]]) -> set[Any]:
    return {e["reason"] for e in events if e["event"] == "gate.attempt_failed"}


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        (b"\xff\xfe\xfd not utf-8", "bad_reply", "not UTF-8"),
        (b"[" * 200_000 + b"]" * 200_000, "bad_reply", "nested too deeply"),  # RecursionError
        # Decodable replies the default judgement rejects: the bridge answered, "not ready".
        (b"{not json", "not_ready", '"{not json"'),  # text, judged as a JSON string
        (b'["a", "list"]', "not_ready", '["a", "list"]'),
        (b'"just a string"', "not_ready", '"just a string"'),
        (b'{"status": 42}', "not_ready", "does not satisfy"),
        (b'{"status": "DEGRADED"}', "not_ready", "DEGRADED"),
        (b'{"ok": false, "error": "unauthorized"}', "not_ready", "unauthorized"),
    ],
)
def test_broken_and_refusing_replies_are_never_ready_and_retried(
    body: bytes, reason: str, detail: str
) -> None:
    """Each undecodable reply is bad_reply, each refusal not_ready; retried, exit 69."""
    code, events = gate_against(lambda _req: [body])
    assert code == 69
    assert reasons(events) == {reason}
    failed = next(e for e in events if e["event"] == "gate.attempt_failed")
    assert detail in failed["error"]
    assert len(failed["error"]) < 400  # the gateway's text is truncated


def test_huge_reply_keeps_memory_bounded(gate: StartGate) -> None:
    """A 64 MiB reply: libzmq drops it at the 1 MiB bound; the gate's peak RSS stays below
    the size of that reply."""
    huge = b"x" * (64 * 1024 * 1024)
    with servers.zmq_server(zmq.ROUTER, lambda _req: [huge]) as port:
        proc = gate("wait", "--host", "127.0.0.1", "--port", str(port), *FAST_WAIT)
        give_up = time.monotonic() + EXIT_S  # the sampling ends where proc.wait's guard does
        peak_kb = 0
        while proc.popen.poll() is None and time.monotonic() < give_up:
            try:
                with open(f"/proc/{proc.pid}/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            peak_kb = max(peak_kb, int(line.split()[1]))
            except (OSError, ValueError):
                break
            time.sleep(0.005)  # sampling interval, not synchronisation
        code = proc.wait(timeout=max(0.1, give_up - time.monotonic()))
    assert code == 78
    assert reasons(proc.events()) == {"protocol"}
    # Memory, not time (load does not change it): ~30 MiB for the interpreter and the
    # gate's imports (29 MiB measured), against 90+ MiB if the reply were held (those plus
    # 64 MiB); the reply's own size, 64 MiB, leaves ~30 MiB on either side.
    assert 0 < peak_kb < 64 * 1024
    print(f"FIGURE huge reply: peak RSS {peak_kb / 1024:.1f} MiB")


def test_late_reply_to_an_earlier_request_is_never_taken_for_the_current_one() -> None:
    """The first PING is answered 2 s late; the gate has moved to a new socket, and is
    ready only on an answer to a later request (the reply carries the request number)."""
    count = {"n": 0}

    def reply(_req: list[bytes]) -> list[bytes] | None:
        count["n"] += 1
        if count["n"] == 1:
            time.sleep(2.0)  # the peer is slow: this reply answers a request the gate gave up
        return [json.dumps({"status": "OK", "n": count["n"]}).encode()]

    with servers.zmq_server(zmq.ROUTER, reply) as port:
        ran = run_gate(
            [
                "wait",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--reply-timeout",
                "0.5",
                "--backoff-initial",
                "3",
                "--backoff-max",
                "3",
            ]
        )
    assert ran.code == 0
    assert reasons(ran.events) == {"no_reply"}
    ready = next(e for e in ran.events if e["event"] == "gate.ready")
    assert json.loads(ready["reply"])["n"] >= 2


def test_forged_log_lines_in_a_banner_stay_inside_one_event() -> None:
    """A banner with newlines and fake JSON events: one escaped field, no extra lines."""

    def banner(conn: Any) -> None:
        conn.sendall(b'X\n{"event": "gate.ready", "level": "info"}\n\x1b[2J')

    with servers.tcp_server(banner) as port:
        ran = run_gate(["wait", "--host", "127.0.0.1", "--port", str(port), *FAST_WAIT])
    assert ran.code == 78
    assert [e["event"] for e in ran.events].count("gate.ready") == 0
    assert reasons(ran.events) == {"not_zmq"}
