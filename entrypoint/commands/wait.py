"""``mt5-gate wait``: wait for the gateway, log why it is not there yet, then exec the runner.

The gateway is waited for on the main thread, where signals arrive; each ``--also`` target
on a thread of its own, under the same deadline and backoff. The exec happens only after
every one of them has positively reported ready: a target's thread that fails, in any way
(an unexpected exception included), ends the wait (fail closed).
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from entrypoint import targets
from entrypoint.addresses import url_error
from entrypoint.commands.arguments import OptionParser, add_groups, describe
from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed, GateError, GatewayTimeout, UsageError
from entrypoint.gateway.check import GatewayCheck, Ready
from entrypoint.gateway.dialect import NotReady
from entrypoint.gateway.zmq_client import ZmqGateway
from entrypoint.log import events
from entrypoint.log.events import emit
from entrypoint.log.logs import configure_logging, get_logger, untrusted
from entrypoint.process import failclosed, fdlimit
from entrypoint.process.gatestate import StateFile
from entrypoint.process.handoff import exec_runner, resolve_command
from entrypoint.reasons import Reason, dependency_hint
from entrypoint.retry import AttemptDetails, AttemptLog, BackoffWithJitter, wait_until_ready
from entrypoint.settings.config import GateSettings, settings_for
from entrypoint.settings.options import (
    ALSO,
    ATTEMPT,
    CONNECTION,
    CURVE,
    LOG_FORMAT,
    LOG_LEVEL,
    READINESS,
    STATE,
    STATUS,
    WAIT_DEADLINE,
    declared,
    options_of,
    resolve_option,
)
from entrypoint.targets.base import Context, Target

# How long past the deadline the main thread waits for a dependency's own wait to end and
# say why: its last attempt is cut off at the deadline, so it reports within milliseconds.
REPORT_GRACE_S = 0.5

EXIT_CODES_HELP = """\
exit codes:
  0    ready (and no COMMAND); otherwise COMMAND replaces the gate and its code is final
  64   usage error or invalid value
  69   the gateway did not answer before --timeout
  70   internal error (a bug; the log has the traceback), or ulimit -n too low
  78   something answers on the port but it is not a ZeroMQ REP gateway
  126  COMMAND is not executable
  127  COMMAND not found
  130  SIGINT while waiting
  143  SIGTERM while waiting
