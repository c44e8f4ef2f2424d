"""A token bucket that paces sends so that no one-second window holds more than N of them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

_MIN_SLEEP = 1e-6  # a sleep too small to move a float clock would spin for ever


class Limiter(Protocol):
    def acquire(self) -> None: ...


class TokenBucket:
    """A bucket of capacity one refilled at `rate` tokens per second; `acquire()` blocks for a token.

    Written as its virtual schedule (the k-th token of a busy run is due at `origin + k / rate`,
    computed by multiplication rather than by adding 1/rate k times), so float rounding cannot let an
    extra send into a window. The clock and sleep are injectable for tests.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._origin: float | None = None
        self._taken = 0

    def acquire(self) -> None:
        now = self._clock()
        if self._origin is None or now > self._due():
            # Idle long enough for the bucket to be full again: a new busy run starts now.
            self._origin, self._taken = now, 0
        while (wait := self._due() - now) > 0:
            self._sleep(max(wait, _MIN_SLEEP))
            now = self._clock()
        self._taken += 1

    def _due(self) -> float:
        assert self._origin is not None
        return self._origin + self._taken / self._rate


class Unlimited:
    def acquire(self) -> None:
        return None
