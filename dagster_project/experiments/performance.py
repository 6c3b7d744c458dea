"""Campaign performance per arm and segment, read from marts.campaign_performance (dbt), and its totals
over segments.

The mart counts units (customers assigned to a variant or the holdout) and what they did; its rates
are defined in dbt/models/marts/experiments/_campaign_performance.yml. RATES below are the same definitions,
for the "all segments" rows summed here (a rate is never averaged over segments); tests hold the two
against each other row by row."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from dagster_project.warehouse import Connection

PERFORMANCE_TABLE = "marts.campaign_performance"
ALL_SEGMENTS = "all segments"
HOLDOUT = "holdout"

# Counted per unit (or summed, for orders and revenue), in the order the mart and the tables show them.
COUNTS: tuple[str, ...] = (
    "units", "sends", "deliveries", "human_opens", "clicks", "conversions", "orders", "revenue",
    "unsubscribes", "bounces", "hard_bounces", "spam_reports",
)
# rate -> (numerator, denominator); a rate is None where its denominator is 0 (the holdout's per-send
# and per-delivery rates). Per send: delivery, bounce. Per delivery: open, click, unsubscribe, spam
# report. Per unit (intent to treat, so the holdout has them too): conversion, revenue.
RATES: dict[str, tuple[str, str]] = {
    "delivery_rate": ("deliveries", "sends"),
    "bounce_rate": ("bounces", "sends"),
    "open_rate": ("human_opens", "deliveries"),
    "click_rate": ("clicks", "deliveries"),
    "unsubscribe_rate": ("unsubscribes", "deliveries"),
    "spam_report_rate": ("spam_reports", "deliveries"),
    "conversion_rate": ("conversions", "units"),
    "revenue_per_unit": ("revenue", "units"),
}


@dataclass(frozen=True)
class PerformanceRow:
    """One arm of a campaign run in one segment (or, with segment_key ALL_SEGMENTS, in all of them)."""

    campaign_id: str
    run_key: str
    arm: str
    segment_key: str
    units: int
    sends: int
    deliveries: int
    human_opens: int
    clicks: int
    conversions: int
    orders: int
    revenue: Decimal
    unsubscribes: int
    bounces: int
    hard_bounces: int
    spam_reports: int

    @property
    def is_holdout(self) -> bool:
        return self.arm == HOLDOUT

    def rate(self, name: str) -> float | None:
        """One of RATES, e.g. row.rate("click_rate")."""
        numerator, denominator = RATES[name]
        below = getattr(self, denominator)
        return float(getattr(self, numerator)) / below if below else None

    def rates(self) -> dict[str, float | None]:
        return {name: self.rate(name) for name in RATES}


def campaign_performance(conn: Connection, campaign_id: str, run_key: str | None = None) -> list[PerformanceRow]:
    """The rows of a campaign run (default: its latest run in the mart), ordered by segment, then the
    variants, the holdout last. Empty before dbt has built the mart or the campaign has units."""
    if not conn.table_exists("marts", "campaign_performance"):
        return []
    if run_key is None:
        run_key = conn.scalar(f"SELECT max(run_key) FROM {PERFORMANCE_TABLE} WHERE campaign_id = ?", [campaign_id])
        if run_key is None:
            return []
    rows = conn.fetchall(
        f"SELECT campaign_id, run_key, arm, segment_key, {', '.join(COUNTS)} FROM {PERFORMANCE_TABLE} "
        "WHERE campaign_id = ? AND run_key = ?",
        [campaign_id, run_key],
    )
    found = [_row(values) for values in rows]
    return sorted(found, key=lambda row: (row.segment_key, _arm_order(row)))


def totals_by_arm(rows: list[PerformanceRow]) -> list[PerformanceRow]:
    """One ALL_SEGMENTS row per campaign run and arm: the counts summed over segments, so its rates are
    the rates of the sums. Variants in order, the holdout last."""
    totals: dict[tuple[str, str, str], PerformanceRow] = {}
    for row in rows:
        key = (row.campaign_id, row.run_key, row.arm)
        if key not in totals:
            totals[key] = replace(row, segment_key=ALL_SEGMENTS)
            continue
        total = totals[key]
        totals[key] = replace(total, **{name: getattr(total, name) + getattr(row, name) for name in COUNTS})
    return sorted(totals.values(), key=lambda row: (row.campaign_id, row.run_key, _arm_order(row)))


def campaign_totals(rows: list[PerformanceRow]) -> PerformanceRow | None:
    """Every variant of the run pooled (the holdout left out): what the campaign sent and earned."""
    treated = [row for row in totals_by_arm(rows) if not row.is_holdout]
    if not treated:
        return None
    pooled = treated[0]
    for row in treated[1:]:
        pooled = replace(pooled, **{name: getattr(pooled, name) + getattr(row, name) for name in COUNTS})
    return replace(pooled, arm="campaign")


def _row(values: tuple) -> PerformanceRow:
    campaign_id, run_key, arm, segment_key, *counts = values
    numbers = {name: (Decimal(value or 0) if name == "revenue" else int(value or 0))
               for name, value in zip(COUNTS, counts)}
    return PerformanceRow(campaign_id, run_key, arm, segment_key, **numbers)


def _arm_order(row: PerformanceRow) -> tuple[bool, str]:
    return row.is_holdout, row.arm

