"""Send-time optimization's planning (pure): candidate slots across timezones and DST changes, held
against presend.delivery_time; the per-run send-time arms; the slot each arm picks."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import available_timezones

from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency

from dagster_project.personalization.variants import Variant, assign_variant
from dagster_project.predictive.scheduling import (
    ARMS,
    EXPLORE,
    FIXED,
    OPTIMIZED,
    Slot,
    candidate_slots,
    explore_bucket,
    plan_send_at,
    send_time_arm,
)
from dagster_project.timezones import customer_zone
from reverse_etl.destinations.sendgrid import CANCEL_DEADLINE
from reverse_etl.presend import delivery_time

ZONES = sorted(available_timezones())
QUIET = [None, (21, 8), (22, 7), (0, 6), (1, 5), (13, 14)]


def wall(at_utc: datetime, tz_name: str | None) -> datetime:
    return at_utc.replace(tzinfo=timezone.utc).astimezone(customer_zone(tz_name))


@lru_cache(maxsize=None)
def offset_changes(tz_name: str, year: int) -> tuple[datetime, ...]:
    """The UTC hours of `year` at which the zone's offset changes (DST and other transitions)."""
    changes, hour = [], datetime(year, 1, 1)
    offset = wall(hour, tz_name).utcoffset()
    while hour.year == year:
        hour += timedelta(hours=1)
        if (new := wall(hour, tz_name).utcoffset()) != offset:
            changes.append(hour)
            offset = new
    return tuple(changes)


@st.composite
def references(draw, tz_name: str) -> datetime:
    """A time in 2020-2030, half the time within three days before (or an hour after) one of the zone's
    offset changes, so the horizon straddles it."""
    year = draw(st.integers(2020, 2030))
    changes = offset_changes(tz_name, year)
    if changes and draw(st.booleans()):
        return draw(st.sampled_from(changes)) - timedelta(minutes=draw(st.integers(-60, 72 * 60)))
    return draw(st.datetimes(datetime(year, 1, 1), datetime(year, 12, 31, 23, 59)))


@st.composite
def windows(draw) -> tuple[int, int]:
    start = draw(st.integers(0, 23))
    return start, draw(st.integers(start + 1, 24))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), tz_name=st.sampled_from([*ZONES, None, "Not/AZone"]), window=windows(),
       quiet=st.sampled_from(QUIET), horizon=st.integers(1, 71))
def test_every_slot_is_allowed_and_delivery_time_keeps_it(data, tz_name, window, quiet, horizon):
    reference = data.draw(references(tz_name or "UTC"))
    slots = candidate_slots(reference, tz_name, window, quiet, horizon)
    for slot in slots:
        local = wall(slot.at_utc, tz_name)
        assert (local.hour, local.isoweekday(), local.minute) == (slot.local_hour, slot.local_dow, 0)
        assert window[0] <= slot.local_hour < window[1]
        assert delivery_time(slot.at_utc, reference, tz_name, quiet) == slot.at_utc  # not in the quiet hours
        assert CANCEL_DEADLINE <= slot.at_utc - reference < timedelta(hours=horizon)
    assert all(a.at_utc < b.at_utc for a, b in zip(slots, slots[1:]))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), tz_name=st.sampled_from(ZONES), window=windows(), quiet=st.sampled_from(QUIET),
       horizon=st.integers(1, 71))
def test_no_allowed_whole_hour_is_missed(data, tz_name, window, quiet, horizon):
    # The reference: every whole local hour, found by stepping UTC by quarter hours (every zone's offset
    # is a multiple of 15 minutes), that presend.delivery_time would not move out of the quiet hours.
    reference = data.draw(references(tz_name))
    expected, seen = [], set()
    start = reference.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)  # sees first occurrences
    for quarters in range(4 * horizon + 12):
        at = start + timedelta(minutes=15 * quarters)
        local = wall(at, tz_name)
        wall_time = local.replace(tzinfo=None)
        if local.minute or wall_time in seen:  # a repeated wall time is only its first occurrence
            continue
        seen.add(wall_time)
        if (CANCEL_DEADLINE <= at - reference < timedelta(hours=horizon) and window[0] <= local.hour < window[1]
                and delivery_time(at, reference, tz_name, quiet) == at):
            expected.append(at)
    assert [s.at_utc for s in candidate_slots(reference, tz_name, window, quiet, horizon)] == expected


