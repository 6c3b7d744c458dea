"""Every request to a CRM goes through a Pacer: a token bucket keeps it under the destination's rate,
and a transient failure is retried with full-jitter exponential backoff (or the wait the destination
asked for), up to max_attempts, after which the caller's rows stay unacknowledged for the next run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from reverse_etl.sync.errors import RetriesExhausted, TransientFailure
from reverse_etl.throttle import Backoff, TokenBucket

T = TypeVar("T")


class Pacer:
    def __init__(self, rate_per_second: float, max_attempts: int, backoff: Backoff | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.bucket = TokenBucket(rate_per_second, clock=clock, sleep=sleep)
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self.requests = 0
        self.retries = 0
        self.waits: list[float] = []  # backoff waits, in order (what a 429's Retry-After turned into)

    def call(self, request: Callable[[], T], what: str) -> T:
        """request() under the rate limit, retried on TransientFailure; RetriesExhausted when it keeps failing."""
        for attempt in range(1, self.max_attempts + 1):
            self.bucket.acquire()
            self.requests += 1
            try:
                return request()
            except TransientFailure as failure:
                if attempt == self.max_attempts:
                    raise RetriesExhausted(
                        f"{what} failed {attempt} times in a row, last with: {failure}; its rows stay "
                        "unacknowledged and the next run sends them again"
                    ) from failure
                self.retries += 1
                wait = self.backoff.delay(attempt, failure.retry_after)
                self.waits.append(wait)
                self._sleep(wait)
        raise AssertionError("unreachable")
