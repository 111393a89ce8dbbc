"""``mt5-gate probe``: the operator's layer-by-layer diagnosis of the gateway.

Layers in order: DNS, TCP connect, ZeroMQ PING with the reply shown, round-trip statistics
over a few PINGs, STATUS (optional), and the PUB port's handshake. TCP and PING come from one
ZeroMQ exchange, the very one ``wait`` makes (the dialect's request, judged the same way).
A failed layer stops the ones that depend on it and prints the concrete steps for its
reason, naming the port of the layer that failed. Exit 0 when TCP and PING pass, else 1
(the original tool's contract).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from entrypoint.checks import FAIL, PASS, SKIP, WARN, Check, CheckResult, run_check
from entrypoint.commands.arguments import OptionParser, add_groups, add_json_flag, describe
from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed
from entrypoint.files import write_report
from entrypoint.gateway.advice import suggest_fix
from entrypoint.gateway.check import GatewayCheck, Ready, Trace, check_feed
from entrypoint.gateway.dialect import NotReady
from entrypoint.gateway.zmq_client import ZmqGateway
from entrypoint.log.logs import configure_logging, untrusted
from entrypoint.reasons import STEPS, Reason
from entrypoint.report import WHOLE, Painter, dump_json, hanging, result_line, score
from entrypoint.settings.config import GateSettings, settings_for
from entrypoint.settings.options import (
    ATTEMPT,
    CONNECTION,
    CURVE,
    FEED,
    LOG_FORMAT,
    LOG_LEVEL,
    READINESS,
    STATUS,
    options_of,
)

RTT_PINGS = 5
# The layers whose detail shows the bridge's reply: a reply too long for a line (one word,
# no spaces) is cut, and says so.
REPLY_LAYERS = frozenset({"ZeroMQ PING", "STATUS"})
WHOLE_REPLY = "whole reply: --json"


class _Layers:
    """Runs one layer at a time (in order: each depends on the one before), recording its
    CheckResult; the first failed layer's reason decides the troubleshooting steps."""

    def __init__(self, settings: GateSettings) -> None:
        self.settings = settings
        self.results: list[CheckResult] = []
        self.first_failure: Reason | None = None
        self.failed_port = settings.port
        self.fix: str | None = None  # a one-line fix for a not_ready reply

    def run(
        self,
        name: str,
        layer: Callable[[], str],
        optional: bool = False,
        port: int | None = None,
        took_ms: float | None = None,
    ) -> bool:
        """Run ``layer``; ``took_ms``: the stage's own time, when the attempt measured it
        (the layer then only renders what the attempt found)."""
        port = self.settings.port if port is None else port
        result = run_check(
            Check(
                name,
                "probe",
                lambda _deadline: layer(),
                0.0,
                about_gateway=(self.settings.host, port),
            )
        )
        if took_ms is not None:
            result = dataclasses.replace(result, duration_ms=round(took_ms, 1))
        if result.status == FAIL and optional:
            result = dataclasses.replace(result, status=WARN)
        elif result.status == FAIL and self.first_failure is None and result.reason:
            self.first_failure = Reason(result.reason)
            self.failed_port = port
        self.results.append(result)
        return result.status == PASS

    def skip(self, name: str, why: str) -> None:
        self.results.append(CheckResult(name, "probe", SKIP, why, 0.0))


GROUPS = (CONNECTION, ATTEMPT, READINESS, STATUS, FEED, LOG_FORMAT, LOG_LEVEL, CURVE)


def add_arguments(parser: OptionParser) -> None:
    describe(
        parser,
        description="DNS, TCP, ZeroMQ PING, round trips, STATUS and the PUB "
        "port, each with its timing; on failure, the reason and the "
        "commands to run.",
        epilog="exit codes: 0 TCP and PING pass, 1 otherwise, 64 usage error, 74 the "
        "report cannot be written to stdout",
    )
    add_groups(parser, *GROUPS)
    add_json_flag(parser)


def run(args: argparse.Namespace, _command: list[str], environ: Mapping[str, str]) -> int:
    settings = settings_for(args, environ, options_of(*GROUPS))
    configure_logging(settings.log_format, settings.log_level)
    return run_probe(settings, as_json=args.json)


