"""What a marketer reads on the readout and roll-out assets: the latest run's performance per arm and
segment, the readout tables, numbers the UI plots across runs (sends, click rate, conversions, revenue,
lift and its interval, units per arm, the SRM p-value), and every decision made."""

from __future__ import annotations

import math
from datetime import timezone

import dagster as dg

from dagster_project.experiments.decisions import Decision
from dagster_project.experiments.performance import PerformanceRow, campaign_totals, totals_by_arm
from dagster_project.experiments.readout import Readout
from dagster_project.experiments.rollout import Look
from dagster_project.experiments.warehouse_readout import CampaignReadouts


def readout_metadata(readouts: CampaignReadouts, primary_metric: str, decisions: list[Decision],
                     performance: list[PerformanceRow]) -> dict:
    """`performance`: the rows of marts.campaign_performance for the readout's run (readouts.run_key)."""
    if readouts.run_key is None:
        return {"performance": performance_value(performance),
                "readout": dg.MetadataValue.md("No experiment units yet: the campaign has not run, or dbt has "
                                               "not been built since (marts.experiment_units).")}
    metadata = {
        "performance": performance_value(performance),
        "run_key": dg.MetadataValue.text(readouts.run_key),
        "primary_metric": dg.MetadataValue.text(primary_metric),
        "readout": dg.MetadataValue.md(
            _section(f"Variants against the control on {primary_metric} (decides)", readouts.primary)
            + "\n\n" + _section("Secondary metrics (corrected among themselves; they never decide)",
                                 readouts.secondary)),
        "holdout_lift": dg.MetadataValue.md(
            _section("This run against the holdout", readouts.holdout)
            + "\n\n" + _section("Every settled run against the holdout", readouts.holdout_all_runs)),
        "decisions": dg.MetadataValue.md(decisions_table(decisions)),
    }
    if readouts.send_time is not None or readouts.send_time_all_runs is not None:
        metadata["send_time_lift"] = dg.MetadataValue.md(
            _section("This run: optimized and explored send times against the fixed hour", readouts.send_time)
            + "\n\n" + _section("Every settled run against the fixed hour", readouts.send_time_all_runs))
    metadata |= performance_plotted(performance)
    metadata |= _plotted("", readouts.primary, primary_metric)
    metadata |= _plotted("holdout_", readouts.holdout, primary_metric)
    metadata |= _plotted("send_time_", readouts.send_time, primary_metric)
    return metadata


# The performance table: (column, heading's description). A cell holds the count and, in brackets,
# its rate (experiments/performance.py RATES): per send, per delivery, or per unit.
PERFORMANCE_COLUMNS = [
    ("segment", "The segment (segment_key), or all segments."),
    ("arm", "The variant, or the holdout (gets nothing: the baseline)."),
    ("units", "Customers assigned to the arm (intent to treat)."),
    ("sends", "Messages a provider accepted."),
    ("delivered", "Delivered (delivery rate: of sends)."),
    ("human opens", "Opened by a person; machine opens left out (open rate: of delivered)."),
    ("clicks", "Clicked (click rate: of delivered)."),
    ("conversions", "Ordered within the conversion window (conversion rate: of units, the holdout too)."),
    ("revenue", "Revenue of those orders (revenue per unit)."),
    ("unsubscribes", "Unsubscribed (of delivered)."),
    ("bounces", "Bounced, hard or soft (of sends)."),
]


def performance_value(rows: list[PerformanceRow]) -> dg.MetadataValue:
    """The latest run's performance as a table: per arm the total over all segments first, then each
    segment with its arms side by side, the holdout after the variants."""
    if not rows:
        return dg.MetadataValue.md("No performance yet: the campaign has no units in marts.campaign_performance "
                                   "(it has not run, or dbt has not been built since).")
    records = [_performance_record(row) for row in totals_by_arm(rows) + rows]
    schema = dg.TableSchema(columns=[dg.TableColumn(name, "string", description=text)
                                     for name, text in PERFORMANCE_COLUMNS])
    return dg.MetadataValue.table(records=records, schema=schema)


def performance_plotted(rows: list[PerformanceRow]) -> dict:
    """Numbers Dagster plots across materializations: the latest run's variants pooled (what the
    campaign sent and earned), and the holdout's conversion rate beside the campaign's."""
    campaign = campaign_totals(rows)
    if campaign is None:
        return {}
    values: dict[str, float | int | None] = {
        "sends": campaign.sends, "deliveries": campaign.deliveries, "clicks": campaign.clicks,
        "click_rate": campaign.rate("click_rate"), "conversions": campaign.conversions,
        "conversion_rate": campaign.rate("conversion_rate"), "revenue": float(campaign.revenue),
        "unsubscribes": campaign.unsubscribes, "bounces": campaign.bounces,
    }
    holdout = next((row for row in totals_by_arm(rows) if row.is_holdout), None)
    if holdout is not None:
        values["holdout_conversion_rate"] = holdout.rate("conversion_rate")
    return _numbers(values)


