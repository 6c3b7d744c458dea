"""Campaign performance per variant and segment (marts.campaign_performance, the readout's table) after
the weekly campaign's week, on both warehouses.

The batch run of the `campaigns` template mailed the test fraction of weekly_picks and held out its
holdout. Both engines get the same world: the PostgreSQL copy takes the DuckDB copy's ops state
(Message-IDs are keyed with each data directory's own secret, so only the same rows give the same
simulated answer), then the same provider events, the orders that follow some clicks and one
unsubscribe link arrive on each, and dbt rebuilds the models below the mart. The rows add up to the
send ledger and the engagement facts on each engine, and are identical on the two."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from dagster_project.defs.experiments.assets import campaign_performance_key
from dagster_project.defs.personalization.campaign_assets import load_campaigns, readout_key
from dagster_project.experiments.performance import (
    ALL_SEGMENTS,
    HOLDOUT,
    RATES,
    PerformanceRow,
    campaign_performance,
    totals_by_arm,
)
from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.sources import SOURCES
from dagster_project.personalization.render import UnsubscribeToken
from dagster_project.pipeline import load_definitions
from dagster_project.sample_data.engagement import EngagementRates, simulate_engagement
from dagster_project.settings import Settings
from dagster_project.warehouse import Warehouse
from reverse_etl.receiver.landing_writer import write_landing_file
from reverse_etl.receiver.unsubscribe import CONSENT_SOURCE, FILE_PREFIX, opt_out_event

from conftest import _copy_warehouse, settings_environment
from dbt_runner import dbt
from pipeline_helpers import table_rows

pytestmark = pytest.mark.postgres  # both engines, through the session's built templates

CAMPAIGN = "weekly_picks"
KINDS = ("duckdb", "postgres")
# Enough engagement in a few dozen messages per arm that every column has something to count.
RATES_OF_THE_WEEK = {(CAMPAIGN, "a"): EngagementRates(human_open=0.5, click_given_open=0.5, purchase_given_click=0.6),
                     (CAMPAIGN, "b"): EngagementRates(human_open=0.8, click_given_open=0.8, purchase_given_click=0.6)}
OPS_STATE = ("ops.campaign_assignments", "ops.campaign_messages", "ops.send_ledger", "ops.campaign_suppressions",
             "ops.content", "ops.llm_calls")
EMPTY_WITHOUT_AN_LLM = ("ops.llm_calls",)  # the sample campaigns are written by the rules
# What the new provider events, orders and the opt-out flow into, up to the mart, and the facts of
# opens and clicks the test counts them against.
MODELS = [f"{start}+,+campaign_performance" for start in (
    "stg_esp__events", "stg_cdp__events", "stg_consent__events", "stg_ops__send_ledger",
    "stg_ops__campaign_messages", "stg_ops__campaign_assignments")] + ["fct_email_opens", "fct_email_clicks"] + [
    "path:models/marts/engagement", "stg_ops__content+", "stg_ops__llm_calls+", "stg_ops__campaign_suppressions+",
    "path:models/marts/metrics"]
METRICS = tuple(f"marts.{name}" for name in (
    "email_message_outcomes", "metrics_email_daily", "metrics_llm_daily", "metrics_content_daily",
    "metrics_suppressions_daily", "metrics_delivery_daily", "metrics_send_runs", "metrics_provider_responses_daily",
    "metrics_opt_outs_daily", "metrics_engagement_cohorts", "metrics_engagement_decay"))
UNIT_TEST = "campaign_performance_per_arm_and_segment_holdout_unsent"


def test_performance_adds_up_on_both_engines_and_is_identical(built_templates, tmp_path, request, monkeypatch):
    cleanup = ExitStack()
    request.addfinalizer(cleanup.close)
    worlds = {kind: _copy_warehouse(built_templates(kind, "campaigns").settings, tmp_path / kind / "data", request,
                                    cleanup) for kind in KINDS}
    _same_ops_state(Warehouse(worlds["duckdb"]), Warehouse(worlds["postgres"]))
    week_later, unsubscriber = _a_week_later(Warehouse(worlds["duckdb"]))

    for settings in worlds.values():
        _the_week_arrives(settings, week_later, unsubscriber)
        _adds_up(Warehouse(settings), unsubscriber)

    contents = []
    for settings in worlds.values():
        with Warehouse(settings).connect() as conn:
            contents.append({table: table_rows(conn, table) for table in ("marts.campaign_performance", *METRICS)})
    assert len(contents[0]["marts.campaign_performance"]) > 0
    for table, rows in contents[0].items():
        assert rows == contents[1][table], table
    _metrics_add_up(Warehouse(worlds["duckdb"]))

    # The readout asset shows the latest run's table first, the holdout beside the variants.
    for name, value in settings_environment(worlds["duckdb"]).items():
        monkeypatch.setenv(name, value)
    _readout_shows_performance(worlds["duckdb"])


def _same_ops_state(source: Warehouse, target: Warehouse) -> None:
    with source.connect() as duck, target.connect() as pg:
        for table in OPS_STATE:
            schema, name = table.split(".")
            columns = [c for (c,) in duck.fetchall(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
                "ORDER BY ordinal_position", [schema, name])]
            rows = duck.fetchall(f"SELECT {', '.join(columns)} FROM {table}")
            pg.execute(f"DELETE FROM {table}")
            insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
            for row in rows:
                pg.execute(insert, list(row))
            assert rows or table in EMPTY_WITHOUT_AN_LLM, table


def _a_week_later(warehouse: Warehouse) -> tuple[datetime, UnsubscribeToken]:
    """The clock two days after the last planned delivery (every simulated event happens after its
    message went out), and a customer of variant b who was sent the newsletter and unsubscribes."""
    with warehouse.connect() as conn:
        last_sent = conn.scalar("SELECT max(coalesce(deliver_at, finished_at)) FROM ops.send_ledger "
                                "WHERE state = 'accepted'")
        customer_id, email = conn.fetchall(
            "SELECT m.customer_id, m.to_email FROM ops.campaign_messages AS m JOIN ops.send_ledger AS l "
            "ON l.message_id = m.message_id WHERE m.campaign_id = ? AND m.variant_id = 'b' AND l.state = 'accepted' "
            "ORDER BY m.customer_id LIMIT 1", [CAMPAIGN])[0]
    return last_sent + timedelta(days=2), UnsubscribeToken(customer_id, CAMPAIGN, email)


def _the_week_arrives(settings: Settings, now: datetime, unsubscriber: UnsubscribeToken) -> None:
    warehouse = Warehouse(settings)
    assert simulate_engagement(warehouse, settings.landing_dir, latest=now, rates=RATES_OF_THE_WEEK) is not None
    opt_out = opt_out_event(unsubscriber, now=now.replace(tzinfo=timezone.utc))
    write_landing_file(settings.landing_dir / CONSENT_SOURCE, FILE_PREFIX, [_json(opt_out)])
    for source in ("esp", "cdp", "consent"):
        report = ingest_source(warehouse, SOURCES[source], settings.landing_dir, now=now, workers=1)
        assert report.files_loaded and not any(f.rows_quarantined for f in report.files_loaded), report
    built = dbt(settings, "build", "--select", *MODELS)
    assert f"PASS campaign_performance::{UNIT_TEST}" in built.stdout  # the unit test ran on this engine


def _adds_up(warehouse: Warehouse, unsubscriber: UnsubscribeToken) -> None:
    with warehouse.connect() as conn:
        rows = campaign_performance(conn, CAMPAIGN)
        [run_key] = {row.run_key for row in rows}
        accepted = _by(conn, "SELECT l.variant_id, m.segment_key, count(*) FROM ops.send_ledger AS l "
                       "JOIN ops.campaign_messages AS m ON m.message_id = l.message_id WHERE l.campaign_id = ? "
                       "AND l.run_key = ? AND l.state = 'accepted' GROUP BY l.variant_id, m.segment_key", run_key)
        assigned = _by(conn, "SELECT arm, count(*) FROM ops.campaign_assignments WHERE campaign_id = ? "
                       "AND run_key = ? AND arm IS NOT NULL GROUP BY arm", run_key)
        human_opens = _by(conn, _per_variant("marts.fct_email_opens", "NOT e.is_machine_open"), run_key)
        machine_only = conn.scalar(
            "SELECT count(*) FROM (SELECT message_id FROM marts.fct_email_opens GROUP BY message_id "
            "HAVING bool_and(is_machine_open)) AS machine_only")
        clicks = _by(conn, _per_variant("marts.fct_email_clicks"), run_key)
        bounces = _by(conn, _per_variant("marts.fct_email_bounces"), run_key)
        unsubscriber_segment = conn.scalar("SELECT segment_key FROM ops.campaign_messages WHERE campaign_id = ? "
                                           "AND run_key = ? AND customer_id = ?",
                                           [CAMPAIGN, run_key, unsubscriber.customer_id])
        revenue = _by(conn, "SELECT arm, sum(revenue) FROM marts.experiment_units WHERE campaign_id = ? "
                      "AND run_key = ? GROUP BY arm", run_key)
        rates = {(arm, segment): tuple(values) for arm, segment, *values in conn.fetchall(
            f"SELECT arm, segment_key, {', '.join(RATES)} FROM marts.campaign_performance "
            "WHERE campaign_id = ? AND run_key = ?", [CAMPAIGN, run_key])}
    totals = {row.arm: row for row in totals_by_arm(rows)}

    # Sends per arm and segment are the ledger's accepted messages of each variant and segment.
    assert {(row.arm, row.segment_key): row.sends for row in rows if row.sends} == accepted
    assert {arm: total.sends for arm, total in totals.items() if arm != HOLDOUT} == _summed(accepted)
    # Units are the assignments (intent to treat); the holdout has units and no mail at all.
    assert {arm: total.units for arm, total in totals.items()} == assigned
    holdout = totals[HOLDOUT]
    assert holdout.units > 0 and holdout.sends == holdout.deliveries == holdout.human_opens == holdout.clicks == 0
    assert holdout.unsubscribes == holdout.bounces == holdout.spam_reports == 0
    # Opens are people's: a message opened only by a machine (Apple MPP) is not among them.
    assert machine_only > 0 and _of_variants(totals, "human_opens") == human_opens
    assert _of_variants(totals, "clicks") == clicks and _of_variants(totals, "bounces") == bounces
    assert sum(total.clicks for total in totals.values()) > 0
    # Orders after the clicks are conversions, their revenue summed exactly.
    assert {arm: total.revenue for arm, total in totals.items() if total.revenue} == \
        {arm: value for arm, value in revenue.items() if value}
    assert sum(total.conversions for arm, total in totals.items() if arm != HOLDOUT) > 0
    # The one-click link names only the campaign: it counts for the customer's message of the run.
    [unsubscribed] = [row for row in rows if row.arm == "b" and row.segment_key == unsubscriber_segment]
    assert unsubscribed.unsubscribes >= 1
    # The mart's rates are the ones experiments/performance.py computes from the counts.
    for row in rows:
        assert rates[(row.arm, row.segment_key)] == tuple(row.rates().values()), row


# Facts of the messages the ledger accepted (the sample's history has provider events of its own).
SENT_MESSAGES = ("SELECT count(DISTINCT f.message_id) FROM marts.{fact} AS f JOIN ops.send_ledger AS l "
                 "ON l.message_id = f.message_id AND l.state = 'accepted'{where}")


def _metrics_add_up(warehouse: Warehouse) -> None:
    """Every metrics mart counts the same messages, suppressions and spend as the tables it comes from."""
    with warehouse.connect() as conn:
        one = conn.scalar
        accepted = one("SELECT count(*) FROM ops.send_ledger WHERE state = 'accepted'")
        assert accepted > 0 and one("SELECT sum(sends) FROM marts.metrics_email_daily") == accepted
        assert one("SELECT sum(deliveries) FROM marts.metrics_email_daily") == \
            one(SENT_MESSAGES.format(fact="fct_email_deliveries", where="")) > 0
        assert one("SELECT sum(human_opens) FROM marts.metrics_email_daily") == \
            one(SENT_MESSAGES.format(fact="fct_email_opens", where=" AND NOT f.is_machine_open")) > 0
        assert one("SELECT sum(clicks) FROM marts.metrics_email_daily") == \
            one(SENT_MESSAGES.format(fact="fct_email_clicks", where="")) > 0
        assert one("SELECT sum(hard_bounces) + sum(soft_bounces) FROM marts.metrics_email_daily") == \
            one(SENT_MESSAGES.format(fact="fct_email_bounces", where=""))
        assert one("SELECT sum(revenue) FROM marts.metrics_email_daily") == \
            one("SELECT sum(f.revenue) FROM marts.fct_email_conversions AS f JOIN ops.send_ledger AS l "
                "ON l.message_id = f.message_id AND l.state = 'accepted'") > 0
        assert one("SELECT sum(customers) FROM marts.metrics_suppressions_daily WHERE stage = 'audience'") == \
            one("SELECT count(*) FROM ops.campaign_suppressions")
        assert (one("SELECT sum(customers) FROM marts.metrics_suppressions_daily WHERE stage = 'pre_send'") or 0) == \
            one("SELECT count(*) FROM ops.send_ledger WHERE state = 'suppressed'")
        assert one("SELECT sum(messages) FROM marts.metrics_delivery_daily") == \
            one("SELECT count(*) FROM ops.send_ledger")
        assert one("SELECT sum(messages_rendered) FROM marts.metrics_content_daily") == \
            one("SELECT count(*) FROM ops.campaign_messages")
        assert one("SELECT sum(content_units) FROM marts.metrics_content_daily") == \
            one("SELECT count(*) FROM ops.content")
        assert one("SELECT sum(messages_handed_over) FROM marts.metrics_send_runs") == accepted
        assert one("SELECT sum(sends) FROM marts.metrics_engagement_decay") == accepted
        assert one("SELECT count(*) FROM marts.metrics_engagement_cohorts WHERE NOT "
                   "(0 < engaged_customers AND engaged_customers <= cohort_customers)") == 0
        assert one("SELECT count(*) FROM marts.metrics_engagement_cohorts") > 0


def _readout_shows_performance(settings: Settings) -> None:
    campaign = next(c for c in load_campaigns() if c.campaign_id == CAMPAIGN)
    key = readout_key(campaign)
    definitions = load_definitions()
    assert campaign_performance_key() in definitions.resolve_asset_graph().get(key).parent_keys  # lineage
    job = definitions.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), asset_selection=[key])
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    metadata = event.materialization.metadata
    assert next(iter(metadata)) == "performance"
    table = metadata["performance"]
    assert isinstance(table, dg.TableMetadataValue)
    assert [c.name for c in table.schema.columns][:4] == ["segment", "arm", "units", "sends"]

    with Warehouse(settings).connect() as conn:
        rows = campaign_performance(conn, CAMPAIGN)
    totals = totals_by_arm(rows)
    records = [record.data for record in table.records]
    assert len(records) == len(totals) + len(rows)
    # Per arm the total over all segments first, the holdout after the variants; then each segment.
    assert [(r["segment"], r["arm"]) for r in records[:len(totals)]] == [(ALL_SEGMENTS, "a"), (ALL_SEGMENTS, "b"),
                                                                          (ALL_SEGMENTS, HOLDOUT)]
    assert [(r["segment"], r["arm"]) for r in records[len(totals):]] == [(r.segment_key, r.arm) for r in rows]
    b, holdout = totals[1], totals[2]
    assert records[1]["clicks"] == f"{b.clicks:,} ({b.clicks / b.deliveries:.1%})"
    assert records[1]["revenue"] == f"{b.revenue:,.2f} ({float(b.revenue) / b.units:,.2f} / unit)"
    assert records[2]["sends"] == "0" and records[2]["delivered"] == "0"  # no rate without a send
    assert records[2]["units"] == f"{holdout.units:,}"
    assert records[2]["conversions"] == f"{holdout.conversions:,} ({holdout.conversions / holdout.units:.1%})"
    # Numbers the UI plots across runs: the variants pooled.
    assert metadata["sends"].value == totals[0].sends + b.sends
    assert metadata["revenue"].value == float(totals[0].revenue + b.revenue) > 0
    assert metadata["click_rate"].value == \
        round((totals[0].clicks + b.clicks) / (totals[0].deliveries + b.deliveries), 4)


def _per_variant(fact: str, condition: str = "TRUE") -> str:
    """Distinct messages of the campaign run with an event in `fact`, per variant (from the ledger)."""
    return (f"SELECT l.variant_id, count(DISTINCT e.message_id) FROM {fact} AS e JOIN ops.send_ledger AS l "
            f"ON l.message_id = e.message_id WHERE l.campaign_id = ? AND l.run_key = ? AND {condition} "
            "GROUP BY l.variant_id")


def _by(conn, sql: str, run_key: str) -> dict:
    """{key or (keys...): value} from rows (key..., value)."""
    found = {}
    for *keys, value in conn.fetchall(sql, [CAMPAIGN, run_key]):
        found[keys[0] if len(keys) == 1 else tuple(keys)] = value
    return found


def _summed(per_segment: dict[tuple[str, str], int]) -> dict[str, int]:
    sums: dict[str, int] = {}
    for (arm, _), value in per_segment.items():
        sums[arm] = sums.get(arm, 0) + value
    return sums


def _of_variants(totals: dict[str, PerformanceRow], count: str) -> dict[str, int]:
    return {arm: getattr(total, count) for arm, total in totals.items() if arm != HOLDOUT and getattr(total, count)}


def _json(event: dict) -> bytes:
    import json

    return json.dumps(event, separators=(",", ":")).encode("utf-8")
