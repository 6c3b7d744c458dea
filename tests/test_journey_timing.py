"""Journey waits: hours, and local times of day across timezones, weekdays and DST changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from dagster_project.journeys.timing import WEEKDAYS, customer_zone, wait_ends

ZONES = ["America/Los_Angeles", "Europe/London", "Asia/Tokyo", "Australia/Lord_Howe", "America/St_Johns",
         "Pacific/Chatham", None, "Not/AZone"]


def local(instant: datetime, tz_name: str | None) -> datetime:
    return instant.replace(tzinfo=timezone.utc).astimezone(customer_zone(tz_name))


def test_hours_count_from_the_start():
    assert wait_ends({"hours": 1.5}, datetime(2026, 11, 2, 23, 0), "Asia/Tokyo") == datetime(2026, 11, 3, 0, 30)


def test_a_local_time_is_today_when_it_is_still_ahead_else_the_next_allowed_day():
    nine = {"until_local": "09:00", "after_days": 0, "weekdays": WEEKDAYS}
    # 07:00 in Tokyo (22:00 UTC the day before): 09:00 Tokyo the same local day, 00:00 UTC.
    assert wait_ends(nine, datetime(2026, 11, 1, 22, 0), "Asia/Tokyo") == datetime(2026, 11, 2, 0, 0)
    # 10:00 in Tokyo: tomorrow.
    assert wait_ends(nine, datetime(2026, 11, 2, 1, 0), "Asia/Tokyo") == datetime(2026, 11, 3, 0, 0)
    # Three local days later, weekdays only: Friday 2026-11-06 + 3 days is Monday the 9th.
    weekdays = {"until_local": "09:00", "after_days": 3, "weekdays": ("mon", "tue", "wed", "thu", "fri")}
    assert wait_ends(weekdays, datetime(2026, 11, 5, 23, 0), "Asia/Tokyo") == datetime(2026, 11, 9, 0, 0)
    # An unknown timezone reads as UTC.
    assert wait_ends(nine, datetime(2026, 11, 2, 8, 0), "Not/AZone") == datetime(2026, 11, 2, 9, 0)


def test_a_wall_time_that_dst_skips_lands_just_after_the_jump():
    # Los Angeles, 2027-03-14: clocks go from 02:00 to 03:00. 02:30 does not exist that night.
    ends = wait_ends({"until_local": "02:30", "after_days": 0}, datetime(2027, 3, 14, 8, 0), "America/Los_Angeles")
    assert ends == datetime(2027, 3, 14, 10, 30)  # 03:30 PDT, one hour after the jump
    assert local(ends, "America/Los_Angeles").hour == 3


@settings(max_examples=400, deadline=None)
@given(started=st.datetimes(datetime(2020, 1, 1), datetime(2035, 1, 1)), tz_name=st.sampled_from(ZONES),
       hour=st.integers(0, 23), minute=st.integers(0, 59), after_days=st.integers(0, 4),
       weekdays=st.sets(st.sampled_from(WEEKDAYS), min_size=1))
def test_a_local_time_wait_ends_at_the_first_allowed_moment_after_its_start(started, tz_name, hour, minute,
                                                                          after_days, weekdays):
    wait = {"until_local": f"{hour:02d}:{minute:02d}", "after_days": after_days, "weekdays": tuple(weekdays)}
    ends = wait_ends(wait, started, tz_name)
    assert ends > started
    wall = local(ends, tz_name)
    first_day = local(started, tz_name).date() + timedelta(days=after_days)
    assert wall.date() >= first_day and WEEKDAYS[wall.weekday()] in weekdays
    # The clock shows the time asked for, unless DST skipped it that day (then it is just after the jump).
    if (wall.hour, wall.minute) != (hour, minute):
        assert wall.utcoffset() != local(ends - timedelta(hours=3), tz_name).utcoffset()
    # No earlier allowed day would have done: each one's moment had passed at the start.
    day = first_day
    while day < wall.date():
        if WEEKDAYS[day.weekday()] in weekdays:
            earlier = datetime(day.year, day.month, day.day, hour, minute, tzinfo=customer_zone(tz_name))
            assert earlier.astimezone(timezone.utc).replace(tzinfo=None) <= started
        day += timedelta(days=1)
