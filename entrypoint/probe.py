"""``mt5-gate probe``: the operator's layer-by-layer diagnosis of the gateway.

Layers in order: DNS, TCP connect (with the greeting sniff), ZeroMQ PING with the reply
shown, round-trip statistics over a few PINGs, STATUS (optional), and the PUB port's
handshake. A failed layer stops the ones that depend on it and prints the concrete steps
for its reason. Exit 0 when TCP and PING pass, else 1 (the original tool's contract).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from entrypoint.checks import FAIL, PASS, SKIP, WARN, Check, CheckResult, run_check
from entrypoint.config import GateSettings
from entrypoint.logs import untrusted
from entrypoint.protocol import ping_request
from entrypoint.readiness import ReadinessCheck, check_feed
from entrypoint.reasons import STEPS, Reason
from entrypoint.report import Painter, dump_json, result_line
from entrypoint.tcp_probe import probe_tcp, resolve
from entrypoint.zmq_client import ZmqGateway

RTT_PINGS = 5


class _Layers:
    """Runs one layer at a time (in order: each depends on the one before), recording its
    CheckResult; the first failed layer's reason decides the troubleshooting steps."""

    def __init__(self) -> None:
        self.results: list[CheckResult] = []
        self.first_failure: Reason | None = None

    def run(self, name: str, layer: Callable[[], str], optional: bool = False) -> bool:
        result = run_check(Check(name, "probe", lambda _timeout: layer(), 0.0,
                                 about_gateway=True))
        if result.status == FAIL and optional:
            result = dataclasses.replace(result, status=WARN)
        elif result.status == FAIL and self.first_failure is None and result.reason:
            self.first_failure = Reason(result.reason)
        self.results.append(result)
        return result.status == PASS

    def skip(self, name: str, why: str) -> None:
        self.results.append(CheckResult(name, "probe", SKIP, why, 0.0))


def run_probe(settings: GateSettings, *, as_json: bool, out: TextIO | None = None) -> int:
    stream = out if out is not None else sys.stdout
    layers = _Layers()
    state: dict[str, Any] = {}
    with ZmqGateway(curve=settings.curve) as gateway:
        check = ReadinessCheck(settings, gateway)
        _run_layers(settings, gateway, check, layers, state)
    by_name = {r.name: r.status for r in layers.results}
    ok = by_name.get("TCP connect") == PASS and by_name.get("ZeroMQ PING") == PASS
    code = 0 if ok else 1
    if as_json:
        dump_json(_document(settings, layers, ok, code), stream)
    else:
        _print_human(settings, layers, stream)
    return code


def _run_layers(settings: GateSettings, gateway: ZmqGateway, check: ReadinessCheck,
                layers: _Layers, state: dict[str, Any]) -> None:
    s = settings

    def dns() -> str:
        state["addresses"] = resolve(s.host, s.port, s.connect_timeout_s)
        found = ", ".join(address for _f, address in state["addresses"][:4])
        return "IP literal (no lookup)" if found == s.host else f"{s.host} → {found}"

    def tcp() -> str:
        result = probe_tcp(state["addresses"], s.port, s.connect_timeout_s)
        state["address"], state["greeting"] = result.address, result.greeting
        seen = "ZeroMQ greeting" if result.greeting == "zmtp" else "no greeting yet"
        return f"{result.address}:{s.port} connected in {result.connect_ms:.1f} ms ({seen})"

    def ping() -> str:
        frames = gateway.request(state["address"], s.port, ping_request(), s.reply_timeout_s,
                                 state["greeting"])
        return f"reply {untrusted(check.judge(frames), 160)}"

    def rtt() -> str:
        times = []
        for _ in range(RTT_PINGS):
            started = time.monotonic()
            check.judge(gateway.request(state["address"], s.port, ping_request(),
                                        s.reply_timeout_s))
            times.append((time.monotonic() - started) * 1000)
        return (f"min {min(times):.1f} / median {statistics.median(times):.1f} / "
                f"max {max(times):.1f} ms over {RTT_PINGS} PINGs")

    def status() -> str:
        reply = check.status(state["address"], s.reply_timeout_s)
        return f"reply {untrusted(reply, 160)}"

    def pub() -> str:
        took = check_feed(gateway, s.host, s.pub_port, s.connect_timeout_s + s.reply_timeout_s)
        return f"port {s.pub_port} handshake in {took:.1f} ms"

    if not layers.run("DNS", dns):
        for name in ("TCP connect", "ZeroMQ PING", "round trip", "STATUS", "PUB port"):
            layers.skip(name, "skipped: the name does not resolve")
        return
    if layers.run("TCP connect", tcp) and layers.run("ZeroMQ PING", ping):
        layers.run("round trip", rtt, optional=True)
        layers.run("STATUS", status, optional=True)
    else:
        for name in ("ZeroMQ PING", "round trip", "STATUS"):
            if name not in {r.name for r in layers.results}:
                layers.skip(name, "skipped: an earlier layer failed")
    layers.run("PUB port", pub)


def _document(settings: GateSettings, layers: _Layers, ok: bool, code: int) -> dict[str, Any]:
    passed = sum(r.status == PASS for r in layers.results)
    failure = layers.first_failure
    return {
        "target": settings.target, "pub_port": settings.pub_port, "ok": ok,
        "exit_code": code, "passed": passed, "total": len(layers.results),
        "checks": [r.as_dict() for r in layers.results],
        "troubleshooting": None if failure is None else {
            "reason": failure.value, "hint": failure.hint,
            "steps": _steps(failure, settings)},
    }


def _steps(reason: Reason, settings: GateSettings) -> list[str]:
    return [step.format(host=settings.host, port=settings.port) for step in STEPS[reason]]


def _print_human(settings: GateSettings, layers: _Layers, stream: TextIO) -> None:
    paint = Painter(stream)
    write = stream.write
    write(paint.bold(f"mt5-gate probe: gateway {settings.target}, PUB port "
                     f"{settings.pub_port}") + "\n\n")
    for result in layers.results:
        write(result_line(result, paint, name_width=12) + "\n")
    passed = sum(r.status == PASS for r in layers.results)
    write(f"\nResults: {passed}/{len(layers.results)} checks passed\n")
    failure = layers.first_failure
    warnings = [r for r in layers.results if r.status in (FAIL, WARN) and r.reason]
    if failure is not None:
        write(paint.bold(f"\nTroubleshooting ({failure}):") + "\n")
        for step in _steps(failure, settings):
            write(f"  - {step}\n")
        write(f"  - more: {failure.hint.rsplit('See ', 1)[-1]}\n")
    elif warnings:
        write("\nWarnings are informational: the gateway answers PING.\n")
    stream.flush()
