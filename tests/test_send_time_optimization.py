"""Send-time optimization end to end: the shipped weekly_picks (send_time: optimized) plans every
message inside its window and outside quiet hours, split into the fixed, explore and optimized arms;
the send-time readout compares the arms against the fixed hour; and on the sample's truth, the
optimized arm's lift over the fixed hour is what the readout reports."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from statsmodels.stats import proportion as sm_proportion

from dagster_project.experiments.readout import ReadoutOptions, compute_readout
from dagster_project.experiments.totals import ArmTotals, MetricSpec, MetricTotals
from dagster_project.experiments.warehouse_readout import metric_specs, send_time_readout
from dagster_project.personalization.campaigns import campaigns_from_manifest
from dagster_project.predictive.scheduling import FIXED, OPTIMIZED, candidate_slots, fixed_slot, plan_send_at
from dagster_project.predictive.send_time_report import planned_sends
from dagster_project.sample_data import behaviour as behaviours
from dagster_project.warehouse import Warehouse
from reverse_etl.presend import delivery_time

QUIET = (21, 8)  # MAILROOM_QUIET_HOURS' default


def _weekly_picks():
    import json

    from dagster_project.dbt_project import mailroom_dbt

    campaigns = campaigns_from_manifest(json.loads(mailroom_dbt.manifest_path.read_text()))
    return next(c for c in campaigns if c.campaign_id == "weekly_picks")


def test_weekly_picks_plans_every_message_in_its_window_outside_quiet_hours(campaigned_warehouse):
    campaign = _weekly_picks()
    assert campaign.send_time.mode == "optimized"
    reference = campaigned_warehouse.settings.reference_time()
    with Warehouse(campaigned_warehouse.settings).connect() as conn:
        run_key = conn.scalar("SELECT max(run_key) FROM ops.campaign_messages WHERE campaign_id = ?",
                              [campaign.campaign_id])
        sends = planned_sends(conn, campaign.campaign_id, run_key)
        units = dict(conn.fetchall(
            "SELECT send_time_arm, count(*) FROM ops.campaign_assignments WHERE campaign_id = ? AND run_key = ? "
            "AND arm <> 'holdout' GROUP BY send_time_arm", [campaign.campaign_id, run_key]))
        holdout_arms = conn.fetchall(
            "SELECT DISTINCT send_time_arm FROM ops.campaign_assignments WHERE campaign_id = ? AND arm = 'holdout'",
            [campaign.campaign_id])
        sources = {source for (source,) in conn.fetchall(
            "SELECT DISTINCT send_time_source FROM ops.campaign_messages WHERE campaign_id = ? "
            "AND send_time_arm = 'optimized'", [campaign.campaign_id])}
    assert len(sends) > 20
    start, end = campaign.send_window
    for customer_id, arm, tz, send_at, local in sends:
        assert arm in ("fixed", "explore", "optimized"), customer_id
        assert start <= local.hour < end and not (local.hour >= QUIET[0] or local.hour < QUIET[1]), (customer_id, local)
        assert delivery_time(send_at, reference, tz, QUIET) == send_at  # presend will not move it
        assert timedelta(minutes=10) <= send_at - reference <= timedelta(hours=campaign.send_time.horizon_hours)
        if arm == FIXED:
            assert local.hour == campaign.send_time.fixed_hour
    assert units.get(OPTIMIZED, 0) > units.get(FIXED, 0) > 0 and None not in units
    assert holdout_arms == [(None,)]  # the content holdout gets no message, so no send-time arm
    assert sources and sources <= {"customer", "segment", "global", "fixed"}


@pytest.mark.parametrize("warehouse_kind", ["duckdb", "postgres"])
def test_send_time_readout_is_the_two_proportion_test_against_the_fixed_hour(settings):
    """Hand-made units: the readout counts send-time arms only (the content holdout has none) and its
    numbers are statsmodels' two-proportion z-test."""
    campaign = _weekly_picks()
    rows = ([("fixed", i < 1) for i in range(10)] + [("optimized", i < 20) for i in range(80)]
            + [("explore", i < 2) for i in range(10)] + [(None, True) for _ in range(15)])
    with Warehouse(settings).connect() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS marts")
        conn.execute("CREATE TABLE marts.experiment_units (campaign_id VARCHAR, run_key VARCHAR, customer_id VARCHAR, "
                     "arm VARCHAR, phase VARCHAR, send_time_arm VARCHAR, is_delivered BOOLEAN, is_opened BOOLEAN, "
                     "is_clicked BOOLEAN, is_converted BOOLEAN, revenue DECIMAL(14, 2))")
        for number, (arm, clicked) in enumerate(rows):
            conn.execute("INSERT INTO marts.experiment_units VALUES (?, '2026-11-02', ?, ?, 'full', ?, TRUE, ?, ?, "
                         "FALSE, 0)", ["weekly_picks", f"c{number}", "holdout" if arm is None else "a", arm,
                                       clicked, clicked])
        readout = send_time_readout(conn, campaign, "2026-11-02", ReadoutOptions(sequential=False, correction="none"),
                                    metric_specs(["clicked"]))
    assert readout.control == FIXED and [(a.arm, a.units) for a in readout.arms] == [
        ("explore", 10), ("fixed", 10), ("optimized", 80)]
    row = next(r for r in readout.rows if r.variant == OPTIMIZED)
    assert row.difference == pytest.approx(20 / 80 - 1 / 10)
    reference = sm_proportion.test_proportions_2indep(20, 80, 1, 10, method="wald", compare="diff")
    assert row.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert not readout.has_srm  # 10 / 10 / 80 of 100: the configured 10% / 10% / 80%


def test_the_readout_finds_the_lift_the_truth_implies(sample_landing):
    """8,000 synthetic sends to the sample's customers, planned by the scheduler at the fixed hour or
    at each customer's truly best hour, responses drawn from behaviour.py: the readout's interval holds
    the lift the truth implies and excludes zero."""
    truth = list(behaviours.load_truth(sample_landing / "truth" / "engagement.csv").values())
    rng = random.Random(3)
    reference = datetime(2026, 11, 4, 0, 0)  # a Wednesday
    totals = {FIXED: [0, 0], OPTIMIZED: [0, 0]}
    expected = {FIXED: 0.0, OPTIMIZED: 0.0}
    for unit in range(8000):
        behaviour, tz = truth[unit % len(truth)]
        arm = FIXED if rng.random() < 0.2 else OPTIMIZED
        slots = candidate_slots(reference, tz, (8, 20), QUIET, 24)
        best = behaviour.best_delivery_hour()
        slot = fixed_slot(slots, 10) if arm == FIXED else plan_send_at(
            OPTIMIZED, slots, 10, lambda dow, hour, best=best: 1.0 if hour == best else 0.0, 0.0)
        probability = min(0.95, 0.3 * behaviours.relative_attention(behaviour, tz, slot.at_utc))
        expected[arm] += probability
        totals[arm][0] += 1
        totals[arm][1] += rng.random() < probability
    arms = [ArmTotals(arm, n, {"opened": MetricTotals(float(k), float(k))}) for arm, (n, k) in totals.items()]
    readout = compute_readout(arms, FIXED, [MetricSpec("opened", "binary")], ReadoutOptions(sequential=False))
    row = readout.rows[0]
    true_lift = expected[OPTIMIZED] / totals[OPTIMIZED][0] - expected[FIXED] / totals[FIXED][0]
    assert row.difference_low > 0
    assert row.difference_low <= true_lift <= row.difference_high
