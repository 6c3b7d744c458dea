"""A campaign run's delivery times under `send_time: optimized` (or `fixed`): what the marts learned
(marts.send_time_curves, marts.customer_send_times) turned into one planned instant per customer.

Each customer's instant is scored as their segment's rate at the slot's local day and hour times
their own lift at that hour; a customer without enough history of their own gets their segment's
curve, a thin segment the global one, and with too little history anywhere the campaign's fixed hour
(source 'fixed'). The arms (fixed, explore, optimized) come from scheduling.send_time_arm."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from dagster_project.predictive import scheduling
from dagster_project.predictive.spec import SendTimeSpec

EVERYBODY = "_all"


@dataclass(frozen=True)
class PlannedSend:
    send_at: datetime  # naive UTC
    arm: str | None  # fixed | explore | optimized; None outside mode optimized
    source: str | None  # the optimized arm's evidence: customer | segment | global | fixed


class SendTimePlanner:
    """Plans one run of one campaign. Reads the marts once; candidates are computed once per timezone."""

    def __init__(self, conn, spec: SendTimeSpec, salt: str, run_key: str, reference_utc: datetime,
                 send_window: tuple[int, int], quiet_hours: tuple[int, int] | None, audience_relation: str):
        self.spec, self.salt, self.run_key = spec, salt, run_key
        self.reference_utc, self.send_window, self.quiet_hours = reference_utc, send_window, quiet_hours
        self._slots: dict[str | None, list[scheduling.Slot]] = {}
        self.curves: dict[str, dict[tuple[int, int], float]] = defaultdict(dict)
        self.lifts: dict[str, dict[int, float]] = defaultdict(dict)
        if spec.mode == "optimized" and conn.table_exists("marts", "send_time_curves"):
            for level_key, dow, hour, rate in conn.fetchall(
                    "select level_key, local_dow, local_hour, rate from marts.send_time_curves "
                    "where has_enough_evidence"):
                self.curves[level_key][(dow, hour)] = rate
            if conn.table_exists("marts", "customer_send_times"):
                # Only customers with their own evidence and in this audience: at most 24 rows each.
                for customer_id, hour, lift in conn.fetchall(
                        f"select t.customer_id, t.local_hour, t.lift from marts.customer_send_times as t "
                        f"join {audience_relation} as a on a.customer_id = t.customer_id "
                        f"where t.source = 'customer' and a.is_eligible"):
                    self.lifts[customer_id][hour] = lift

    def slots(self, tz_name: str | None) -> list[scheduling.Slot]:
        if tz_name not in self._slots:
            self._slots[tz_name] = scheduling.candidate_slots(
                self.reference_utc, tz_name, self.send_window, self.quiet_hours, self.spec.horizon_hours)
        return self._slots[tz_name]

    def plan(self, customer_id: str, tz_name: str | None, segment_key: str | None) -> PlannedSend | None:
        """None when no slot is allowed (the caller keeps today's best-hour time and presend's rules)."""
        slots = self.slots(tz_name)
        if not slots:
            return None
        spec = self.spec
        if spec.mode == "fixed":
            return PlannedSend(scheduling.fixed_slot(slots, spec.fixed_hour).at_utc, None, None)
        arm = scheduling.send_time_arm(self.salt, self.run_key, customer_id, spec.holdout_share,
                                       spec.exploration_share)
        source, score = self._scorer(customer_id, segment_key)
        explore_u = scheduling.explore_bucket(self.salt, self.run_key, customer_id)
        slot = scheduling.plan_send_at(arm, slots, spec.fixed_hour, score, explore_u)
        return PlannedSend(slot.at_utc, arm, source if arm == scheduling.OPTIMIZED else None)

    def _scorer(self, customer_id: str, segment_key: str | None):
        lift = self.lifts.get(customer_id)
        segment = self.curves.get(segment_key or "")
        curve = segment or self.curves.get(EVERYBODY)
        if curve is None:
            return "fixed", lambda dow, hour: None
        if lift:
            return "customer", lambda dow, hour: _product(curve.get((dow, hour)), lift.get(hour))
        return ("segment" if segment else "global"), lambda dow, hour: curve.get((dow, hour))


def _product(rate: float | None, lift: float | None) -> float | None:
    return None if rate is None or lift is None else rate * lift
