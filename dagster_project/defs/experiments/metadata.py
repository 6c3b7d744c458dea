"""What a marketer reads on the readout and roll-out assets: the readout tables, numbers the UI plots
across runs (lift and its interval, units per arm, the SRM p-value), and every decision made."""

from __future__ import annotations

import math
from datetime import timezone

import dagster as dg

from dagster_project.experiments.decisions import Decision
from dagster_project.experiments.readout import Readout
from dagster_project.experiments.rollout import Look
from dagster_project.experiments.warehouse_readout import CampaignReadouts


def readout_metadata(readouts: CampaignReadouts, primary_metric: str, decisions: list[Decision]) -> dict:
    if readouts.run_key is None:
        return {"readout": dg.MetadataValue.md("No experiment units yet: the campaign has not run, or dbt has "
                                               "not been built since (marts.experiment_units).")}
    metadata = {
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
    metadata |= _plotted("", readouts.primary, primary_metric)
    metadata |= _plotted("holdout_", readouts.holdout, primary_metric)
    return metadata


def rollout_metadata(looks: list[Look], decisions: list[Decision]) -> dict:
    waiting = [look for look in looks if look.decision is None]
    lines = ["| run | deadline (UTC) | state |", "|---|---|---|"]
    for look in looks:
        state = (f"{look.decision.variant_id} ({look.decision.rule}): {look.decision.reason}; "
                 f"{look.rendered:,} remainder messages rendered" if look.decision else f"waiting: {look.waiting_reason}")
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
    return {name: (dg.MetadataValue.int(value) if isinstance(value, int) else dg.MetadataValue.float(float(value)))
            for name, value in values.items() if value is not None and math.isfinite(value)}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