def test_spring_forward_has_no_0200_slot():
    # New York, 2026-03-08: clocks go from 02:00 EST to 03:00 EDT. The reference is 00:00 EST.
    slots = candidate_slots(datetime(2026, 3, 8, 5, 0), "America/New_York", (0, 6), None, 6)
    assert [s.local_hour for s in slots] == [1, 3, 4, 5]  # 00:00 is the reference itself, under 10 minutes
    assert [s.at_utc.hour for s in slots] == [6, 7, 8, 9]
    assert {s.local_dow for s in slots} == {7}  # a Sunday


def test_fall_back_has_one_0100_slot_at_its_first_occurrence():
    # New York, 2026-11-01: clocks go back from 02:00 EDT to 01:00 EST. The reference is 23:00 EDT.
    slots = candidate_slots(datetime(2026, 11, 1, 3, 0), "America/New_York", (0, 6), None, 8)
    assert [s.local_hour for s in slots] == [0, 1, 2, 3, 4, 5]
    assert [s.at_utc.hour for s in slots] == [4, 5, 7, 8, 9, 10]  # 01:00 EDT (05:00 UTC), not 01:00 EST


def test_slots_respect_the_cancel_deadline_quiet_hours_and_half_hour_zones():
    # 10 minutes before 08:00 UTC is a slot; 5 minutes before is not.
    assert candidate_slots(datetime(2026, 6, 1, 7, 50), None, (8, 9), None, 2)[0].at_utc == datetime(2026, 6, 1, 8)
    assert candidate_slots(datetime(2026, 6, 1, 7, 55), None, (8, 9), None, 2) == []
    # Quiet hours 21-8 wrap midnight and cut an all-day window to 08-20.
    slots = candidate_slots(datetime(2026, 6, 1, 0, 0), "UTC", (0, 24), (21, 8), 24)
    assert [s.local_hour for s in slots] == list(range(8, 21))
    # Kolkata is at +05:30: its whole hours fall at half past in UTC.
    slots = candidate_slots(datetime(2026, 6, 1, 0, 0), "Asia/Kolkata", (8, 10), None, 24)
    assert [s.at_utc for s in slots] == [datetime(2026, 6, 1, 2, 30), datetime(2026, 6, 1, 3, 30)]
    # An unknown timezone reads as UTC, as everywhere else.
    assert candidate_slots(datetime(2026, 6, 1), "Not/AZone", (8, 9), None, 24)[0].at_utc == datetime(2026, 6, 1, 8)


IDS = [f"c{i:05d}" for i in range(20_000)]


def test_arms_have_their_shares_and_are_stable_per_run():
    holdout, exploration = 0.1, 0.15
    arms = [send_time_arm("weekly_picks", "run1", cid, holdout, exploration) for cid in IDS]
    n = len(IDS)
    for arm, share in ((FIXED, holdout), (EXPLORE, exploration), (OPTIMIZED, 1 - holdout - exploration)):
        assert abs(arms.count(arm) - n * share) <= 4 * math.sqrt(n * share * (1 - share)), arm
    assert arms == [send_time_arm("weekly_picks", "run1", cid, holdout, exploration) for cid in IDS]
    # A new run draws again: nobody stays at the fixed time for good.
    next_run = [send_time_arm("weekly_picks", "run2", cid, holdout, exploration) for cid in IDS]
    assert 0.25 < sum(a != b for a, b in zip(arms, next_run)) / n < 0.5  # 1 - (0.1² + 0.15² + 0.75²) = 0.41


def test_arms_are_independent_of_the_content_variant():
    variants = [Variant("a", 1.0), Variant("b", 1.0)]
    table = [[0, 0, 0], [0, 0, 0]]
    for cid in IDS:
        variant = assign_variant("weekly_picks", cid, variants, 0.0)
        table[variant == "b"][ARMS.index(send_time_arm("weekly_picks", "run1", cid, 0.2, 0.2))] += 1
    assert chi2_contingency(table).pvalue > 0.001