def _performance_record(row: PerformanceRow) -> dg.TableRecord:
    def counted(count: int, rate: str) -> str:
        value = row.rate(rate)
        return f"{count:,}" if value is None else f"{count:,} ({value:.1%})"

    per_unit = row.rate("revenue_per_unit")
    return dg.TableRecord({
        "segment": row.segment_key,
        "arm": row.arm,
        "units": f"{row.units:,}",
        "sends": f"{row.sends:,}",
        "delivered": counted(row.deliveries, "delivery_rate"),
        "human opens": counted(row.human_opens, "open_rate"),
        "clicks": counted(row.clicks, "click_rate"),
        "conversions": counted(row.conversions, "conversion_rate"),
        "revenue": f"{row.revenue:,.2f}" + ("" if per_unit is None else f" ({per_unit:,.2f} / unit)"),
        "unsubscribes": counted(row.unsubscribes, "unsubscribe_rate"),
        "bounces": counted(row.bounces, "bounce_rate"),
    })


def rollout_metadata(looks: list[Look], decisions: list[Decision]) -> dict:
    waiting = [look for look in looks if look.decision is None]
    lines = ["| run | deadline (UTC) | state |", "|---|---|---|"]
    for look in looks:
        state = (f"{look.decision.variant_id} ({look.decision.rule}): {look.decision.reason}; "
                 f"{look.rendered:,} remainder messages rendered"
                 if look.decision else f"waiting: {look.waiting_reason}")
        lines.append(f"| {look.run_key} | {look.deadline:%Y-%m-%d %H:%M} | {_cell(state)} |")
    deadlines = [look.deadline.replace(tzinfo=timezone.utc).timestamp() for look in waiting]
    return {
        # For experiment_rollout_sensor: each passed deadline of a waiting run starts one look.
        "waiting_deadlines": dg.MetadataValue.json(sorted(deadlines)),
        "runs_waiting": dg.MetadataValue.int(len(waiting)),
        "runs_decided_now": dg.MetadataValue.int(len(looks) - len(waiting)),
        "remainder_rendered": dg.MetadataValue.int(sum(look.rendered for look in looks)),
        "looks": dg.MetadataValue.md("\n".join(lines) if looks else "No run is waiting for a winner."),
        "decisions": dg.MetadataValue.md(decisions_table(decisions)),
    }


def decisions_table(decisions: list[Decision]) -> str:
    if not decisions:
        return "No decision yet."
    lines = ["| run | kind | variant | rule | decided at (UTC) | why |", "|---|---|---|---|---|---|"]
    lines += [f"| {d.run_key} | {d.kind} | {d.variant_id or ''} | {d.rule} | {d.decided_at:%Y-%m-%d %H:%M} | "
              f"{_cell(d.reason)} |" for d in decisions]
    return "\n".join(lines)


def _section(title: str, readout: Readout | None) -> str:
    if readout is None:
        return f"**{title}:** not enough arms with units yet."
    return f"**{title}**\n\n{readout.to_markdown()}"


def _plotted(prefix: str, readout: Readout | None, metric: str) -> dict:
    """Numbers Dagster plots across materializations: units per arm, the primary metric's difference
    and relative lift per variant with their intervals (no lift while the control's rate is 0), and
    the SRM p-value."""
    if readout is None:
        return {}
    values = {f"{prefix}srm_p_value": readout.srm_p_value}
    values |= {f"{prefix}units_{arm.arm}": arm.units for arm in readout.arms}
    for row in readout.rows:
        if row.metric != metric:
            continue
        values |= {f"{prefix}{metric}_difference_{row.variant}": row.difference,
                   f"{prefix}{metric}_difference_low_{row.variant}": row.difference_low,
                   f"{prefix}{metric}_difference_high_{row.variant}": row.difference_high,
                   f"{prefix}{metric}_lift_{row.variant}": row.relative_lift,
                   f"{prefix}{metric}_lift_low_{row.variant}": row.relative_low,
                   f"{prefix}{metric}_lift_high_{row.variant}": row.relative_high,
                   f"{prefix}{metric}_p_adjusted_{row.variant}": row.adjusted_p_value}
    return _numbers(values)


def _numbers(values: dict) -> dict:
    """Plotted numbers, floats rounded to 4 decimals (the UI prints them as they are)."""
    return {name: (dg.MetadataValue.int(value) if isinstance(value, int)
                   else dg.MetadataValue.float(round(float(value), 4)))
            for name, value in values.items() if value is not None and math.isfinite(value)}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
