"""Identifiers that look random but can never collide: a counter, scrambled by multiplying with an
odd constant modulo 2**32 (a bijection), fills the first 32 bits; random bits fill the rest. Keys that
ingest deduplicates on (messageId, sg_event_id, event_id, order ids) must only repeat on purpose."""

from __future__ import annotations

import base64

_SCRAMBLE = 0x9E3779B1  # odd, so n -> n * _SCRAMBLE mod 2**32 is a permutation
_MASK32 = 0xFFFFFFFF


class Ids:
    def __init__(self, rng):
        self._rng = rng
        self._count = 0

    def _next(self) -> int:
        self._count += 1
        return (self._count * _SCRAMBLE) & _MASK32

    def uuid(self) -> str:
        """A UUID4-shaped string (Segment messageId, anonymousId, cart id)."""
        self._count += 1
        head = (self._count * _SCRAMBLE) & _MASK32
        tail = self._rng.getrandbits(92)
        # version nibble 4 and variant 8-b, like uuid.uuid4()
        return (f"{head:08x}-{tail >> 76:04x}-4{(tail >> 64) & 0xFFF:03x}-"
                f"{0x8000 | ((tail >> 48) & 0x3FFF):04x}-{tail & 0xFFFFFFFFFFFF:012x}")

    def token(self) -> str:
        """22 URL-safe characters, like SendGrid's sg_event_id."""
        raw = self._next().to_bytes(4, "big") + self._rng.getrandbits(96).to_bytes(12, "big")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def number(self) -> str:
        """A unique ten-digit decimal id (order numbers)."""
        return f"{self._next():010d}"

    def hex(self, length: int = 16) -> str:
        return f"{self._next():08x}{self._rng.getrandbits(4 * (length - 8)):0{length - 8}x}"
