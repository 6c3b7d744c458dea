"""When a journey's wait step ends: after so many hours, or at a local time of day in the customer's
timezone (after at least so many days, on allowed weekdays). Times in and out are naive UTC, as in the
send ledger; the timezone is resolved as everywhere else (dagster_project.timezones; unknown: UTC)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone

from dagster_project.timezones import customer_zone  # also imported from here by journey callers

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order


def wait_ends(wait: Mapping, started: datetime, tz_name: str | None) -> datetime:
    """The end of a wait (spec.py's checked settings) that started at `started`.

    {hours: N}: N hours later. {until_local: "HH:MM", after_days: N, weekdays: [...]}: the first
    moment after `started` when the customer's clock shows HH:MM, on a day at least N local days after
    the start and on an allowed weekday. A wall time a DST change skips (02:30 when clocks jump from
    02:00 to 03:00) is read with the offset before the change, so it lands just after the jump; a wall
    time that happens twice (clocks going back) is its first occurrence."""
    if "hours" in wait:
        return started + timedelta(hours=float(wait["hours"]))
    zone = customer_zone(tz_name)
    hour, minute = (int(part) for part in wait["until_local"].split(":"))
    allowed = {WEEKDAYS.index(day) for day in wait.get("weekdays", WEEKDAYS)}
    first_day = _local(started, zone).date() + timedelta(days=int(wait.get("after_days", 0)))
    for offset in range(15):  # two weeks always hold an allowed weekday after a skipped first day
        day = first_day + timedelta(days=offset)
        if day.weekday() not in allowed:
            continue
        candidate = _utc(day, time(hour, minute), zone)
        if candidate > started:
            return candidate
    raise ValueError(f"no allowed weekday in {sorted(allowed)}")  # spec.py refuses an empty list


def _local(instant: datetime, zone) -> datetime:
    return instant.replace(tzinfo=timezone.utc).astimezone(zone)


def _utc(day: date, wall: time, zone) -> datetime:
    return datetime.combine(day, wall, tzinfo=zone).astimezone(timezone.utc).replace(tzinfo=None)
