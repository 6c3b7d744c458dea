"""Send-time optimization's planning: the candidate delivery times of a run in a timezone, the
customer's send-time arm, and the one slot the arm picks (docs/design/predictive.md, section 4).

Pure: no database. Times in and out are naive UTC, as in the send ledger. Every candidate lies inside
the campaign's send window and outside the quiet hours, so `presend.delivery_time` leaves it as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from dagster_project.personalization.variants import assignment_bucket
from dagster_project.timezones import customer_zone
from reverse_etl.destinations.sendgrid import CANCEL_DEADLINE

FIXED, EXPLORE, OPTIMIZED = "fixed", "explore", "optimized"  # send-time arms; fixed is the control
ARMS = (FIXED, EXPLORE, OPTIMIZED)
_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Slot:
    """A candidate delivery time: a whole hour on the customer's clock."""

    at_utc: datetime  # naive UTC
    local_dow: int  # ISO weekday, 1 (Monday) to 7 (Sunday)
    local_hour: int  # 0-23


def candidate_slots(reference_utc: datetime, tz_name: str | None, window: tuple[int, int],
                    quiet_hours: tuple[int, int] | None, horizon_hours: int) -> list[Slot]:
    """Every whole local hour in [reference, reference + horizon) whose hour is in [window start, end)
    and outside the quiet hours (a start after the end wraps midnight, as in presend), at least
    SendGrid's cancel deadline after the reference, sorted by time. A wall time a DST change skips is
    dropped; one that happens twice is its first occurrence. Depends only on the timezone, not the
    customer: callers compute it once per (timezone, run)."""
    zone = customer_zone(tz_name)
    earliest = reference_utc + CANCEL_DEADLINE  # a crashed run must still be able to cancel the batch
    until = reference_utc + horizon_hours * _HOUR
    start, end = window
    # Walk the wall clock, not UTC: in a zone at +05:30 the whole local hours fall at :30 UTC.
    wall = _local(reference_utc, zone).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    slots = []
    while True:
        at = _utc(wall, zone)  # fold=0: a wall time that happens twice is its first occurrence
        if at >= until:
            return slots
        hour = wall.hour
        if (at >= earliest and start <= hour < end and not _quiet(hour, quiet_hours)
                and _local(at, zone).replace(tzinfo=None) == wall):  # else DST skipped this wall time
            slots.append(Slot(at, wall.isoweekday(), hour))
        wall += _HOUR


def send_time_arm(salt: str, run_key: str, customer_id: str, holdout_share: float, exploration_share: float) -> str:
    """fixed (the holdout, at the campaign's fixed hour), explore or optimized. Drawn per run, like
    in_test_fraction, so nobody stays at the fixed time for good; the hash differs from the content
    variant's, so the two experiments are factorial."""
    u = assignment_bucket(f"{salt}|send_time|{run_key}", customer_id)
    if u < holdout_share:
        return FIXED
    return EXPLORE if u < holdout_share + exploration_share else OPTIMIZED


def explore_bucket(salt: str, run_key: str, customer_id: str) -> float:
    """The explore arm's uniform draw of a slot: its own hash, since the arm's bucket is confined to
    [holdout_share, holdout_share + exploration_share) for every explorer."""
    return assignment_bucket(f"{salt}|send_time|{run_key}|explore", customer_id)


def plan_send_at(arm: str, slots: Sequence[Slot], fixed_hour: int,
                 score: Callable[[int, int], float | None], explore_u: float) -> Slot | None:
    """The slot the arm picks; None without slots (the caller keeps today's send time).

    fixed: the fixed hour (fixed_slot). explore: slot floor(explore_u * n). optimized: the highest
    `score(local_dow, local_hour)`, ties to the earliest; None is unknown, and with every score unknown
    the fixed rule decides."""
    if arm not in ARMS:
        raise ValueError(f"send-time arm {arm!r} is not one of {', '.join(ARMS)}")
    if not slots:
        return None
    if arm == EXPLORE:
        return slots[min(int(explore_u * len(slots)), len(slots) - 1)]  # min(): explore_u is below 1
    if arm == OPTIMIZED:
        best, best_score = None, float("-inf")
        for slot in slots:
            value = score(slot.local_dow, slot.local_hour)
            if value is not None and value > best_score:  # strict: a tie keeps the earlier slot
                best, best_score = slot, value
        if best is not None:
            return best
    return fixed_slot(slots, fixed_hour)


def fixed_slot(slots: Sequence[Slot], fixed_hour: int) -> Slot:
    """The first slot at local `fixed_hour`; when quiet hours, DST or a short horizon leave none, the
    first slot at the nearest later hour (so the control arm still shares one hour), else the first."""
    later = [slot for slot in slots if slot.local_hour >= fixed_hour]
    if not later:
        return slots[0]
    hour = min(slot.local_hour for slot in later)
    return next(slot for slot in later if slot.local_hour == hour)


def _quiet(hour: int, quiet_hours: tuple[int, int] | None) -> bool:
    """presend.delivery_time's rule: (21, 8) wraps midnight, (1, 6) does not."""
    if not quiet_hours:
        return False
    start, end = quiet_hours
    return start <= hour < end if start < end else (hour >= start or hour < end)


def _local(instant: datetime, zone) -> datetime:
    return instant.replace(tzinfo=timezone.utc).astimezone(zone)


def _utc(wall: datetime, zone) -> datetime:
    return wall.replace(tzinfo=zone).astimezone(timezone.utc).replace(tzinfo=None)
