"""The one time budget of a wait, carried down to the socket calls.

``Deadline`` is an absolute point on the monotonic clock. Every layer asks it how long it
may still wait (``remaining``), or for a share of that (``capped``), instead of rebuilding
"time left" from floats: so a stage can never be handed a budget the one before it spent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

# The least a blocking call is given: past its deadline it returns (or raises) at once.
MIN_BLOCKING_S = 1e-6


class Deadline:
    """An absolute point on the monotonic clock; ``timeout_s == 0`` means never."""

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.timeout_s = timeout_s
        self._end = self.started + timeout_s if timeout_s > 0 else math.inf

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    def wait_s(self) -> float:
        """What to hand a blocking call (``settimeout``, ``Event.wait``): the time left,
        never 0, which ``settimeout`` would take for "non-blocking"."""
        return max(MIN_BLOCKING_S, self._end - self._clock())

    @property
    def limit_s(self) -> float:
        """How long this deadline was, for messages ("no answer within 2 s")."""
        return round(self._end - self.started, 3)

    def elapsed(self) -> float:
        return self._clock() - self.started

    def expired(self) -> bool:
        return self.remaining() <= 0

    def capped(self, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now, or this one if it comes sooner: a stage's
        own limit within the whole budget."""
        inner = Deadline(seconds, self._clock)
        inner._end = min(inner._end, self._end)
        return inner
