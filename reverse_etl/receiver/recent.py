"""A bounded memory of what the receiver accepted recently: the webhook requests already landed (a
replay of one is refused) and the opt-outs already recorded (a repeat writes nothing new).

Entries are digests, so the memory holds no address, token or body. Each is kept for a fixed window
after it was claimed, so entries expire in the order they were added and pruning is cheap. The memory
is per process: a receiver behind several worker processes can land a replay once per process, which
the ingest then drops as duplicate event ids.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence


class MemoryFull(Exception):
    """Every slot holds a live entry: the caller cannot tell a repeat from a new request."""


class RecentlySeen:
    def __init__(self, window_seconds: float, capacity: int, clock: Callable[[], float] = time.monotonic):
        self.window_seconds = window_seconds
        self.capacity = max(1, capacity)
        self._clock = clock
        self._expiry: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()  # claimed from the event loop and from worker threads

    def claim(self, digest: bytes) -> bool:
        """True when `digest` was not seen within the window (it is remembered from now on); False for
        a repeat. Raises MemoryFull rather than forget a live entry, which would let its repeat through."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            if digest in self._expiry:
                return False
            if len(self._expiry) >= self.capacity:
                raise MemoryFull(f"{self.capacity:,} requests accepted within {self.window_seconds:,.0f} s")
            self._expiry[digest] = now + self.window_seconds
            return True

    def release(self, digest: bytes) -> None:
        """Forget a claim whose work failed, so that a retry of the same request is not taken for a repeat."""
        with self._lock:
            self._expiry.pop(digest, None)

    def __len__(self) -> int:
        with self._lock:
            self._prune(self._clock())
            return len(self._expiry)

    def _prune(self, now: float) -> None:
        while self._expiry:
            digest, expires = next(iter(self._expiry.items()))
            if expires > now:
                return
            del self._expiry[digest]


def digest_of(parts: Sequence[bytes]) -> bytes:
    """SHA-256 over length-prefixed parts, so no two different part lists share a digest."""
    hashed = hashlib.sha256()
    for part in parts:
        hashed.update(len(part).to_bytes(8, "big"))
        hashed.update(part)
    return hashed.digest()
