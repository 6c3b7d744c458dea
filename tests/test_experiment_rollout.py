"""Winner roll-out end to end on both warehouses, in simulated worlds.

The weekly campaign ships with a sequential roll-out experiment: its batch run (the `campaigns`
template) mailed the test fraction and left the remainder waiting. Provider events for the test are
simulated, ingested and built into marts.experiment_units by dbt; then the roll-out looks:

- a world where variant b truly gets more clicks: the readout declares b and the remainder gets b,
  each customer exactly one message of the run, however often the roll-out and the sends run again;
- a world with no difference: no winner before the deadline, the control at it, and no false winner.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from dagster_project.defs.personalization.campaign_assets import load_campaigns
from dagster_project.defs.personalization.resource import PersonalizationResource
from dagster_project.experiments.decisions import decisions_of
from dagster_project.experiments.rollout import roll_out
from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.sources import SOURCES
from dagster_project.pipeline import load_definitions
from dagster_project.sample_data.engagement import EngagementRates, simulate_engagement
from dagster_project.settings import load_activation_settings, load_personalization_settings
from dagster_project.warehouse import Warehouse
from reverse_etl.run import send_campaigns

from dbt_runner import dbt

CAMPAIGN = "weekly_picks"
# The test fraction of the 300-customer sample is a few dozen per arm: small enough for a test, and
# the effect below is large enough that even the always-valid interval sees it.
SMALL = {"min_units_per_arm": 10}
B_WINS = {(CAMPAIGN, "a"): EngagementRates(human_open=0.3, click_given_open=0.05),
          (CAMPAIGN, "b"): EngagementRates(human_open=0.95, click_given_open=0.95)}
NO_DIFFERENCE = {(CAMPAIGN, "a"): EngagementRates(0.4, 0.5), (CAMPAIGN, "b"): EngagementRates(0.4, 0.5)}
# dbt models between the provider events / ops tables and the experiment units (not the identity chain).
ENGAGEMENT_MODELS = ["stg_esp__events+,+experiment_units", "stg_ops__send_ledger+,+experiment_units",
                     "stg_ops__campaign_messages+,+experiment_units",
                     "stg_ops__campaign_assignments+,+experiment_units"]


def _weekly(**experiment):
    campaign = next(c for c in load_campaigns() if c.campaign_id == CAMPAIGN)
    return replace(campaign, experiment=replace(campaign.experiment, **experiment))


def _renderer(settings):
    return PersonalizationResource.from_settings(load_personalization_settings(), settings.data_dir, "US").renderer()


def _engagement_arrives(settings, rates) -> None:
    warehouse = Warehouse(settings)
    assert simulate_engagement(warehouse, settings.landing_dir, rates=rates) is not None
    ingest_source(warehouse, SOURCES["esp"], settings.landing_dir, workers=1)
    dbt(settings, "build", "--select", *ENGAGEMENT_MODELS)


def _run_units(conn) -> dict[str, tuple[str | None, str]]:
    return {customer: (arm, phase) for customer, arm, phase in conn.fetchall(
        "SELECT customer_id, arm, phase FROM ops.campaign_assignments WHERE campaign_id = ?", [CAMPAIGN])}


def _send_everything_due(settings) -> None:
    # The remainder is planned for the customers' best hours after the decision: let the clock reach them
    # (a day on; within the 48 hours after rendering in which a message may still go out).
    later = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(hours=25)
    send_campaigns(settings, load_activation_settings(), [CAMPAIGN], log=lambda line: None, clock=lambda: later)


def test_the_test_fraction_goes_first_and_the_remainder_waits(warehouse_kind, built_templates):
    campaign = _weekly()
    # Only reads: the session's template itself, no copy.
    with Warehouse(built_templates(warehouse_kind, "campaigns").settings).connect() as conn:
        units = _run_units(conn)
        messaged = {row[0] for row in conn.fetchall(
            "SELECT customer_id FROM ops.campaign_messages WHERE campaign_id = ?", [CAMPAIGN])}
    phases = {phase for _, phase in units.values()}
    assert phases == {"test", "remainder", "holdout"}
    remainder = {c for c, (arm, phase) in units.items() if phase == "remainder"}
    test = {c for c, (arm, phase) in units.items() if phase == "test"}
    assert all(units[c][0] is None for c in remainder) and not remainder & messaged
    assert messaged <= test and {units[c][0] for c in test} == {"a", "b"}
    # About the configured test fraction of everyone not held out (hash-based, so not exactly).
    share = len(test) / (len(test) + len(remainder))
    assert abs(share - campaign.experiment.test_fraction) < 0.12


def _started(warehouse) -> datetime:
    with warehouse.connect() as conn:
        return conn.scalar("SELECT min(assigned_at) FROM ops.campaign_assignments WHERE campaign_id = ?", [CAMPAIGN])


def _readout_asset(settings) -> tuple[dict, dg.AssetCheckEvaluation]:
    key = dg.AssetKey(["campaigns", CAMPAIGN, f"{CAMPAIGN}_readout"])
    job = load_definitions().resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), asset_selection=[key])
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    [check] = result.get_asset_check_evaluations()
    return {name: value.value for name, value in event.materialization.metadata.items()}, check


def _holdout_readout(settings):
    from dagster_project.experiments.spec import readout_options
    from dagster_project.experiments.warehouse_readout import holdout_readout, latest_run, metric_specs

    campaign = _weekly()
    with Warehouse(settings).connect() as conn:
        return holdout_readout(conn, campaign, latest_run(conn, CAMPAIGN), readout_options(campaign.experiment),
                               metric_specs())


@pytest.mark.slow
def test_a_true_winner_is_declared_and_rolled_out_exactly_once(campaigned_warehouse):
    settings = campaigned_warehouse.settings
    warehouse, campaign = Warehouse(settings), _weekly(**SMALL)
    _engagement_arrives(settings, B_WINS)
    an_hour_in = _started(warehouse) + timedelta(hours=1)

    # The readout asset shows it, with numbers the UI plots and the split check passed.
    metadata, check = _readout_asset(settings)
    assert "| b |" in metadata["readout"] and "clicked" in metadata["readout"] and "holdout" in metadata["holdout_lift"]
    assert metadata["units_a"] > 0 and metadata["units_b"] > 0 and metadata["clicked_difference_b"] > 0
    assert metadata["clicked_difference_low_b"] < metadata["clicked_difference_b"] \
        < metadata["clicked_difference_high_b"]
    assert check.check_name == "no_sample_ratio_mismatch" and check.passed
    # Against the holdout: only the test fraction of the rest has entered, and the expected split knows it.
    before = _holdout_readout(settings)
    assert not before.has_srm and {a.arm: a.units for a in before.arms}["campaign"] < \
        {a.arm: a.units for a in before.arms}["holdout"] * 9  # not yet the full 90:10
    clicked = next(r for r in before.rows if r.metric == "clicked")
    # the holdout gets no mail
    assert clicked.control_value == 0 and clicked.variant_value > 0 and clicked.is_significant

    # A fixed-horizon test would not look before its deadline; the sequential one may, and decides.
    [fixed] = roll_out(warehouse, _weekly(method="fixed", **SMALL), _renderer(settings), an_hour_in)
    assert fixed.decision is None and "fixed horizon" in fixed.waiting_reason
    [look] = roll_out(warehouse, campaign, _renderer(settings), an_hour_in)

    assert look.decision is not None and look.decision.variant_id == "b" and look.decision.rule == "significant"
    [row] = [r for r in look.readout.rows if r.metric == "clicked"]
    assert row.variant == "b" and row.is_significant and row.difference > 0 and not look.readout.has_srm
    with warehouse.connect() as conn:
        units = _run_units(conn)
        remainder = {c for c, (arm, phase) in units.items() if phase == "remainder"}
        remainder_messages = dict(conn.fetchall(
            "SELECT customer_id, variant_id FROM ops.campaign_messages WHERE campaign_id = ? AND customer_id IN "
            "(SELECT customer_id FROM ops.campaign_assignments WHERE campaign_id = ? AND phase = 'remainder')",
            [CAMPAIGN, CAMPAIGN]))
        [stored] = decisions_of(conn, CAMPAIGN)
    assert all(units[c][0] == "b" for c in remainder)  # the whole remainder is b's now
    assert set(remainder_messages.values()) == {"b"} and len(remainder_messages) == look.rendered > 0
    assert stored.variant_id == "b" and stored.evidence["readout"]["rows"]
    # The remainder passes the messages gate the test passed, on the roll-out asset, before any send.
    rollout = dg.AssetKey(["campaigns", CAMPAIGN, f"{CAMPAIGN}_rollout"])
    job = load_definitions().resolve_job_def(f"{CAMPAIGN}_rollout")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), asset_selection=[rollout])
    [gate] = [c for c in result.get_asset_check_evaluations() if c.check_name == "gx_campaign_messages"]
    assert gate.asset_key == rollout and gate.passed and gate.metadata["rows_validated"].value == look.rendered

    # Looking again, sending again: nothing new, nothing twice.
    assert roll_out(warehouse, campaign, _renderer(settings), datetime.now(timezone.utc).replace(tzinfo=None)) == []
    _send_everything_due(settings)
    _send_everything_due(settings)
    # Once the remainder has entered the units, the campaign is compared at the full split.
    dbt(settings, "build", "--select", *ENGAGEMENT_MODELS)
    after = _holdout_readout(settings)
    assert not after.has_srm and sum(a.units for a in after.arms) > sum(a.units for a in before.arms)
    with warehouse.connect() as conn:
        per_customer = conn.fetchall(
            "SELECT customer_id, count(*) FROM ops.send_ledger WHERE campaign_id = ? AND state = 'accepted' "
            "GROUP BY customer_id HAVING count(*) > 1", [CAMPAIGN])
        sent_remainder = conn.scalar(
            "SELECT count(*) FROM ops.send_ledger AS l JOIN ops.campaign_assignments AS a ON a.campaign_id = "
            "l.campaign_id AND a.run_key = l.run_key AND a.customer_id = l.customer_id WHERE l.campaign_id = ? "
            "AND a.phase = 'remainder' AND l.state = 'accepted' AND l.variant_id = 'b'", [CAMPAIGN])
    assert per_customer == [] and sent_remainder > 0
    outbox = list((settings.data_dir / "outbox" / CAMPAIGN).glob("*.eml"))
    with warehouse.connect() as conn:
        assert len(outbox) == conn.scalar("SELECT count(*) FROM ops.send_ledger WHERE campaign_id = ? "
                                          "AND state = 'accepted'", [CAMPAIGN])


def test_no_difference_waits_and_the_deadline_sends_the_control(campaigned_warehouse):
    settings = campaigned_warehouse.settings
    warehouse, campaign = Warehouse(settings), _weekly(**SMALL)
    _engagement_arrives(settings, NO_DIFFERENCE)
    deadline = _started(warehouse) + timedelta(hours=campaign.experiment.decide_within_hours)

    [early] = roll_out(warehouse, campaign, _renderer(settings), deadline - timedelta(hours=1))
    assert early.decision is None and "no significant difference" in early.waiting_reason
    with warehouse.connect() as conn:
        assert decisions_of(conn, CAMPAIGN) == []
        assert conn.scalar("SELECT count(*) FROM ops.campaign_assignments WHERE campaign_id = ? AND arm IS NULL",
                           [CAMPAIGN]) > 0

    [late] = roll_out(warehouse, campaign, _renderer(settings), deadline)
    assert late.decision.variant_id == "a" and late.decision.rule == "deadline"  # the control, no false winner
    assert late.rendered > 0 and "no significant difference" in late.decision.reason
    with warehouse.connect() as conn:
        assert {arm for (arm,) in conn.fetchall(
            "SELECT DISTINCT arm FROM ops.campaign_assignments WHERE campaign_id = ? AND phase = 'remainder'",
            [CAMPAIGN])} == {"a"}


def test_the_roll_out_runs_as_its_own_job_below_fresh_engagement(prepared_dbt):
    definitions = load_definitions()
    graph = definitions.resolve_asset_graph()
    rollout = dg.AssetKey(["campaigns", CAMPAIGN, f"{CAMPAIGN}_rollout"])
    readout = dg.AssetKey(["campaigns", CAMPAIGN, f"{CAMPAIGN}_readout"])
    # Below the assignments it updates, not below the readout: that would close a loop through the ledger.
    assert graph.get(rollout).parent_keys == {dg.AssetKey(["staging", "stg_ops__campaign_assignments"]),
                                              dg.AssetKey(["campaigns", CAMPAIGN, f"{CAMPAIGN}_messages"])}
    assert dg.AssetKey(["marts", "experiment_units"]) in graph.get(readout).parent_keys
    assert rollout in graph.get(dg.AssetKey(["campaigns", CAMPAIGN, f"{CAMPAIGN}_sends"])).parent_keys
    assert dg.AssetCheckKey(rollout, "gx_campaign_messages") in graph.asset_check_keys  # the remainder's gate
    job = definitions.resolve_job_def(f"{CAMPAIGN}_rollout").asset_layer.executable_asset_keys
    assert {rollout, readout, dg.AssetKey(["raw", "esp_events"]), dg.AssetKey(["marts", "experiment_units"]),
            dg.AssetKey(["campaigns", CAMPAIGN, f"{CAMPAIGN}_sends"])} <= set(job)
    daily = definitions.resolve_job_def("daily_campaign_pipeline").asset_layer.executable_asset_keys
    assert readout in daily and rollout not in daily


def _roll_out_in_a_process(settings_env: dict, start, results) -> None:
    import os

    os.environ.update(settings_env)
    from dagster_project.settings import load_settings

    settings = load_settings()
    start.wait(timeout=60)
    looks = roll_out(Warehouse(settings), _weekly(**SMALL), _renderer(settings),
                     datetime.now(timezone.utc).replace(tzinfo=None))
    results.put([(look.run_key, look.decision.variant_id if look.decision else None, look.rendered) for look in looks])


@pytest.mark.parametrize("warehouse_kind", ["postgres"], indirect=True)
def test_two_rollouts_started_together_decide_once_and_render_once(campaigned_warehouse):
    import multiprocessing

    from conftest import settings_environment

    settings = campaigned_warehouse.settings
    _engagement_arrives(settings, B_WINS)
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_roll_out_in_a_process, args=(settings_environment(settings), start, results))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0

    # One of them decided and rendered the remainder; the other waited its turn and found nothing to do.
    assert sorted(len(looks) for looks in outcomes) == [0, 1]
    [(_, winner, rendered)] = next(looks for looks in outcomes if looks)
    with Warehouse(settings).connect() as conn:
        decisions = decisions_of(conn, CAMPAIGN)
        twice = conn.fetchall("SELECT customer_id FROM ops.campaign_messages WHERE campaign_id = ? "
                              "GROUP BY customer_id, run_key HAVING count(*) > 1", [CAMPAIGN])
        remainder = conn.scalar("SELECT count(*) FROM ops.campaign_messages AS m JOIN ops.campaign_assignments AS a "
                                "ON a.campaign_id = m.campaign_id AND a.run_key = m.run_key AND a.customer_id = "
                                "m.customer_id WHERE m.campaign_id = ? AND a.phase = 'remainder'", [CAMPAIGN])
    assert winner == "b" and len(decisions) == 1 and twice == [] and remainder == rendered > 0


@pytest.mark.parametrize("warehouse_kind", ["duckdb"], indirect=True)
def test_a_sample_ratio_mismatch_blocks_even_the_deadline_until_an_operator_decides(campaigned_warehouse):
    import subprocess
    import sys

    from conftest import settings_environment

    settings = campaigned_warehouse.settings
    warehouse, campaign = Warehouse(settings), _weekly(**SMALL)
    with warehouse.connect() as conn:
        # Most of b's test units end up counted as a's: the split no longer fits the weights.
        b_units = [c for (c,) in conn.fetchall("SELECT customer_id FROM ops.campaign_assignments WHERE campaign_id = ? "
                                               "AND phase = 'test' AND arm = 'b' ORDER BY customer_id", [CAMPAIGN])]
        for customer in b_units[: len(b_units) * 9 // 10]:
            conn.execute("UPDATE ops.campaign_assignments SET arm = 'a' WHERE campaign_id = ? AND customer_id = ?",
                         [CAMPAIGN, customer])
        run_key, started = conn.fetchall("SELECT run_key, min(assigned_at) FROM ops.campaign_assignments "
                                         "WHERE campaign_id = ? GROUP BY run_key", [CAMPAIGN])[0]
    _engagement_arrives(settings, NO_DIFFERENCE)
    past_deadline = started + timedelta(hours=campaign.experiment.decide_within_hours + 1)

    [blocked] = roll_out(warehouse, campaign, _renderer(settings), past_deadline)
    assert blocked.decision is None and blocked.readout.has_srm and "sample ratio mismatch" in blocked.waiting_reason

    def decide(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dagster_project.experiments", "decide", *args],
                              env={**os.environ, **settings_environment(settings)}, capture_output=True, text=True)

    wrong = decide(CAMPAIGN, run_key, "c", "--reason", "assignment bug fixed")
    assert wrong.returncode == 2 and "variant 'c' is not one of campaign weekly_picks's: a, b" in wrong.stderr
    done = decide(CAMPAIGN, run_key, "a", "--reason", "b's units were mislabelled; the control is safe")
    assert done.returncode == 0, done.stderr
    assert f"job {CAMPAIGN}_rollout" in done.stdout

    [rolled] = roll_out(warehouse, campaign, _renderer(settings), past_deadline)
    assert rolled.decision.rule == "manual" and rolled.decision.variant_id == "a" and rolled.rendered > 0
    assert decide(CAMPAIGN, run_key, "b", "--reason", "again").returncode == 2  # nothing waits any more
