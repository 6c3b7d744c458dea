"""The variant shares of a bandit campaign's next run, from how its variants did in earlier runs.

Top-two Thompson sampling (dagster_project.experiments.bandit) on the experiment's binary metric over
every earlier run's units in marts.experiment_units. It explores to find the best variant: the leader
gets `leader_share` (top-two's beta) once it is clearly ahead and the challengers share the rest, so
with two variants a clear winner gets leader_share, not everything; the holdout is not part of it (it stays the
configured share, drawn before the variants). The shares of a run are computed once and recorded in
ops.experiment_decisions (kind "allocation"), with the counts they came from and the seed, so the run's
assignments can be recomputed and audited later.
"""

from __future__ import annotations

from datetime import datetime

from dagster_project.experiments.bandit import top_two_thompson_weights
from dagster_project.experiments.decisions import ALLOCATION, Decision, record_decision, stored_decision
from dagster_project.experiments.metrics import EXPERIMENT_METRICS
from dagster_project.personalization.campaigns import Campaign
from dagster_project.personalization.variants import Variant
from dagster_project.warehouse import Connection


def bandit_variants(conn: Connection, campaign: Campaign, run_key: str, now: datetime) -> list[Variant]:
    decision = stored_decision(conn, campaign.campaign_id, run_key, ALLOCATION)
    if decision is None:
        decision = record_decision(conn, allocation_decision(conn, campaign, run_key, now))
    weights = decision.evidence["weights"]
    # A variant added since the shares were recorded gets none in this run; the next run includes it.
    return [Variant(v.variant_id, weights[v.variant_id]) for v in campaign.variants if weights.get(v.variant_id)]


def allocation_decision(conn: Connection, campaign: Campaign, run_key: str, now: datetime) -> Decision:
    experiment = campaign.experiment
    assert experiment is not None and experiment.method == "bandit"
    history = earlier_results(conn, campaign, run_key)
    seed = f"{campaign.salt}|{run_key}"
    weights = top_two_thompson_weights(history, min_share=experiment.min_share, seed=seed,
                                       beta=experiment.leader_share)
    described = ", ".join(f"{arm} {share:.1%}" for arm, share in weights.items())
    return Decision(
        campaign_id=campaign.campaign_id, run_key=run_key, kind=ALLOCATION, variant_id=None,
        rule="top_two_thompson",
        reason=f"shares {described} from {experiment.metric} in {sum(u for u, _ in history.values()):,} earlier units",
        decided_at=now,
        evidence={"weights": weights, "metric": experiment.metric, "seed": seed, "min_share": experiment.min_share,
                  "leader_share": experiment.leader_share,
                  "earlier": {arm: {"units": u, "successes": s} for arm, (u, s) in history.items()}},
    )


def earlier_results(conn: Connection, campaign: Campaign, run_key: str) -> dict[str, tuple[int, int]]:
    """variant -> (units, successes) over the campaign's runs before `run_key` (0, 0 for none yet)."""
    results = {v.variant_id: (0, 0) for v in campaign.variants}
    if not conn.table_exists("marts", "experiment_units"):
        return results  # before the first dbt build after a send: no history yet
    _, value = EXPERIMENT_METRICS[campaign.experiment.metric]
    for arm, units, successes in conn.fetchall(
        f"SELECT arm, count(*), sum({value}) FROM marts.experiment_units "
        "WHERE campaign_id = ? AND run_key < ? GROUP BY arm",
        [campaign.campaign_id, run_key],
    ):
        if arm in results:
            results[arm] = (int(units), int(successes or 0))
    return results
