"""The retry policy, as data: what is retried, the backoff, the deadline, and how it is logged.

Only ``AttemptFailed`` for an outage is retried. Three configuration errors in a row
(``not_zmq``, ``protocol``) end the wait with ``GatewayMisconfigured``; the deadline ends
it with ``GatewayTimeout``. Backoff pauses are spent with a PING queued on a ZeroMQ
socket (``ReadinessCheck.watch_pause``), so a gateway that comes back in the middle of a
long pause is noticed within libzmq's reconnect interval rather than at the next attempt.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

import tenacity

from entrypoint.dialect import NotReady
from entrypoint.errors import GatewayMisconfigured, GatewayTimeout
from entrypoint.logs import untrusted
from entrypoint.readiness import Ready
from entrypoint.reasons import AttemptFailed, Reason

CONFIG_ERRORS_BEFORE_GIVING_UP = 3
# The same not_ready reply this many times in a row is worth saying plainly, once: the
# bridge answers, but the judgement rejects what it says (it may still be starting, so the
# wait goes on).
SAME_REFUSAL_TO_EXPLAIN = 3
# Log every failed attempt while they are few; after that at most one line per interval
# (plus one whenever the reason changes), each carrying what it summarises.
LOG_EVERY_ATTEMPT_UP_TO = 10
LOG_SUMMARY_INTERVAL_S = 60.0


class Deadline:
    """An absolute point on the monotonic clock; ``timeout_s == 0`` means never."""

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.timeout_s = timeout_s
        self._end = self.started + timeout_s if timeout_s > 0 else math.inf

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    def elapsed(self) -> float:
        return self._clock() - self.started

    def expired(self) -> bool:
        return self.remaining() <= 0


class BackoffWithJitter(tenacity.wait.wait_base):
    """Exponential backoff with "equal jitter": step/2 plus a random part of step/2.

    The step doubles from ``initial`` up to ``maximum``. The random part comes from an
    OS-seeded generator in every process, so containers restarted together spread out
    instead of retrying in lockstep, while no pause is ever shorter than half its step.
    """

    def __init__(self, initial_s: float, maximum_s: float,
                 rng: random.Random | None = None) -> None:
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


class AttemptLog:
    """Logs failed attempts in full while sparse, then as bounded-rate summaries."""

    def __init__(self, log: Any, clock: Callable[[], float] = time.monotonic,
                 hint: Callable[[Reason], str] = _bare_hint) -> None:
        self._log = log
        self._clock = clock
        self.hint = hint
        self._last_logged_at = -math.inf
        self._last_reason: Reason | None = None
        self._suppressed: Counter[str] = Counter()
        self._refusal: tuple[str, int] = ("", 0)
        self._explained: set[str] = set()

    def failed(self, attempt: int, failure: AttemptFailed, elapsed_s: float,
               next_retry_s: float | None) -> None:
        self._watch_refusals(failure)
        now = self._clock()
        due = (attempt <= LOG_EVERY_ATTEMPT_UP_TO or failure.reason != self._last_reason
               or now - self._last_logged_at >= LOG_SUMMARY_INTERVAL_S)
        self._last_reason = failure.reason
        if not due:
            self._suppressed[failure.reason.value] += 1
            return
        extra: dict[str, Any] = {}
        if self._suppressed:
            extra = {"suppressed": sum(self._suppressed.values()),
                     "suppressed_reasons": dict(self._suppressed)}
            self._suppressed.clear()
        self._last_logged_at = now
        self._log.warning(
            "gate.attempt_failed", attempt=attempt, stage=failure.stage,
            reason=failure.reason.value, error=failure.error, elapsed_s=round(elapsed_s, 3),
            next_retry_s=None if next_retry_s is None else round(next_retry_s, 3),
            hint=self.hint(failure.reason), **extra,
        )

    def _watch_refusals(self, failure: AttemptFailed) -> None:
        """Say once per distinct reply that the same well-formed refusal keeps coming."""
        if not isinstance(failure, NotReady):
            self._refusal = ("", 0)
            return
        signature = failure.signature()
        same = self._refusal[1] + 1 if self._refusal[0] == signature else 1
        self._refusal = (signature, same)
        if same == SAME_REFUSAL_TO_EXPLAIN and signature not in self._explained:
            self._explained.add(signature)
            self._log.warning(
                "gate.reply_rejected", replies=same, reply=untrusted(failure.reply),
                error=failure.error,
                message="the bridge answers, but the readiness judgement rejects its reply: "
                        "if the bridge is healthy, this is its dialect, not an outage",
                fix="set GATE_READY_WHEN (and GATE_PING_REQUEST) for this bridge's dialect; "
                    "see docs/BRIDGES.md and try them with `mt5-gate probe`",
            )


_CUT_SHORT = frozenset({Reason.TIMEOUT, Reason.NO_REPLY, Reason.DNS})


class Attempts(Protocol):
    """What ``wait_until_ready`` retries: ``ReadinessCheck`` for the gateway, or a dependency."""

    def attempt(self, budget_s: float) -> Ready: ...

    def watch_pause(self, seconds: float) -> Ready | None: ...


class _DeadlinePassed(Exception):
    """Raised instead of an attempt once the deadline has gone by during a pause."""


def wait_until_ready(
    check: Attempts,
    deadline: Deadline,
    log: Any,
    *,
    backoff: BackoffWithJitter,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    before_attempt: Callable[[], None] | None = None,
    hint: Callable[[Reason], str] = _bare_hint,
) -> tuple[Ready, int]:
    """Retry ``check`` until it succeeds; return (Ready, attempt number) or raise.

    ``before_attempt`` runs before each attempt and may raise to end the wait early (the
    gate uses it to stop when a ``--also`` dependency has already failed for good).
    """
    attempt_log = AttemptLog(log, clock, hint)
    caught_in_pause: list[Ready] = []
    consecutive_config_errors = 0
    attempts = 0
    last_failure: AttemptFailed | None = None

    def attempt() -> Ready:
        nonlocal attempts, consecutive_config_errors, last_failure
        if caught_in_pause:
            return caught_in_pause.pop()
        if before_attempt is not None:
            before_attempt()
        if deadline.expired():
            raise _DeadlinePassed
        attempts += 1
        try:
            return check.attempt(deadline.remaining())
        except AttemptFailed as failure:
            if deadline.expired() and failure.reason in _CUT_SHORT and last_failure is not None:
                # The deadline truncated this attempt's timeout: that says nothing new about
                # the gateway, so the previous, real reason stays the one reported.
                raise _DeadlinePassed from None
            last_failure = failure
            if not failure.reason.is_configuration_error:
                consecutive_config_errors = 0
            else:
                consecutive_config_errors += 1
                if consecutive_config_errors >= CONFIG_ERRORS_BEFORE_GIVING_UP:
                    attempt_log.failed(attempts, failure, deadline.elapsed(), None)
                    raise GatewayMisconfigured(
                        f"{failure.stage}: {failure.error}", hint=hint(failure.reason),
                        reason=failure.reason.value) from None
            raise

    def pause(seconds: float) -> None:
        started = clock()
        ready = check.watch_pause(seconds)
        if ready is not None:
            caught_in_pause.append(ready)
            return
        rest = seconds - (clock() - started)
        if rest > 0:
            sleep(rest)

    def next_pause(retry_state: tenacity.RetryCallState) -> float:
        return min(backoff(retry_state), deadline.remaining())

    def before_pause(retry_state: tenacity.RetryCallState) -> None:
        assert last_failure is not None
        assert retry_state.next_action is not None
        attempt_log.failed(attempts, last_failure, deadline.elapsed(),
                           retry_state.next_action.sleep)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(AttemptFailed),
        stop=lambda _state: deadline.expired(),
        wait=next_pause,
        sleep=pause,
        before_sleep=before_pause,
        reraise=True,
    )
    try:
        ready = retrying(attempt)
    except (_DeadlinePassed, AttemptFailed) as exc:
        if isinstance(exc, AttemptFailed):  # the deadline ran out during it: not yet logged
            attempt_log.failed(attempts, exc, deadline.elapsed(), None)
        reason = last_failure.reason if last_failure else Reason.TIMEOUT
        raise GatewayTimeout(
            f"the gateway did not answer within {deadline.timeout_s:g} s",
            hint=hint(reason), attempts=attempts, last_reason=reason.value,
            elapsed_s=round(deadline.elapsed(), 3)) from None
    return ready, attempts
