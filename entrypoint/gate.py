"""``mt5-gate wait``: wait for the gateway, log why it is not there yet, then exec the runner."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from entrypoint.config import GateSettings
from entrypoint.dialect import NotReady
from entrypoint.handoff import exec_runner, resolve_command
from entrypoint.logs import get_logger, untrusted
from entrypoint.readiness import ReadinessCheck, Ready
from entrypoint.reasons import AttemptFailed
from entrypoint.retry import BackoffWithJitter, Deadline, wait_until_ready
from entrypoint.zmq_client import ZmqGateway

if TYPE_CHECKING:
    from entrypoint.dependencies import Dependency


def run_wait(settings: GateSettings, command: Sequence[str], environ: Mapping[str, str],
             dependencies: Sequence[Dependency] = ()) -> int:
    """Wait until the gateway and every dependency are ready; then exec ``command`` (never
    returning) or return 0 when there is none."""
    log = get_logger()
    # Resolve first: a typo in the runner's name fails now, not after a 10-minute outage.
    program = resolve_command(command, environ) if command else None
    deadline = Deadline(settings.timeout_s)
    backoff = BackoffWithJitter(settings.backoff_initial_s, settings.backoff_max_s)
    log.info(
        "gate.start", target=settings.target, pid=os.getpid(),
        deadline_s=settings.timeout_s or None, connect_timeout_s=settings.connect_timeout_s,
        reply_timeout_s=settings.reply_timeout_s,
        backoff={"initial_s": settings.backoff_initial_s, "max_s": settings.backoff_max_s},
        expect_status=sorted(settings.expect_status), **settings.dialect.describe(),
        command=list(command) or None,
        also=[dep.label for dep in dependencies] or None,
        curve=settings.curve.describe() if settings.curve else None,
    )
    others = None
    if dependencies:
        from entrypoint.dependencies import DependencyWaiter  # noqa: PLC0415

        others = DependencyWaiter(list(dependencies), deadline, log, backoff,
                                  settings.connect_timeout_s + settings.reply_timeout_s)
    with ZmqGateway(curve=settings.curve) as gateway:
        check = ReadinessCheck(settings, gateway)
        ready, attempts = wait_until_ready(
            check, deadline, log, backoff=backoff,
            before_attempt=others.raise_if_failed if others else None,
            hint=lambda reason: reason.hint_for(settings.host, settings.port))
        log.info("gate.ready", attempt=attempts, elapsed_s=round(deadline.elapsed(), 3),
                 rtt_ms=ready.rtt_ms, address=ready.address, via=ready.via,
                 reply=untrusted(ready.reply))
        log.info("gate.status", **_status_fields(check, ready))
    if others is not None:
        others.join()
    if program is None:
        return 0
    log.info("gate.exec", argv=list(command), program=program)
    exec_runner(program, command)
    raise AssertionError("exec_runner returned")  # pragma: no cover


def _status_fields(check: ReadinessCheck, ready: Ready) -> dict[str, Any]:
    """STATUS is informational: its outcome is logged, and never holds the runner back."""
    if check.settings.dialect.status is None:
        return {"requested": False}
    try:
        reply = check.status(ready.address, check.status_timeout(ready))
    except NotReady as refused:  # an error-shaped reply: shown, not taken for a status
        return {"available": False, "reason": refused.reason.value,
                "reply": untrusted(refused.reply), "error": refused.error}
    except AttemptFailed as failure:
        return {"available": False, "reason": failure.reason.value, "error": failure.error}
    return {"available": True, "reply": untrusted(reply)}