def run_probe(settings: GateSettings, *, as_json: bool, out: TextIO | None = None) -> int:
    stream = out if out is not None else sys.stdout
    layers = _Layers(settings)
    with (
        ZmqGateway(curve=settings.curve) as gateway,
        GatewayCheck(settings.endpoint, gateway) as check,
    ):
        _run_layers(settings, gateway, check, layers)
    by_name = {r.name: r.status for r in layers.results}
    ok = by_name.get("TCP connect") == PASS and by_name.get("ZeroMQ PING") == PASS
    code = 0 if ok else 1

    def report() -> None:
        if as_json:
            dump_json(_document(settings, layers, ok, code), stream)
        else:
            _print_human(settings, layers, stream)

    write_report("probe", report)  # a full stdout: exit 74, whatever the probe found
    return code


def _run_layers(
    settings: GateSettings, gateway: ZmqGateway, check: GatewayCheck, layers: _Layers
) -> None:
    """The gate's one attempt (``GatewayCheck.attempt``, exactly what ``wait`` retries),
    shown stage by stage; then round trips, STATUS and the PUB port."""
    s = settings
    budget = s.endpoint.timeouts.total_s
    outcome: Ready | AttemptFailed
    started = time.monotonic()
    try:
        outcome = check.attempt(Deadline(budget))
    except AttemptFailed as failure:
        outcome = failure
    attempt_ms = (time.monotonic() - started) * 1000
    trace: Trace = outcome.trace if outcome.trace is not None else Trace()
    failed_at = outcome.stage if isinstance(outcome, AttemptFailed) else None
    # Each layer shows its stage's own time; the stage that failed, the attempt's.
    took = {
        "dns": attempt_ms if failed_at == "dns" else trace.dns_ms,
        "tcp": attempt_ms if failed_at == "tcp" else trace.connect_ms,
        "reply": outcome.rtt_ms if isinstance(outcome, Ready) else attempt_ms,
    }

    def dns() -> str:
        if isinstance(outcome, AttemptFailed) and outcome.stage == "dns":
            raise outcome
        shown = ", ".join(trace.addresses[:4])
        return "IP literal (no lookup)" if shown == s.host else f"{s.host} → {shown}"

    def tcp() -> str:
        if isinstance(outcome, AttemptFailed) and outcome.stage == "tcp":
            raise outcome
        took = f" in {trace.connect_ms:.1f} ms" if trace.connect_ms is not None else ""
        return f"{trace.address}:{s.port} connected{took}"

    def ping() -> str:
        if isinstance(outcome, NotReady):
            layers.fix = (
                f"{outcome.state.name}: {outcome.state.advice()}"
                if outcome.state
                else suggest_fix(outcome.reply, s.dialect)
            )
        if isinstance(outcome, AttemptFailed):
            raise outcome
        if not s.kind.sends_requests:
            return "handshake done, no request sent (--transport handshake)"
        took = f" in {outcome.rtt_ms:.1f} ms" if outcome.rtt_ms is not None else ""
        return f"reply{took}: {untrusted(outcome.reply, 160)}"

    def rtt() -> str:
        times = []
        for _ in range(RTT_PINGS):
            started = time.monotonic()
            check.attempt(Deadline(budget))
            times.append((time.monotonic() - started) * 1000)
        return (
            f"min {min(times):.1f} / median {statistics.median(times):.1f} / "
            f"max {max(times):.1f} ms over {RTT_PINGS} requests"
        )

    if not layers.run("DNS", dns, took_ms=took["dns"]):
        for name in ("TCP connect", "ZeroMQ PING", "round trip", "STATUS", "PUB port"):
            layers.skip(name, "skipped: the name does not resolve")
        return
    if layers.run("TCP connect", tcp, took_ms=took["tcp"]) and layers.run(
        "ZeroMQ PING", ping, took_ms=took["reply"]
    ):
        assert isinstance(outcome, Ready)
        _after_ping(check, layers, rtt, outcome.address)
    else:
        for name in ("ZeroMQ PING", "round trip", "STATUS"):
            if name not in {r.name for r in layers.results}:
                layers.skip(name, "skipped: an earlier layer failed")
    if not s.feed_checked:
        layers.skip("PUB port", f"not configured (--pub-port; --transport {s.transport})")
    else:
        layers.run("PUB port", lambda: _feed(gateway, s), port=s.feed_port)


