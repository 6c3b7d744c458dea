"""Readouts of the campaigns' experiments from marts.experiment_units: the sums per arm come from one
GROUP BY in the warehouse, the statistics from the same `compute_readout` the CSV command uses.

Two comparisons per campaign run:
    variants   each variant against the control, on the units that got a variant as part of the test
               (phase test, or full when the campaign has no roll-out), every metric
    holdout    everyone the campaign was meant for (all variants and the rolled-out remainder,
               pooled) against the holdout: the campaign's incremental effect
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dagster_project.experiments.metrics import EXPERIMENT_METRICS
from dagster_project.experiments.readout import Readout, ReadoutOptions, compute_readout
from dagster_project.experiments.totals import ArmTotals, MetricSpec, MetricTotals
from dagster_project.personalization.campaigns import Campaign
from dagster_project.personalization.variants import HOLDOUT, PHASE_FULL, PHASE_TEST
from dagster_project.warehouse import Connection

UNITS_TABLE = "marts.experiment_units"
CAMPAIGN_ARM = "campaign"  # the pooled treated units in the holdout comparison
WAITING_RUNS = ("SELECT DISTINCT run_key FROM ops.campaign_assignments WHERE campaign_id = ? "
                "AND phase = 'remainder' AND arm IS NULL")


@dataclass(frozen=True)
class CampaignReadouts:
    campaign_id: str
    run_key: str | None  # the latest run with units; None before the first
    variants: Readout | None  # None when there are fewer than two variants with units
    holdout: Readout | None  # None without a holdout (or before any unit)
    holdout_all_runs: Readout | None


def all_metrics() -> list[MetricSpec]:
    return [MetricSpec(name, kind) for name, (kind, _) in EXPERIMENT_METRICS.items()]


def arm_totals(conn: Connection, campaign_id: str, run_key: str | None, phases: tuple[str, ...] | None,
               metrics: list[MetricSpec], settled_runs_only: bool = False) -> list[ArmTotals]:
    """Units and per-metric sums and sums of squares per arm (every run when run_key is None; with
    `settled_runs_only`, leaving out runs whose roll-out remainder still waits)."""
    sums = ", ".join(
        f"sum({EXPERIMENT_METRICS[m.name][1]}), sum(({EXPERIMENT_METRICS[m.name][1]}) * ({EXPERIMENT_METRICS[m.name][1]}))"
        for m in metrics)
    where, params = ["campaign_id = ?"], [campaign_id]
    if run_key is not None:
        where.append("run_key = ?")
        params.append(run_key)
    if phases is not None:
        where.append(f"phase IN ({', '.join('?' for _ in phases)})")
        params.extend(phases)
    if settled_runs_only:
        where.append(f"run_key NOT IN ({WAITING_RUNS})")
        params.append(campaign_id)
    rows = conn.fetchall(
        f"SELECT arm, count(*), {sums} FROM {UNITS_TABLE} WHERE {' AND '.join(where)} GROUP BY arm ORDER BY arm",
        params,
    )
    return [
        ArmTotals(arm, int(units), {
            metric.name: MetricTotals(float(values[2 * i] or 0), float(values[2 * i + 1] or 0))
            for i, metric in enumerate(metrics)
        })
        for arm, units, *values in rows
    ]


def latest_run(conn: Connection, campaign_id: str) -> str | None:
    if not conn.table_exists("marts", "experiment_units"):
        return None
    return conn.scalar(f"SELECT max(run_key) FROM {UNITS_TABLE} WHERE campaign_id = ?", [campaign_id])


def variant_readout(conn: Connection, campaign: Campaign, run_key: str, options: ReadoutOptions,
                    metrics: list[MetricSpec] | None = None, weights: dict[str, float] | None = None) -> Readout | None:
    """Each variant against the control in the run's test (or the whole run without a roll-out).
    `weights` are the shares the run was assigned with (a bandit's); the configured ones otherwise."""
    metrics = metrics or all_metrics()
    control = campaign.experiment.control if campaign.experiment else campaign.variants[0].variant_id
    variant_ids = [v.variant_id for v in campaign.variants]
    configured = weights or {v.variant_id: v.weight for v in campaign.variants}
    # Arms the run gave no share (a variant added after a bandit's allocation) have no units to compare.
    arms = [a for a in arm_totals(conn, campaign.campaign_id, run_key, (PHASE_TEST, PHASE_FULL), metrics)
            if a.arm in variant_ids and configured.get(a.arm)]
    present = {a.arm for a in arms}
    if control not in present or len(present) < 2:
        return None
    shares = {arm: configured[arm] for arm in present}
    return compute_readout(arms, control, metrics, _with(options, weights=shares))


def holdout_readout(conn: Connection, campaign: Campaign, run_key: str | None, options: ReadoutOptions,
                    metrics: list[MetricSpec] | None = None) -> Readout | None:
    """The campaign's units pooled against its holdout, in one run or (run_key None) every run whose
    remainder is settled. The expected split is the holdout share; while a run's roll-out remainder
    waits, only the test fraction of the rest has entered, and the expected split says so."""
    if campaign.holdout_share <= 0:
        return None
    metrics = metrics or all_metrics()
    arms = arm_totals(conn, campaign.campaign_id, run_key, None, metrics, settled_runs_only=run_key is None)
    holdout = next((a for a in arms if a.arm == HOLDOUT), None)
    treated = [a for a in arms if a.arm != HOLDOUT]
    if holdout is None or not treated:
        return None
    pooled = ArmTotals(CAMPAIGN_ARM, sum(a.units for a in treated), {
        m.name: MetricTotals(sum(a.metrics[m.name].total for a in treated),
                             sum(a.metrics[m.name].total_squares for a in treated))
        for m in metrics})
    entered = 1.0
    if run_key is not None and campaign.experiment and campaign.experiment.rolls_out and \
            _remainder_waiting(conn, campaign.campaign_id, run_key):
        entered = campaign.experiment.test_fraction
    shares = {HOLDOUT: campaign.holdout_share, CAMPAIGN_ARM: (1 - campaign.holdout_share) * entered}
    return compute_readout([holdout, pooled], HOLDOUT, metrics, _with(options, weights=shares))


def campaign_readouts(conn: Connection, campaign: Campaign, options: ReadoutOptions,
                      weights: dict[str, float] | None = None) -> CampaignReadouts:
    run_key = latest_run(conn, campaign.campaign_id)
    if run_key is None:
        return CampaignReadouts(campaign.campaign_id, None, None, None, None)
    return CampaignReadouts(
        campaign.campaign_id, run_key,
        variant_readout(conn, campaign, run_key, options, weights=weights),
        holdout_readout(conn, campaign, run_key, options),
        holdout_readout(conn, campaign, None, options),
    )


def _remainder_waiting(conn: Connection, campaign_id: str, run_key: str) -> bool:
    return bool(conn.scalar(f"SELECT count(*) FROM ({WAITING_RUNS}) AS waiting WHERE run_key = ?",
                            [campaign_id, run_key]))


def _with(options: ReadoutOptions, **changes) -> ReadoutOptions:
    return replace(options, **changes)
