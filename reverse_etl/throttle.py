"""Pacing and protection per destination: a token bucket, exponential backoff with jitter, and a
circuit breaker. Clocks and sleeps are injectable so tests drive them without waiting."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class TokenBucket:
    """At most `rate` requests per second on average, with bursts up to `burst`; rate 0 = unlimited."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate = rate
        self.capacity = max(1.0, burst if burst is not None else rate)
        self.tokens = self.capacity
        self._clock, self._sleep = clock, sleep
        self._updated = clock()
        self.waited_seconds = 0.0

    def acquire(self) -> None:
        if self.rate <= 0:
            return
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self.tokens < 1:
            # Wait for the missing fraction, then take the token: re-checking a refilled float could
            # fall short by a rounding error and spin.
            wait = (1 - self.tokens) / self.rate
            self.waited_seconds += wait
            self._sleep(wait)
            self.tokens, self._updated = 1.0, max(self._clock(), self._updated + wait)
        self.tokens -= 1


@dataclass
class Backoff:
    """Full-jitter exponential backoff: attempt n waits uniform(0, min(cap, base * 2**(n-1))), or what
    the provider asked for (Retry-After / X-RateLimit-Reset) when it said so."""

    base_seconds: float = 1.0
    cap_seconds: float = 60.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(self.cap_seconds, max(0.0, retry_after))
        return self.rng.uniform(0, min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempt - 1)))


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; after `reset_seconds` lets one trial request
    through (half-open): success closes it, failure opens it again."""

    def __init__(self, threshold: int, reset_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self.times_opened = 0

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self.opened_at >= self.reset_seconds else "open"

    def allows(self) -> bool:
        return self.state != "open"

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        if self.state == "half_open" or self.consecutive_failures >= self.threshold:
            self.trip()

    def trip(self) -> None:
        """Open now (a destination that cannot work until someone fixes it)."""
        self.opened_at = self._clock()
        self.times_opened += 1
