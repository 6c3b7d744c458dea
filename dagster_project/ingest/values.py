"""Field-level checks shared by every landing source. Each raises Rejected with the reason that
ends up in raw.quarantine, so a reason names the field and what was wrong with it."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import orjson

from dagster_project.addresses import address_problem

# Wider than any price or amount we store (DECIMAL(12,2)); beyond it the row, not the load, fails.
MAX_DECIMAL = 1e10


class Rejected(ValueError):
    """This row cannot be loaded; str(error) is the quarantine reason."""


def text(record: dict, name: str, *, required: bool = False) -> str | None:
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise Rejected(f"missing required field: {name}")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Rejected(f"wrong type: {name} must be a string, got {type(value).__name__}")
    return str(value)


def choice(record: dict, name: str, allowed: frozenset[str]) -> str:
    value = text(record, name, required=True)
    if value not in allowed:
        raise Rejected(f"invalid value: {name}={value[:40]!r} is not one of {', '.join(sorted(allowed))}")
    return value


def obj(record: dict, name: str) -> str | None:
    """A nested object, kept as compact JSON text for the staging models to unpack."""
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Rejected(f"wrong type: {name} must be an object, got {type(value).__name__}")
    return orjson.dumps(value).decode()


def email(value: object, name: str) -> str | None:
    """`value` must be a valid address (addresses.py; spaces around it allowed); `name` labels it."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Rejected(f"wrong type: {name} must be a string, got {type(value).__name__}")
    if problem := address_problem(value):
        raise Rejected(f"invalid email: {name} {problem}")
    return value


class Clock:
    """Parses timestamps to naive UTC and rejects those beyond `now + tolerance` (clock skew)."""

    def __init__(self, now: datetime, future_tolerance: timedelta = timedelta(days=1)):
        self.latest_allowed = now.astimezone(timezone.utc).replace(tzinfo=None) + future_tolerance

    def iso(self, record: dict, name: str, *, required: bool = False) -> str | None:
        value = record.get(name)
        if value is None or value == "":
            if required:
                raise Rejected(f"missing required field: {name}")
            return None
        if not isinstance(value, str):
            raise Rejected(f"wrong type: {name} must be an ISO 8601 string, got {type(value).__name__}")
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise Rejected(f"wrong type: {name}={value[:40]!r} is not an ISO 8601 timestamp") from None
        return self._checked(parsed, name)

    def epoch(self, record: dict, name: str, *, required: bool = False) -> str | None:
        value = record.get(name)
        if value is None:
            if required:
                raise Rejected(f"missing required field: {name}")
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Rejected(f"wrong type: {name} must be Unix seconds, got {type(value).__name__}")
        try:
            parsed = datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise Rejected(f"invalid value: {name}={value} is not a Unix timestamp") from None
        return self._checked(parsed, name)

    def _checked(self, parsed: datetime, name: str) -> str:
        if parsed.tzinfo is not None:
            try:
                parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
            except OverflowError:
                raise Rejected(f"invalid value: {name}={parsed.isoformat()} lies outside the years 1-9999 "
                               "in UTC") from None
        if parsed > self.latest_allowed:
            raise Rejected(f"timestamp in the future: {name}={parsed.isoformat()}")
        return parsed.isoformat(sep=" ")


def boolean(record: dict, name: str, *, required: bool = False) -> bool | None:
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise Rejected(f"missing required field: {name}")
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise Rejected(f"wrong type: {name}={str(value)[:40]!r} is not a boolean")


def decimal(record: dict, name: str, *, required: bool = False) -> float | None:
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise Rejected(f"missing required field: {name}")
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Rejected(f"wrong type: {name}={str(value)[:40]!r} is not a number") from None
    if not math.isfinite(number) or abs(number) >= MAX_DECIMAL:
        raise Rejected(f"invalid value: {name}={str(value)[:40]!r} is not a finite amount below {MAX_DECIMAL:,.0f}")
    return number