def _after_ping(check: GatewayCheck, layers: _Layers, rtt: Callable[[], str], address: str) -> None:
    """Round trips and STATUS, once the request was answered (or the handshake done)."""
    if check.endpoint.kind.sends_requests:
        layers.run("round trip", rtt, optional=True)
    else:
        layers.skip("round trip", "no request sent (--transport handshake)")
    if check.endpoint.dialect.status is None:
        layers.skip("STATUS", "not requested (--status-request none)")
    else:
        layers.run("STATUS", lambda: _status(check, address), optional=True)


def _status(check: GatewayCheck, address: str) -> str:
    try:
        reply = check.status(address, check.endpoint.reply_timeout_s)
    except NotReady as refused:  # shown as a warning with what the bridge said
        raise AttemptFailed(
            "reply", refused.reason, f"refused: {untrusted(refused.reply, 160)}"
        ) from None
    return f"reply {untrusted(reply, 160)}"


def _feed(gateway: ZmqGateway, s: GateSettings) -> str:
    took = check_feed(gateway, s.host, s.feed_port, Deadline(s.endpoint.timeouts.exchange_s))
    return f"port {s.feed_port} handshake in {took:.1f} ms"


def _document(settings: GateSettings, layers: _Layers, ok: bool, code: int) -> dict[str, Any]:
    passed, counted = score(layers.results)
    failure = layers.first_failure
    return {
        "target": settings.target,
        "pub_port": settings.feed_port if settings.feed_checked else None,
        "ok": ok,
        "bridge": settings.bridge.name,
        "transport": settings.transport,
        "reply_port": settings.reply_port,
        "exit_code": code,
        "passed": passed,
        "total": counted,
        "skipped": len(layers.results) - counted,
        "checks": [r.as_dict() for r in layers.results],
        "troubleshooting": None
        if failure is None
        else {
            "reason": failure.value,
            "hint": failure.hint_for(settings.host, layers.failed_port),
            "steps": _steps(failure, settings.host, layers.failed_port),
            "fix": layers.fix,
        },
    }


def _steps(reason: Reason, host: str, port: int) -> list[str]:
    return [step.format(host=host, port=port) for step in STEPS[reason]]


def _print_human(settings: GateSettings, layers: _Layers, stream: TextIO) -> None:
    """The report, every line at most ``report.WIDTH`` columns: a long reply or hint goes
    on under where it started (``report.hanging``); --json has every text unfolded."""
    paint = Painter(stream)

    def write(lead: str, text: str) -> None:  # the text folded under its first column
        stream.write("".join(line + "\n" for line in hanging(lead, text)))

    how = f"--bridge {settings.bridge.name}, --transport {settings.transport}"
    if settings.kind.reply_port:
        how += f", reply port {settings.reply_port}"
    feed = f", PUB port {settings.feed_port}" if settings.feed_checked else ""
    title = "mt5-gate probe: "
    for line in hanging(title, f"gateway {settings.target}{feed} ({how})"):
        stream.write(paint.bold(line) + "\n")
    stream.write("\n")
    for result in layers.results:
        whole = WHOLE_REPLY if result.name in REPLY_LAYERS else WHOLE
        stream.write(result_line(result, paint, name_width=12, whole=whole) + "\n")
    passed, counted = score(layers.results)
    skipped = len(layers.results) - counted
    stream.write(
        f"\nResults: {passed}/{counted} checks passed"
        + (f" ({skipped} skipped)" if skipped else "")
        + "\n"
    )
    failure = layers.first_failure
    warnings = [r for r in layers.results if r.status in (FAIL, WARN) and r.reason]
    if failure is not None:
        stream.write(paint.bold(f"\nTroubleshooting ({failure}):") + "\n")
        if layers.fix:
            write("  fix: ", layers.fix)
        for step in _steps(failure, settings.host, layers.failed_port):
            write("  - ", step)
        hint = failure.hint_for(settings.host, layers.failed_port)
        write("  - more: ", hint.rsplit("See ", 1)[-1])
    elif warnings:
        stream.write("\nWarnings are informational: the gateway answers PING.\n")
    stream.flush()
