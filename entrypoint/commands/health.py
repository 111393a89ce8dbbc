"""``mt5-gate health``: one bounded attempt for Docker/Compose/Kubernetes healthchecks.

Exit 0 when the gateway answers, 1 otherwise (never 2, which Docker reserves), and at
most one short line of output (Docker keeps only the last 4 KB of it). That contract holds
for everything: a usage error or a signal is "unhealthy" too, never 64 or 143.

A healthcheck runs beside the strategy and must never disturb it. For the two-socket
transports it is passive: the bridge's PUSH round-robins its answers over every connected
PULL, so a check that connected to the reply port, or sent a request whose answer the
bridge pushes, would take the strategy's replies or hand it one it never asked for. It
only completes the ZeroMQ handshake with the request socket (and the PUB port, when one
is configured), and sends nothing. So before any check it asks the waiting gate
(``gatestate``): while ``wait`` in the same container still waits, health says so and
exits 1, whatever a passive check would see.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, TextIO

from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed, GateSignal, UsageError
from entrypoint.files import forget_standard_stream
from entrypoint.gateway.check import GatewayCheck, check_feed
from entrypoint.gateway.dialect import NotReady
from entrypoint.gateway.zmq_client import ZmqGateway
from entrypoint.log.logs import configure_logging
from entrypoint.process.gatestate import still_waiting
from entrypoint.settings.config import GateSettings, settings_for
from entrypoint.settings.options import (
    ATTEMPT,
    CONNECTION,
    CURVE,
    FEED,
    HEALTH_DEADLINE,
    LOG_FORMAT,
    READINESS,
    STATE,
    declared,
    options_of,
    resolve_option,
)

if TYPE_CHECKING:  # argparse only for --help and flags: the image's check has none (cli)
    import argparse

    from entrypoint.commands.arguments import OptionParser

HEALTHY, UNHEALTHY = 0, 1
MAX_LINE = 200


# No backoff (one attempt), no STATUS, no log level (only errors are logged: the verdict
# is the one line on stdout). Its flags are exactly these groups' (the registry's
# ``bare_call``: a call with no flag is answered without argparse).
GROUPS = (CONNECTION, ATTEMPT, READINESS, HEALTH_DEADLINE, FEED, LOG_FORMAT, CURVE, STATE)


def add_arguments(parser: OptionParser) -> None:
    from entrypoint.commands.arguments import add_groups, describe  # noqa: PLC0415 - see above

    describe(
        parser,
        description="First, unhealthy while `mt5-gate wait` for the same gateway "
        "still waits\n(its state file, see GATE_STATE_FILE: "
        "attempt, reason, since when).\n"
        "Then one TCP + readiness request attempt within --timeout "
        "(--transport req and rpyc).\n"
        "For push-pull, req-pull and handshake, a passive check that "
        "never disturbs the\nrunning strategy: the ZeroMQ handshake "
        "with the bridge's request socket (and the PUB\nport when one "
        "is configured); nothing sent, the reply port never touched.\n"
        "Prints one short line.",
        epilog="exit codes: 0 healthy, 1 unhealthy or misconfigured (never 2)",
    )
    add_groups(parser, *GROUPS)


def run(args: argparse.Namespace, _command: list[str], environ: Mapping[str, str]) -> int:
    try:
        settings = settings_for(args, environ, options_of(*GROUPS))
        configure_logging(settings.log_format, "error")
        state_file = resolve_option(declared("state_file"), vars(args), environ)
        return run_health(settings, state_file=state_file)
    except UsageError as exc:
        return report_usage_error(exc)
    except GateSignal as sig:
        return emit(sys.stdout, UNHEALTHY, f"unhealthy: stopped by {sig.name}")


def report_usage_error(exc: UsageError) -> int:
    """Docker reads exit 1 and one line; 64 would mean nothing to it."""
    return emit(sys.stdout, UNHEALTHY, f"unhealthy: {exc.message}")


def run_health(
    settings: GateSettings, out: TextIO | None = None, state_file: str | None = None
) -> int:
    stream = out if out is not None else sys.stdout
    waiting = still_waiting(settings.target, state_file)  # the gate's word comes first
    if waiting is not None:
        return emit(stream, UNHEALTHY, waiting)
    deadline = Deadline(settings.timeout_s)
    try:
        with ZmqGateway(curve=settings.curve) as gateway:
            check = GatewayCheck(settings.endpoint, gateway)
            if settings.kind.passive_health:
                return emit(stream, HEALTHY, _passive(settings, gateway, check, deadline))
            ready = check.attempt(deadline)
    except NotReady as refused:
        state = f" ({refused.state.name}: {refused.state.advice()})" if refused.state else ""
        return emit(
            stream,
            UNHEALTHY,
            f"unhealthy: {settings.target} {refused.reason}{state}: {refused.error}",
        )
    except AttemptFailed as failure:
        return emit(
            stream, UNHEALTHY, f"unhealthy: {settings.target} {failure.reason}: {failure.error}"
        )
    action = (settings.dialect.ping.action() or "").split()  # the request's own name
    return emit(
        stream,
        HEALTHY,
        f"healthy: {settings.target} answered "
        f"{action[0][:40] if action else 'the request'} in "
        f"{ready.rtt_ms} ms",
    )


def _passive(
    settings: GateSettings, gateway: ZmqGateway, check: GatewayCheck, deadline: Deadline
) -> str:
    """The handshakes only (see the module's docstring); AttemptFailed when one fails."""
    _address, took = check.passive(deadline)
    line = (
        f"healthy: {settings.target} {settings.transport}: request socket handshake in "
        f"{took:.1f} ms"
    )
    if settings.feed_checked:
        feed = check_feed(gateway, settings.host, settings.feed_port, deadline)
        line += f", PUB {settings.feed_port} in {feed:.1f} ms"
    return line + " (passive: nothing sent)"


def emit(stream: TextIO, code: int, line: str) -> int:
    text = " ".join(line.split())  # one line, whatever the error text contained
    try:
        stream.write((text if len(text) <= MAX_LINE else text[: MAX_LINE - 3] + "...") + "\n")
        stream.flush()
    except (OSError, ValueError):  # stdout full or gone: Docker still reads the exit code
        forget_standard_stream("stdout", stream)
    return code
