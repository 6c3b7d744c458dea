"""Readouts of the campaigns' experiments from marts.experiment_units: the sums per arm come from one
GROUP BY in the warehouse, the statistics from the same `compute_readout` the CSV command uses.

Per campaign run:
    primary     each variant against the control on the experiment's metric, in the units that got a
                variant as part of the test (phase test, or full without a roll-out): the comparisons
                a roll-out decides on, corrected for the variants only
    secondary   the other metrics, a family of their own (they inform, they never decide)
    holdout     everyone the campaign was meant for (all variants and the rolled-out remainder, pooled)
                against the holdout: the campaign's incremental effect, every metric
    send time   send_time: optimized only: the optimized and explore send-time arms against the fixed
                hour (a randomized control drawn per run, across variants), every metric

Sequential readouts are tuned to their own size (the units compared), where the always-valid interval
is tightest: a run's units all enter when it starts, so the size is known at the first look.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dagster_project.experiments.decisions import ALLOCATION, stored_decision
from dagster_project.experiments.metrics import EXPERIMENT_METRICS
from dagster_project.experiments.readout import Readout, ReadoutOptions, compute_readout
from dagster_project.experiments.spec import primary_metric, readout_options
from dagster_project.experiments.totals import ArmTotals, MetricSpec, MetricTotals
from dagster_project.personalization.campaigns import Campaign
from dagster_project.personalization.variants import HOLDOUT, PHASE_FULL, PHASE_REMAINDER, PHASE_TEST
from dagster_project.predictive.scheduling import EXPLORE, FIXED, OPTIMIZED
from dagster_project.warehouse import Connection

UNITS_TABLE = "marts.experiment_units"
CAMPAIGN_ARM = "campaign"  # the pooled treated units in the holdout comparison
# Runs of a roll-out whose remainder has not entered the units yet: a test but no remainder row.
UNSETTLED_RUNS = (f"SELECT run_key FROM {UNITS_TABLE} WHERE campaign_id = ? GROUP BY run_key "
                  f"HAVING sum(CASE WHEN phase = '{PHASE_TEST}' THEN 1 ELSE 0 END) > 0 "
                  f"AND sum(CASE WHEN phase = '{PHASE_REMAINDER}' THEN 1 ELSE 0 END) = 0")


@dataclass(frozen=True)
class CampaignReadouts:
    campaign_id: str
    run_key: str | None  # the latest run with units; None before the first
    primary: Readout | None  # None before any unit of a variant
    secondary: Readout | None
    holdout: Readout | None  # None without a holdout (or before any unit)
    holdout_all_runs: Readout | None
    send_time: Readout | None = None  # send_time: optimized: optimized and explore against the fixed hour
    send_time_all_runs: Readout | None = None


def metric_specs(names: list[str] | None = None) -> list[MetricSpec]:
    return [MetricSpec(name, kind) for name, (kind, _) in EXPERIMENT_METRICS.items() if names is None or name in names]


def arm_totals(conn: Connection, campaign_id: str, run_key: str | None, phases: tuple[str, ...] | None,
               metrics: list[MetricSpec], settled_runs_only: bool = False,
               arm_column: str = "arm") -> list[ArmTotals]:
    """Units and per-metric sums and sums of squares per arm (every run when run_key is None; with
    `settled_runs_only`, leaving out runs whose roll-out remainder has not entered yet). `arm_column`
    send_time_arm splits by send-time arm instead, among the units that have one."""
    if arm_column not in ("arm", "send_time_arm"):
        raise ValueError(f"arm_column must be arm or send_time_arm, not {arm_column!r}")
    values = [EXPERIMENT_METRICS[m.name][1] for m in metrics]
    sums = ", ".join(f"sum({value}), sum(({value}) * ({value}))" for value in values)
    where, params = ["campaign_id = ?", f"{arm_column} IS NOT NULL"], [campaign_id]
    if run_key is not None:
        where.append("run_key = ?")
        params.append(run_key)
    if phases is not None:
        where.append(f"phase IN ({', '.join('?' for _ in phases)})")
        params.extend(phases)
    if settled_runs_only:
        where.append(f"run_key NOT IN ({UNSETTLED_RUNS})")
        params.append(campaign_id)
    rows = conn.fetchall(
        f"SELECT {arm_column}, count(*), {sums} FROM {UNITS_TABLE} WHERE {' AND '.join(where)} "
        f"GROUP BY {arm_column} ORDER BY {arm_column}",
        params,
    )
    return [
        ArmTotals(arm, int(units), {
            metric.name: MetricTotals(float(sums[2 * i] or 0), float(sums[2 * i + 1] or 0))
            for i, metric in enumerate(metrics)
        })
        for arm, units, *sums in rows
    ]


def latest_run(conn: Connection, campaign_id: str) -> str | None:
    if not conn.table_exists("marts", "experiment_units"):
        return None
    return conn.scalar(f"SELECT max(run_key) FROM {UNITS_TABLE} WHERE campaign_id = ?", [campaign_id])


def run_weights(conn: Connection, campaign: Campaign, run_key: str) -> dict[str, float]:
    """The variant shares the run was assigned with: a bandit run's recorded allocation, else the
    configured weights."""
    if campaign.experiment and campaign.experiment.method == "bandit":
        allocation = stored_decision(conn, campaign.campaign_id, run_key, ALLOCATION)
        if allocation is not None:
            return dict(allocation.evidence["weights"])
    return {v.variant_id: v.weight for v in campaign.variants}


def variant_readout(conn: Connection, campaign: Campaign, run_key: str, options: ReadoutOptions,
                    metrics: list[MetricSpec]) -> Readout | None:
    """Each variant against the control in the run's test (the whole run without a roll-out). Every
    variant the run gave a share is an arm, with zero units if none arrived, so a variant that went
    missing shows as a sample ratio mismatch instead of silently dropping out."""
    control = campaign.experiment.control if campaign.experiment else campaign.variants[0].variant_id
    weights = {arm: share for arm, share in run_weights(conn, campaign, run_key).items() if share}
    found = {a.arm: a for a in arm_totals(conn, campaign.campaign_id, run_key, (PHASE_TEST, PHASE_FULL), metrics)}
    arms = [found.get(arm) or ArmTotals(arm, 0, {m.name: MetricTotals(0.0, 0.0) for m in metrics})
            for arm in sorted(weights)]
    if control not in weights or len(arms) < 2 or not any(arm.units for arm in arms):
        return None  # nothing to compare: no control, a single variant, or no units yet
    return compute_readout(arms, control, metrics, _sized(options, arms, weights))


def holdout_readout(conn: Connection, campaign: Campaign, run_key: str | None, options: ReadoutOptions,
                    metrics: list[MetricSpec]) -> Readout | None:
    """The campaign's units pooled against its holdout, in one run or (run_key None) every settled run.
    The expected split is the holdout share; in a run whose roll-out remainder has not entered, only
    the test fraction of the rest is in, and the expected split says so."""
    if campaign.holdout_share <= 0:
        return None
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
            conn.scalar(f"SELECT count(*) FROM ({UNSETTLED_RUNS}) AS unsettled WHERE run_key = ?",
                        [campaign.campaign_id, run_key]):
        entered = campaign.experiment.test_fraction
    shares = {HOLDOUT: campaign.holdout_share, CAMPAIGN_ARM: (1 - campaign.holdout_share) * entered}
    return compute_readout([holdout, pooled], HOLDOUT, metrics, _sized(options, [holdout, pooled], shares))


def send_time_readout(conn: Connection, campaign: Campaign, run_key: str | None, options: ReadoutOptions,
                      metrics: list[MetricSpec]) -> Readout | None:
    """send_time: optimized: the optimized and explore arms against the fixed hour in one run (or every
    settled run). For a binary metric the comparison is the two-proportion z-test; the expected split
    (the configured shares) feeds the sample-ratio check."""
    spec = campaign.send_time
    if spec.mode != "optimized":
        return None
    arms = arm_totals(conn, campaign.campaign_id, run_key, None, metrics, settled_runs_only=run_key is None,
                      arm_column="send_time_arm")
    if not any(arm.arm == FIXED for arm in arms) or len(arms) < 2:
        return None
    shares = {FIXED: spec.holdout_share, EXPLORE: spec.exploration_share,
              OPTIMIZED: 1 - spec.holdout_share - spec.exploration_share}
    shares = {arm: share for arm, share in shares.items() if share > 0}
    return compute_readout(arms, FIXED, metrics, _sized(options, arms, shares))


def campaign_readouts(conn: Connection, campaign: Campaign) -> CampaignReadouts:
    """Everything the readout asset and the demo show for the campaign's latest run."""
    run_key = latest_run(conn, campaign.campaign_id)
    if run_key is None:
        return CampaignReadouts(campaign.campaign_id, None, None, None, None, None)
    options, primary = readout_options(campaign.experiment), primary_metric(campaign.experiment)
    return CampaignReadouts(
        campaign.campaign_id, run_key,
        variant_readout(conn, campaign, run_key, options, metric_specs([primary])),
        variant_readout(conn, campaign, run_key, options, [m for m in metric_specs() if m.name != primary]),
        holdout_readout(conn, campaign, run_key, options, metric_specs()),
        holdout_readout(conn, campaign, None, options, metric_specs()),
        send_time_readout(conn, campaign, run_key, options, metric_specs()),
        send_time_readout(conn, campaign, None, options, metric_specs()),
    )


def _sized(options: ReadoutOptions, arms: list[ArmTotals], weights: dict[str, float]) -> ReadoutOptions:
    """The split to check, and the sequential interval tuned to the units of one comparison (control
    and one variant: with more arms, the average pair)."""
    pair = sum(arm.units for arm in arms) * 2 / len(arms)
    return replace(options, weights=weights, sequential_tuning=max(round(pair), 1))