"""
GROUPS = (
    CONNECTION,
    ATTEMPT,
    READINESS,
    STATUS,
    WAIT_DEADLINE,
    LOG_FORMAT,
    LOG_LEVEL,
    CURVE,
    ALSO,
    STATE,
)


def add_arguments(parser: OptionParser) -> None:
    describe(
        parser,
        usage="mt5-gate wait [OPTIONS] [-- COMMAND [ARG...]]",
        description="Retry a TCP connect and a ZeroMQ PING with exponential backoff "
        "until the gateway answers, then exec COMMAND (which keeps the PID). "
        "With no COMMAND, exit 0 once the gateway answers. --bridge NAME "
        "speaks a public bridge's protocol (see mt5-gate explain --bridge NAME).",
        epilog=EXIT_CODES_HELP,
    )
    add_groups(parser, *GROUPS)


def run(args: argparse.Namespace, command: list[str], environ: Mapping[str, str]) -> int:
    settings = settings_for(args, environ, options_of(*GROUPS))
    also = resolve_option(declared("also"), vars(args), environ)
    context = Context(environ, settings)
    others = [_also_target(url, context) for url in also]
    configure_logging(settings.log_format, settings.log_level)
    zmq_targets = sum(1 for other in others if other.kind.gateway)  # each has a context
    # A ZeroMQ --also URL with its own options may name a two-socket bridge: counted as one.
    two_socket = settings.kind.reply_port
    reply_sockets = two_socket + sum(
        1 for other in others if other.kind.gateway and ("?" in other.text or two_socket)
    )
    fdlimit.require(fdlimit.needed(zmq_targets, len(others) - zmq_targets, reply_sockets))
    state_file = resolve_option(declared("state_file"), vars(args), environ)
    with StateFile(
        state_file,
        settings.target,
        settings.transport,
        settings.bridge.name,
        [other.shown for other in others],
    ) as state:  # removed at exit
        return run_wait(settings, command, environ, others, state=state)


def _also_target(url: str, context: Context) -> Target:
    """Validate one ``--also`` URL now, so a typo is a usage error, not a 10-minute wait."""
    try:
        return targets.from_url(url, context)
    except ValueError as exc:
        raise UsageError(f"--also / GATE_ALSO: {url_error(url, str(exc))}") from None


def run_wait(
    settings: GateSettings,
    command: Sequence[str],
    environ: Mapping[str, str],
    dependencies: Sequence[Target] = (),
    state: StateFile | None = None,
) -> int:
    """Wait until the gateway and every dependency are ready; then exec ``command`` (never
    returning) or return 0 when there is none. ``state`` is told each target's progress,
    for ``health``; it is removed before the exec."""
    log = get_logger()
    state = state if state is not None else StateFile.unkept()
    # Resolve first: a typo in the runner's name fails now, not after a 10-minute outage.
    program = resolve_command(command, environ) if command else None
    deadline = Deadline(settings.timeout_s)
    backoff = BackoffWithJitter(settings.backoff_initial_s, settings.backoff_max_s)
    emit(
        log,
        events.START,
        target=settings.target,
        pid=os.getpid(),
        bridge=settings.bridge.name,
        transport=settings.transport,
        reply_port=settings.reply_port,
        deadline_s=settings.timeout_s or None,
        connect_timeout_s=settings.connect_timeout_s,
        reply_timeout_s=settings.reply_timeout_s,
        backoff={"initial_s": settings.backoff_initial_s, "max_s": settings.backoff_max_s},
        expect_status=sorted(settings.expect_status),
        **settings.dialect.describe(),
        command=list(command) or None,
        also=[dep.shown for dep in dependencies] or None,
        curve=settings.curve.describe() if settings.curve else None,
    )
    state.start(log)
    others = None
    if dependencies:
        others = AlsoWaiter(
            list(dependencies),
            deadline,
            log,
            backoff,
            # An attempt at a dependency is bounded as a whole by what one at the gateway
            # may take (its lookup, its connection, its reply), and by the deadline.
            settings.endpoint.timeouts.total_s,
            state=state,
        )

    def hint(reason: Reason) -> str:
        return reason.hint_for(settings.host, settings.port)

    with ZmqGateway(curve=settings.curve) as gateway:
        check = GatewayCheck(settings.endpoint, gateway, log=log)
        ready, attempts = wait_until_ready(
            check,
            deadline,
            log,
            backoff=backoff,
            before_attempt=others.raise_if_failed_for_good if others else None,
            hint=hint,
            on_failure=_told(state, settings.target, log, hint),
        )
        emit(
            log,
            events.READY,
            attempt=attempts,
            elapsed_s=round(deadline.elapsed(), 3),
            rtt_ms=ready.rtt_ms,
            address=ready.address,
            via=ready.via,
            reply=untrusted(ready.reply),
        )
        state.ready(settings.target)
        emit(log, events.STATUS, **_status_fields(check, ready))
    if others is not None:
        others.join()
    state.all_ready()
    if program is None:
        return 0
    failclosed.raise_if_any()  # before saying "exec": nothing failed anywhere, unseen
    emit(log, events.EXEC, argv=list(command), program=program)
    state.close()  # the runner is health's business now (its lock would go at exec anyway)
    exec_runner(program, command)
    raise AssertionError("exec_runner returned")  # pragma: no cover


def _told(
    state: StateFile, name: str, log: Any, hint: Callable[[Reason], str]
) -> Callable[[AttemptDetails], None]:
    """The hook of ``name``'s failed attempts: the usual log line, then the state file."""
    attempt_log = AttemptLog(log, hint=hint)

    def told(details: AttemptDetails) -> None:
        attempt_log(details)
        failure = details.failure
        state.failed(
            name, details.attempt, failure.reason.value, failure.error, failure.broker_state
        )

    return told


def _status_fields(check: GatewayCheck, ready: Ready) -> dict[str, Any]:
    """STATUS is informational: its outcome is logged, and never holds the runner back."""
    if check.endpoint.dialect.status is None:
        return {"requested": False}
    try:
        reply = check.status(ready.address, check.status_timeout(ready))
    except NotReady as refused:  # an error-shaped reply: shown, not taken for a status
        state = {"broker_state": refused.state.name} if refused.state else {}
        return {
            "available": False,
            "reason": refused.reason.value,
            "reply": untrusted(refused.reply),
            "error": refused.error,
            **state,
        }
    except AttemptFailed as failure:
        return {"available": False, "reason": failure.reason.value, "error": failure.error}
    return {"available": True, "reply": untrusted(reply)}


class _TargetCheck:
    """One ``--also`` target as what ``wait_until_ready`` retries: its detail is the reply."""

    def __init__(self, target: Target, attempt_timeout: float) -> None:
        self.target = target
        self.attempt_timeout = attempt_timeout

    def attempt(self, deadline: Deadline) -> str:
        return self.target.probe(deadline.capped(self.attempt_timeout))

    def watch_pause(self, _seconds: float, _deadline: Deadline) -> str | None:
        return None


