"""When a message should go out: the customer's best local hour, inside the campaign's send window,
at or after the moment the run looks from. Stored in UTC for activation to schedule."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dagster_project.timezones import customer_zone


def send_at(reference_utc: datetime, tz_name: str | None, best_hour: int | None, window: tuple[int, int]) -> datetime:
    """Naive UTC datetime of the next local `best_hour` (clamped to [start, end)) at or after `reference_utc`."""
    start, end = window
    hour = min(max(best_hour if best_hour is not None else start, start), end - 1)
    zone = customer_zone(tz_name)
    local_now = reference_utc.replace(tzinfo=timezone.utc).astimezone(zone)
    candidate = local_now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if candidate < local_now:
        candidate = (candidate.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=zone)
    return candidate.astimezone(timezone.utc).replace(tzinfo=None)
