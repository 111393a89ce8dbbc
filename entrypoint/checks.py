"""Named checks with their own timeouts, run concurrently, each ending in a ``CheckResult``.

A check is a function of its timeout that returns a short detail or raises: AttemptFailed
(a classified failure), NotPermitted (reported as skipped), MissingExtra (a warning
saying what to install). All checks start together, so a set of dead targets costs about
the longest single timeout, not the sum.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed, MissingExtra, NotPermitted

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
# A check's thread gets this long past its own timeout before it is reported as stuck.
GRACE_S = 0.5


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    phase: str
    run: Callable[[Deadline], str]
    timeout_s: float
    critical: bool = False
    # (host, port) of the MT5 gateway this check is about: the reasons' hints speak of the
    # gateway, so other targets get the bare reason.
    about_gateway: tuple[str, int] | None = None


@dataclasses.dataclass(frozen=True)
class CheckResult:
    name: str
    phase: str
    status: str
    detail: str
    duration_ms: float
    critical: bool = False
    reason: str | None = None
    hint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_check(check: Check) -> CheckResult:
    started = time.monotonic()

    def result(status: str, detail: str, **extra: Any) -> CheckResult:
        took = round((time.monotonic() - started) * 1000, 1)
        return CheckResult(check.name, check.phase, status, detail, took, check.critical, **extra)

    try:
        return result(PASS, check.run(Deadline(check.timeout_s)))
    except AttemptFailed as failure:
        return result(
            FAIL,
            f"{failure.reason}: {failure.error}",
            reason=failure.reason.value,
            hint=failure.reason.hint_for(*check.about_gateway) if check.about_gateway else None,
        )
    except NotPermitted as exc:
        return result(SKIP, f"not permitted: {exc}")
    except MissingExtra as exc:
        return result(WARN, str(exc))
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        return result(FAIL, f"internal error: {type(exc).__name__}: {exc}")


def run_concurrently(checks: Sequence[Check]) -> list[CheckResult]:
    """Run every check on its own daemon thread; results come back in the given order."""
    results: list[CheckResult | None] = [None] * len(checks)
    done = [threading.Event() for _ in checks]

    def work(index: int) -> None:
        results[index] = run_check(checks[index])
        done[index].set()

    started = Deadline(0)  # never expires: only measures
    given = [Deadline(check.timeout_s + GRACE_S) for check in checks]
    for index in range(len(checks)):
        threading.Thread(target=work, args=(index,), name=f"check-{index}", daemon=True).start()
    final: list[CheckResult] = []
    for index, check in enumerate(checks):
        done[index].wait(given[index].remaining())
        result = results[index]
        if result is None:  # stuck past its own timeout (e.g. a resolver that never answers)
            result = CheckResult(
                check.name,
                check.phase,
                FAIL,
                f"did not finish within {check.timeout_s:g} s",
                round(started.elapsed() * 1000, 1),
                check.critical,
                reason="timeout",
            )
        final.append(result)
    return final
