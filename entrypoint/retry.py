"""The retry policy, as data: what is retried, the backoff, the stop rule, and a hook.

Only ``AttemptFailed`` is retried. Three configuration errors in a row (``not_zmq``,
``protocol``, ``auth``) end the wait with ``GatewayMisconfigured``; the deadline ends it
with ``GatewayTimeout``. Each failed attempt is handed to a hook as a frozen
``AttemptDetails`` (stamina's pattern); ``AttemptLog``, the default hook, decides what is
logged. Backoff pauses are spent in the check's ``watch_pause`` (for the gateway, a
request queued on a ZeroMQ socket), so a target that comes back in the middle of a long
pause is noticed at once rather than at the next attempt.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import tenacity

from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed, GatewayMisconfigured, GatewayTimeout
from entrypoint.log import events
from entrypoint.log.events import emit
from entrypoint.log.logs import untrusted
from entrypoint.process.signals import raise_if_pending
from entrypoint.reasons import Reason

CONFIG_ERRORS_BEFORE_GIVING_UP = 3
# The same not_ready reply this many times in a row is worth saying plainly, once: the
# bridge answers, but the judgement rejects what it says (it may still be starting, so the
# wait goes on).
SAME_REFUSAL_TO_EXPLAIN = 3
# Log every failed attempt while they are few; after that at most one line per interval
# (plus one whenever the reason changes), each carrying what it summarises.
LOG_EVERY_ATTEMPT_UP_TO = 10
LOG_SUMMARY_INTERVAL_S = 60.0


class BackoffWithJitter(tenacity.wait.wait_base):
    """Exponential backoff with "equal jitter": step/2 plus a random part of step/2.

    The step doubles from ``initial`` up to ``maximum``. The random part comes from an
    OS-seeded generator in every process, so containers restarted together spread out
    instead of retrying in lockstep, while no pause is ever shorter than half its step.
    """

    def __init__(
        self, initial_s: float, maximum_s: float, rng: random.Random | None = None
    ) -> None:
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.rng = rng if rng is not None else random.SystemRandom()

    def step(self, attempt_number: int) -> float:
        exponent = min(attempt_number - 1, 64)  # 2**64 * anything positive saturates anyway
        return float(min(self.maximum_s, self.initial_s * 2.0**exponent))

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        step = self.step(retry_state.attempt_number)
        return step / 2 + self.rng.uniform(0, step / 2)


def _bare_hint(reason: Reason) -> str:
    return reason.hint_for("$GATEWAY_HOST", "$GATEWAY_PORT")


@dataclasses.dataclass(frozen=True)
class AttemptDetails:
    """What the hook is told about one failed attempt."""

    attempt: int
    failure: AttemptFailed
    elapsed_s: float
    next_retry_s: float | None  # None: this was the last attempt
    # "pause": a refusal to the request held in the pause after attempt ``attempt`` (its
    # gate.reply line is written; it counts toward gate.reply_rejected like any refusal).
    via: str = "attempt"


class AttemptLog:
    """The default hook: logs failed attempts in full while sparse, then as bounded-rate
    summaries; and says once when the same well-formed refusal keeps coming."""

    def __init__(
        self,
        log: Any,
        clock: Callable[[], float] = time.monotonic,
        hint: Callable[[Reason], str] = _bare_hint,
    ) -> None:
        self._log = log
        self._clock = clock
        self.hint = hint
        self._last_logged_at = -math.inf
        self._last_reason: Reason | None = None
        self._suppressed: Counter[str] = Counter()
        self._refusal: tuple[str, int] = ("", 0)
        self._explained: set[str] = set()

    def __call__(self, details: AttemptDetails) -> None:
        failure = details.failure
        self._watch_refusals(failure)
        if details.via != "attempt":
            return  # a pause's reply has its own line (gate.reply)
        now = self._clock()
        due = (
            details.attempt <= LOG_EVERY_ATTEMPT_UP_TO
            or failure.reason != self._last_reason
            or now - self._last_logged_at >= LOG_SUMMARY_INTERVAL_S
        )
        self._last_reason = failure.reason
        if not due:
            self._suppressed[failure.reason.value] += 1
            return
        extra: dict[str, Any] = {}
        if self._suppressed:
            extra = {
                "suppressed": sum(self._suppressed.values()),
                "suppressed_reasons": dict(self._suppressed),
            }
            self._suppressed.clear()
        self._last_logged_at = now
        if failure.broker_state is not None:
            extra["broker_state"] = failure.broker_state
        emit(
            self._log,
            events.ATTEMPT_FAILED,
            attempt=details.attempt,
            stage=failure.stage,
            reason=failure.reason.value,
            error=failure.error,
            elapsed_s=round(details.elapsed_s, 3),
            next_retry_s=None if details.next_retry_s is None else round(details.next_retry_s, 3),
            hint=failure.advice or self.hint(failure.reason),
            **extra,
        )

    def _watch_refusals(self, failure: AttemptFailed) -> None:
        if failure.same_as is None:
            self._refusal = ("", 0)
            return
        same = self._refusal[1] + 1 if self._refusal[0] == failure.same_as else 1
        self._refusal = (failure.same_as, same)
        if same == SAME_REFUSAL_TO_EXPLAIN and failure.same_as not in self._explained:
            self._explained.add(failure.same_as)
            emit(
                self._log,
                events.REPLY_REJECTED,
                replies=same,
                reply=untrusted(failure.reply),
                error=failure.error,
                message="the bridge answers, but the readiness judgement rejects its reply: "
                "if the bridge is healthy, this is its dialect, not an outage",
                fix="set GATE_READY_WHEN (and GATE_PING_REQUEST) for this bridge's dialect; "
                "see `mt5-gate explain --bridge` and try them with `mt5-gate probe`",
            )


_CUT_SHORT = frozenset({Reason.TIMEOUT, Reason.NO_REPLY, Reason.DNS})


T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Attempts(Protocol[T_co]):
    """What ``wait_until_ready`` retries: ``GatewayCheck`` for the gateway (its outcome is a
    ``Ready``), or an ``--also`` target (its outcome is a detail)."""

    def attempt(self, deadline: Deadline) -> T_co: ...

    def watch_pause(self, seconds: float, deadline: Deadline) -> T_co | AttemptFailed | None:
        """Spend a pause watching: an outcome caught, a refusal heard, or nothing."""
        ...


class _DeadlinePassed(Exception):
    """Raised instead of an attempt once the deadline has gone by during a pause."""


def stop_at(deadline: Deadline) -> Callable[[tenacity.RetryCallState], bool]:
    """The stop rule: when the deadline has passed (never, for ``--timeout 0``)."""
    return lambda _state: deadline.expired()


class _ConfigErrorStreak:
    """Configuration errors in a row: the third ends the wait, since waiting cannot fix
    something that answers but is not the gateway. An inconclusive failure between them
    (a handshake dropped without a word, which a peer of the wrong socket type does about
    as often as it reports the mismatch on a loaded machine) neither counts nor breaks the
    row: it used to break it every time, and such a peer was waited for until --timeout."""

    def __init__(self, hint: Callable[[Reason], str]) -> None:
        self.hint = hint
        self.count = 0

    def record(self, failure: AttemptFailed) -> bool:
        """True when this failure ends the wait."""
        if failure.inconclusive:
            return False
        self.count = self.count + 1 if failure.reason.is_configuration_error else 0
        return self.count >= CONFIG_ERRORS_BEFORE_GIVING_UP

    def error(self, failure: AttemptFailed) -> GatewayMisconfigured:
        return GatewayMisconfigured(
            f"{failure.stage}: {failure.error}",
            hint=self.hint(failure.reason),
            reason=failure.reason.value,
        )


class _Wait(Generic[T]):
    """The state of one wait: its attempts, its last failure, what a pause caught. Its
    methods are the steps tenacity calls: attempt, next_pause, before_pause, pause."""

    def __init__(
        self,
        check: Attempts[T],
        deadline: Deadline,
        *,
        backoff: BackoffWithJitter,
        on_failure: Callable[[AttemptDetails], None],
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        before_attempt: Callable[[], None] | None,
        hint: Callable[[Reason], str],
    ) -> None:
        self.check = check
        self.deadline = deadline
        self.backoff = backoff
        self.on_failure = on_failure
        self.sleep = sleep
        self.clock = clock
        self.before_attempt = before_attempt
        self.streak = _ConfigErrorStreak(hint)
        self.attempts = 0
        self.last_failure: AttemptFailed | None = None
        self.caught_in_pause: list[T] = []

    def attempt(self) -> T:
        raise_if_pending()  # a stop signal swallowed by a finalizer still ends the wait
        if self.caught_in_pause:
            return self.caught_in_pause.pop()
        if self.before_attempt is not None:
            self.before_attempt()
        if self.deadline.expired():
            raise _DeadlinePassed
        self.attempts += 1
        try:
            return self.check.attempt(self.deadline)
        except AttemptFailed as failure:
            if (
                self.deadline.expired()
                and failure.reason in _CUT_SHORT
                and self.last_failure is not None
            ):
                # The deadline truncated this attempt's timeout: that says nothing new about
                # the target, so the previous, real reason stays the one reported.
                raise _DeadlinePassed from None
            self.last_failure = failure
            if self.streak.record(failure):
                self.report(failure, None)
                raise self.streak.error(failure) from None
            raise

    def report(self, failure: AttemptFailed, next_retry_s: float | None) -> None:
        self.on_failure(
            AttemptDetails(self.attempts, failure, self.deadline.elapsed(), next_retry_s)
        )

    def next_pause(self, retry_state: tenacity.RetryCallState) -> float:
        return min(self.backoff(retry_state), self.deadline.remaining())

    def before_pause(self, retry_state: tenacity.RetryCallState) -> None:
        assert self.last_failure is not None
        assert retry_state.next_action is not None
        self.report(self.last_failure, retry_state.next_action.sleep)

    def pause(self, seconds: float) -> None:
        """Spend the pause watching the target; sleep only what watching did not use."""
        raise_if_pending()
        started = self.clock()
        caught = self.check.watch_pause(seconds, self.deadline)
        if isinstance(caught, AttemptFailed):
            self.last_failure = caught
            self.on_failure(
                AttemptDetails(self.attempts, caught, self.deadline.elapsed(), None, via="pause")
            )
        elif caught is not None:
            self.caught_in_pause.append(caught)
            return
        rest = seconds - (self.clock() - started)
        if rest > 0:
            self.sleep(rest)


def wait_until_ready(
    check: Attempts[T],
    deadline: Deadline,
    log: Any,
    *,
    backoff: BackoffWithJitter,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    before_attempt: Callable[[], None] | None = None,
    hint: Callable[[Reason], str] = _bare_hint,
    on_failure: Callable[[AttemptDetails], None] | None = None,
    name: str = "the gateway",
) -> tuple[T, int]:
    """Retry ``check`` until it succeeds; return (its outcome, attempt number) or raise.

    ``before_attempt`` runs before each attempt and may raise to end the wait early (the
    gate uses it to stop when a ``--also`` target has already failed for good).
    ``on_failure`` is told about every failed attempt (default: ``AttemptLog``).
    """
    wait = _Wait(
        check,
        deadline,
        backoff=backoff,
        on_failure=on_failure or AttemptLog(log, clock, hint),
        sleep=sleep,
        clock=clock,
        before_attempt=before_attempt,
        hint=hint,
    )
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(AttemptFailed),
        stop=stop_at(deadline),
        wait=wait.next_pause,
        sleep=wait.pause,
        before_sleep=wait.before_pause,
        reraise=True,
    )
    try:
        outcome = retrying(wait.attempt)
    except (_DeadlinePassed, AttemptFailed) as exc:
        if isinstance(exc, AttemptFailed):  # the deadline ran out during it: not yet told
            wait.report(exc, None)
        last = wait.last_failure
        reason = last.reason if last else Reason.TIMEOUT
        # A bridge that answered with a refusal did answer: say so. A silence with a known
        # meaning (a broker with no EA attached) is said in its words, not as a dead bridge.
        verdict = (
            "was not ready (it answered with a refusal)"
            if reason is Reason.NOT_READY
            else f"was not ready ({last.broker_state})"
            if last is not None and last.broker_state is not None
            else "did not answer"
        )
        raise GatewayTimeout(
            f"{name} {verdict} within {deadline.timeout_s:g} s",
            hint=last.advice if last is not None and last.advice else hint(reason),
            attempts=wait.attempts,
            last_reason=reason.value,
            elapsed_s=round(deadline.elapsed(), 3),
        ) from None
    return outcome, wait.attempts