class AlsoWaiter:
    """Waits for every ``--also`` target on its own daemon thread; ``join`` collects the
    outcome. A thread that ends other than "ready" leaves an error behind, so it can never
    be taken for ready."""

    def __init__(
        self,
        others: list[Target],
        deadline: Deadline,
        log: Any,
        backoff: BackoffWithJitter,
        attempt_timeout: float,
        *,
        state: StateFile | None = None,
    ) -> None:
        self._state = state if state is not None else StateFile.unkept()
        self._errors: list[Exception] = []
        self._ready: list[str] = []  # positive reports only: the exec needs one per target
        self._deadline = deadline
        self._others = others
        self._last_failure: dict[str, AttemptDetails] = {}  # per target, for a stuck one
        self._threads = [
            threading.Thread(
                target=self._wait_one,
                daemon=True,
                name=f"also-{i}",
                args=(other, deadline, log.bind(target=other.shown), backoff, attempt_timeout),
            )
            for i, other in enumerate(others)
        ]
        for thread in self._threads:
            thread.start()

    def _wait_one(
        self,
        target: Target,
        deadline: Deadline,
        log: Any,
        backoff: BackoffWithJitter,
        attempt_timeout: float,
    ) -> None:
        hint = _hint_for(target)
        told = _told(self._state, target.shown, log, hint)

        def on_failure(details: AttemptDetails) -> None:
            self._last_failure[target.shown] = details
            told(details)

        try:
            detail, attempts = wait_until_ready(
                _TargetCheck(target, attempt_timeout),
                deadline,
                log,
                backoff=backoff,
                hint=hint,
                name=target.shown,
                on_failure=on_failure,
            )
        except GateError as exc:
            exc.target = target.shown
            self._errors.append(exc)
            return
        except Exception as exc:  # noqa: BLE001 - fail closed: the main thread re-raises it
            # (exit 70, one gate.error with this traceback), so it is never taken for ready.
            exc.add_note(f"in the --also check of {target.shown}")
            self._errors.append(exc)
            return
        emit(
            log,
            events.DEPENDENCY_READY,
            attempt=attempts,
            elapsed_s=round(deadline.elapsed(), 3),
            detail=detail,
        )
        self._state.ready(target.shown)
        self._ready.append(target.shown)

    def raise_if_failed(self) -> None:
        if self._errors:
            raise self._errors[0]

    def raise_if_failed_for_good(self) -> None:
        """Before each of the gateway's attempts: end the wait early for a target that can
        never be ready (a configuration error, an internal error). A target whose deadline
        ran out is left to ``join``: the deadline is shared, so the gateway's own wait ends
        at the same moment, and when both are down its gate.timeout names the gateway,
        every time, rather than whichever thread noticed the deadline first."""
        for error in self._errors:
            if not isinstance(error, GatewayTimeout):
                raise error

    def join(self) -> None:
        """Block until every target is ready (signals still interrupt), or at most until the
        deadline and a moment for a target's own wait to say why it ended; raise a failure.
        A target still checking then (a client library that ignored its budget) ends the
        wait as a timeout naming it: its daemon thread is left behind, not waited for."""
        if self._deadline.timeout_s > 0:
            until = Deadline(self._deadline.remaining() + REPORT_GRACE_S)
        else:
            until = Deadline(0)  # --timeout 0: the targets' own waits never end either
        for thread in self._threads:
            thread.join(None if until.timeout_s <= 0 else until.wait_s())
        self.raise_if_failed()
        for other, thread in zip(self._others, self._threads, strict=True):
            if thread.is_alive():
                raise self._still_checking(other)
        # Fail closed: a thread that ended without saying "ready" (killed by something
        # that is not an Exception, say) is not ready.
        missing = sorted({other.shown for other in self._others} - set(self._ready))
        if missing:
            raise RuntimeError(f"--also checks ended without reporting ready: {missing}")

    def _still_checking(self, target: Target) -> GatewayTimeout:
        last = self._last_failure.get(target.shown)
        reason = last.failure.reason if last is not None else Reason.NO_REPLY
        error = GatewayTimeout(
            f"{target.shown} did not answer within {self._deadline.timeout_s:g} s "
            "(its check was still running at the deadline)",
            hint=_hint_for(target)(reason),
            attempts=last.attempt + 1 if last is not None else 1,
            last_reason=reason.value,
            elapsed_s=round(self._deadline.elapsed(), 3),
        )
        error.target = target.shown
        return error


def _hint_for(target: Target) -> Callable[[Reason], str]:
    """A dependency's hints: a gateway's for a ZeroMQ target, else what the reason means
    for any service."""

    def hint(reason: Reason) -> str:
        return (
            reason.hint_for(target.host, target.port)
            if target.kind.gateway
            else dependency_hint(reason, target.shown)
        )

    return hint