def test_explorers_spread_over_all_slots():
    # Its own hash: with the arm's bucket every explorer would land in the same narrow band of slots.
    explorers = [cid for cid in IDS if send_time_arm("s", "run1", cid, 0.1, 0.1) == EXPLORE]
    picks = [math.floor(explore_bucket("s", "run1", cid) * 10) for cid in explorers]
    assert all(abs(picks.count(i) / len(picks) - 0.1) < 0.03 for i in range(10))
    assert explore_bucket("s", "run1", "c1") == explore_bucket("s", "run1", "c1") != explore_bucket("s", "run2", "c1")


# Monday 2026-06-01 10:30 UTC, 08-20 UTC, 24 h: Monday 11:00-19:00, then Tuesday 08:00-10:00.
SLOTS = candidate_slots(datetime(2026, 6, 1, 10, 30), None, (8, 20), None, 24)


def test_the_fixed_arm_takes_the_fixed_hour_or_the_nearest_later_one():
    assert [(s.local_dow, s.local_hour) for s in (SLOTS[0], SLOTS[-1])] == [(1, 11), (2, 10)]
    assert plan_send_at(FIXED, SLOTS, 10, lambda d, h: 1.0, 0.0) == SLOTS[-1]  # Tuesday 10:00, a day ahead
    assert plan_send_at(FIXED, SLOTS, 15, lambda d, h: 1.0, 0.0).at_utc == datetime(2026, 6, 1, 15)
    # 10:00 cut off (quiet hours, DST, a short horizon): the nearest later hour, not the next slot.
    without_ten = [s for s in SLOTS if s.local_hour != 10]
    assert plan_send_at(FIXED, without_ten, 10, lambda d, h: None, 0.0).at_utc == datetime(2026, 6, 1, 11)
    tuesday_morning = [s for s in SLOTS if s.local_dow == 2]  # 08, 09, 10
    assert plan_send_at(FIXED, tuesday_morning, 8, lambda d, h: None, 0.0).local_hour == 8
    assert plan_send_at(FIXED, tuesday_morning[:2], 9, lambda d, h: None, 0.0).local_hour == 9
    assert plan_send_at(FIXED, tuesday_morning[1:], 7, lambda d, h: None, 0.0).local_hour == 9
    assert plan_send_at(FIXED, tuesday_morning, 19, lambda d, h: None, 0.0) == tuesday_morning[0]  # none later


def test_the_explore_arm_takes_the_slot_its_bucket_points_at():
    assert plan_send_at(EXPLORE, SLOTS, 10, lambda d, h: 9.0, 0.0) == SLOTS[0]
    assert plan_send_at(EXPLORE, SLOTS, 10, lambda d, h: 9.0, 0.5) == SLOTS[len(SLOTS) // 2]
    assert plan_send_at(EXPLORE, SLOTS, 10, lambda d, h: 9.0, 0.9999) == SLOTS[-1]


def test_the_optimized_arm_takes_the_best_score_earliest_on_a_tie():
    scores = {(1, 14): 0.3, (2, 9): 0.3, (1, 12): 0.2, (2, 8): -1.0}
    best = plan_send_at(OPTIMIZED, SLOTS, 10, lambda d, h: scores.get((d, h)), 0.0)
    assert (best.local_dow, best.local_hour) == (1, 14)  # ties with Tuesday 09:00, which comes later
    negative = plan_send_at(OPTIMIZED, SLOTS, 10, lambda d, h: -5.0 if h != 16 else -4.0, 0.0)
    assert negative.local_hour == 16  # a known score, however low, beats an unknown one
    assert plan_send_at(OPTIMIZED, SLOTS, 10, lambda d, h: None, 0.0) == SLOTS[-1]  # all unknown: fixed 10:00


def test_no_slots_means_no_plan_and_an_unknown_arm_is_refused():
    assert plan_send_at(OPTIMIZED, [], 10, lambda d, h: 1.0, 0.5) is None
    assert plan_send_at(FIXED, [], 10, lambda d, h: 1.0, 0.5) is None
    try:
        plan_send_at("sometimes", SLOTS, 10, lambda d, h: 1.0, 0.5)
    except ValueError as error:
        assert "'sometimes' is not one of fixed, explore, optimized" in str(error)
    else:
        raise AssertionError("an unknown arm was accepted")


def test_slot_is_a_frozen_value():
    slot = Slot(datetime(2026, 6, 1, 8), 1, 8)
    assert slot == Slot(datetime(2026, 6, 1, 8), 1, 8) and hash(slot) == hash(Slot(datetime(2026, 6, 1, 8), 1, 8))
