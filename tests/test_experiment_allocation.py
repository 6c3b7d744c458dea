"""Bandit allocation for a recurring campaign, on both warehouses: the next run's variant shares come
from the earlier runs' results (top-two Thompson sampling), are recorded with what they were computed
from, and the run is reproducible; the holdout stays the same customers."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from dagster_project.defs.personalization.campaign_assets import load_campaigns
from dagster_project.experiments.allocation import earlier_results
from dagster_project.experiments.decisions import ALLOCATION, stored_decision
from dagster_project.personalization.messages_step import render_campaign_messages
from dagster_project.warehouse import Warehouse

from test_experiment_rollout import B_WINS, CAMPAIGN, _engagement_arrives, _renderer


def test_a_bandit_run_shifts_traffic_to_the_better_variant_and_records_why(campaigned_warehouse):
    settings = campaigned_warehouse.settings
    warehouse = Warehouse(settings)
    shipped = next(c for c in load_campaigns() if c.campaign_id == CAMPAIGN)
    bandit = replace(shipped, experiment=replace(shipped.experiment, method="bandit", min_share=0.1,
                                                           leader_share=0.8))
    _engagement_arrives(settings, B_WINS)  # the first run's test: b clicks far more often than a
    next_week = settings.reference_time() + timedelta(days=7)
    run_key = next_week.date().isoformat()

    report = render_campaign_messages(warehouse, bandit, _renderer(settings), next_week)

    with warehouse.connect() as conn:
        decision = stored_decision(conn, CAMPAIGN, run_key, ALLOCATION)
        history = earlier_results(conn, bandit, run_key)
        units = dict(conn.fetchall(
            "SELECT arm, count(*) FROM ops.campaign_assignments WHERE campaign_id = ? AND run_key = ? GROUP BY arm",
            [CAMPAIGN, run_key]))
        now_arm = dict(conn.fetchall("SELECT customer_id, arm FROM ops.campaign_assignments WHERE campaign_id = ? "
                                     "AND run_key = ?", [CAMPAIGN, run_key]))
        before_arm = dict(conn.fetchall("SELECT customer_id, coalesce(arm, phase) FROM ops.campaign_assignments "
                                        "WHERE campaign_id = ? AND run_key <> ?", [CAMPAIGN, run_key]))
    weights = decision.evidence["weights"]
    assert decision.rule == "top_two_thompson" and report.variant_weights == weights
    # b is clearly ahead: it gets about the leader's share, a the challenger's rest.
    assert weights["b"] > 0.7 and weights["a"] >= 0.1 - 1e-9 and abs(sum(weights.values()) - 1) < 1e-9
    assert decision.evidence["earlier"] == {arm: {"units": u, "successes": s} for arm, (u, s) in history.items()}
    assert history["b"][1] > history["a"][1]
    # Every customer of the run is in a variant (no remainder) or the same holdout as before.
    assert set(units) == {"a", "b", "holdout"} and units["b"] > units["a"]
    both = set(now_arm) & set(before_arm)
    assert both and all((now_arm[c] == "holdout") == (before_arm[c] == "holdout") for c in both)

    # The same run again: the recorded shares, the same assignments, nothing rendered twice.
    again = render_campaign_messages(warehouse, bandit, _renderer(settings), next_week)
    assert again.variant_weights == weights and again.rendered == 0
    with warehouse.connect() as conn:
        assert dict(conn.fetchall(
            "SELECT arm, count(*) FROM ops.campaign_assignments WHERE campaign_id = ? AND run_key = ? GROUP BY arm",
            [CAMPAIGN, run_key])) == units
