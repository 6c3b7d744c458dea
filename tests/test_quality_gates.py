"""Quality gates on real warehouses: clean data passes, each corruption fails the gate that should
catch it, and a failed gate stops everything downstream in the same Dagster run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from dagster_project.defs.personalization.campaign_assets import load_campaigns
from dagster_project.ingest.sources import SOURCES
from dagster_project.pipeline import load_definitions
from dagster_project.quality.gates import run_gate
from dagster_project.quality.suites import load_suites, load_templates
from dagster_project.warehouse import Warehouse

from pipeline_helpers import run_daily_pipeline, with_landing

# (suite, statement, the expectation that must fail). Each corruption targets its own expectation,
# so all are applied at once and every gate runs once.
CORRUPTIONS = [
    ("raw_cdp_events",
     "insert into raw.cdp_events select * from raw.cdp_events "
     "where message_id = (select min(message_id) from raw.cdp_events)",
     "expect_column_values_to_be_unique(message_id)"),
    ("raw_cdp_events",
     "update raw.cdp_events set event_name = null where message_id = "
     "(select max(message_id) from raw.cdp_events where event_type = 'track')",
     "expect_column_values_to_not_be_null(event_name)"),
    ("raw_cdp_events",
     "update raw.cdp_events set event_at = timestamp '2099-01-01 00:00:00' where message_id = "
     "(select max(message_id) from raw.cdp_events where event_type = 'page')",
     "expect_column_values_to_be_between(event_at)"),
    ("raw_crm_contacts",
     "update raw.crm_contacts set email = 'not-an-email' "
     "where contact_id = (select min(contact_id) from raw.crm_contacts)",
     "expect_column_values_to_match_regex(email)"),
    ("raw_consent_events",
     "update raw.consent_events set status = 'OPT_IN' where event_id = (select min(event_id) from raw.consent_events)",
     "expect_column_values_to_be_in_set(status)"),
    ("raw_products",
     "update raw.products set price = -5 where product_id = (select min(product_id) from raw.products)",
     "expect_column_values_to_be_between(price)"),
    ("raw_esp_events",
     "update raw.esp_events set sg_event_id = null where sg_event_id = (select min(sg_event_id) from raw.esp_events)",
     "expect_column_values_to_not_be_null(sg_event_id)"),
    ("dim_customers",
     "insert into marts.dim_customers select * from marts.dim_customers where customer_id = "
     "(select min(customer_id) from marts.dim_customers)",
     "expect_column_values_to_be_unique(customer_id)"),
    ("dim_customers",
     "update marts.dim_customers set timezone = 'Mars/Olympus' where customer_id = "
     "(select max(customer_id) from marts.dim_customers)",
     "expect_column_values_to_be_in_set(timezone)"),
    ("customer_features",
     "update marts.customer_features set engagement_score = 150 where customer_id = "
     "(select min(customer_id) from marts.customer_features)",
     "expect_column_values_to_be_between(engagement_score)"),
    ("customer_features",
     "update marts.customer_features set best_send_hour = 24 where customer_id = "
     "(select max(customer_id) from marts.customer_features)",
     "expect_column_values_to_be_between(best_send_hour)"),
    # Customers without valid consent, or suppressed by the provider, slipped into the audience.
    ("send_eligibility",
     "update marts.send_eligibility set is_eligible = true, ineligible_reason = null where customer_id = "
     "(select min(customer_id) from marts.send_eligibility where ineligible_reason = 'opted_out')",
     "expect_column_values_to_not_be_in_set(consent_status)"),
    ("send_eligibility",
     "update marts.send_eligibility set is_eligible = true, ineligible_reason = null where customer_id = "
     "(select min(customer_id) from marts.send_eligibility where ineligible_reason = 'no_explicit_consent')",
     "expect_column_values_to_be_in_set(has_express_consent)"),
    ("send_eligibility",
     "update marts.send_eligibility set is_eligible = true, ineligible_reason = null where customer_id = "
     "(select min(customer_id) from marts.send_eligibility where ineligible_reason = 'hard_bounced')",
     "expect_column_values_to_be_in_set(provider_suppressions)"),
]


def gate_checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {c.check_name: c for c in result.get_asset_check_evaluations() if c.check_name.startswith("gx_")}


def dbt_materializations(result: dg.ExecuteInProcessResult) -> list[dg.AssetKey]:
    return [
        e.asset_key for e in result.get_asset_materialization_events()
        if e.asset_key.path[0] in ("staging", "intermediate", "marts")
    ]


PROBE = dg.AssetKey(["campaign_probe"])


def run_with_downstream_probe(only_features: bool = False) -> tuple[dg.ExecuteInProcessResult, list]:
    """The daily job plus an asset that reads customer_features, standing in for personalization
    and sends; returns the run and a list that holds True if the probe ran. `only_features`: just
    customer_features (its dbt model, tests and gate) and the probe, on a warehouse built already."""
    ran = []

    @dg.asset(key=PROBE, deps=[dg.AssetKey(["marts", "customer_features"])])
    def campaign_probe() -> None:
        ran.append(True)

    from dagster_project.defs.activation.ops_assets import ops_table_keys
    from dagster_project.defs.personalization.campaign_assets import batch_campaign_assets, load_campaigns

    # The daily job's assets (not the ops tables', batch campaigns' or the predictive models') and the probe.
    selection = (dg.AssetSelection.all() - batch_campaign_assets(load_campaigns())
                 - dg.AssetSelection.assets(*ops_table_keys()) - dg.AssetSelection.groups("predictive")
                 - dg.AssetSelection.assets(dg.AssetKey(["privacy", "request_work"])))
    if only_features:
        selection = dg.AssetSelection.assets(dg.AssetKey(["marts", "customer_features"]), PROBE)
    defs = dg.Definitions.merge(
        load_definitions(),
        dg.Definitions(assets=[campaign_probe], jobs=[dg.define_asset_job("with_probe", selection)]),
    )
    result = defs.resolve_job_def("with_probe").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    return result, ran


def test_clean_data_passes_every_gate_then_each_corruption_fails_its_gate(built_warehouse):
    settings, result = built_warehouse
    checks = gate_checks(result)
    # Every suite, plus the audience template on each campaign's audience. No messages template: no trigger
    # campaign ships (the daily job would render one), batch campaigns render in their own jobs, journeys
    # one customer at a time.
    assert set(checks) == {suite.check_name for suite in load_suites(settings.expectations_dir)} | {
        "gx_campaign_audience"}
    audiences = {c.asset_key for c in result.get_asset_check_evaluations() if c.check_name == "gx_campaign_audience"}
    assert audiences == {dg.AssetKey(["marts", campaign.model]) for campaign in load_campaigns()}
    assert all(check.passed for check in checks.values()), {n: c.description for n, c in checks.items() if not c.passed}
    assert checks["gx_raw_cdp_events"].metadata["volume_ratio"].value > 0

    warehouse = Warehouse(settings)
    with warehouse.connect() as conn:
        for _, statement, _ in CORRUPTIONS:
            assert conn.execute(statement) >= 1, statement
    outcomes = {
        suite.name: run_gate(warehouse, suite, settings.reference_time())
        for suite in load_suites(settings.expectations_dir)
    }
    for suite_name, _, expectation in CORRUPTIONS:
        assert expectation in outcomes[suite_name].blocking_failures, (suite_name, outcomes[suite_name].failures)
    crm = next(o for o in outcomes["raw_crm_contacts"].failures if o.column == "email")
    assert crm.unexpected_count == 1 and "not-an-email" not in " ".join(crm.failing_keys)
    assert crm.failing_keys[0].startswith("contact_id=")
    if settings.warehouse == "postgres":  # pushed down: GX hands back SQL that finds the failing rows
        assert "FROM crm_contacts" in crm.unexpected_index_query and "search_path TO raw" in crm.unexpected_index_query


def test_a_failed_raw_gate_stops_the_warehouse_build(built_warehouse):
    """Rows loaded into raw by another tool, bypassing ingest's checks, are caught before dbt runs."""
    settings = built_warehouse.settings
    with Warehouse(settings).connect() as conn:
        conn.execute(CORRUPTIONS[0][1])
        before = conn.scalar("select count(*) from marts.dim_customers")
        conn.execute("delete from marts.dim_customers")

    result = run_daily_pipeline()
    assert not result.success
    gate = gate_checks(result)["gx_raw_cdp_events"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert "expect_column_values_to_be_unique(message_id)" in gate.metadata["blocking_failures"].value
    assert "FAIL" in gate.metadata["results"].value
    assert dbt_materializations(result) == []
    with Warehouse(settings).connect() as conn:
        assert conn.scalar("select count(*) from marts.dim_customers") == 0 < before  # dbt never ran


def _drop_recent_events(landing: Path, keep_every: int, since: str) -> int:
    """Keeps one in `keep_every` CDP events with a timestamp on or after `since`; returns rows dropped."""
    dropped = 0
    for path in sorted((landing / "cdp").glob("*.jsonl")):
        kept = []
        for position, line in enumerate(path.read_text().splitlines()):
            try:
                timestamp = json.loads(line).get("timestamp")
            except (json.JSONDecodeError, AttributeError):
                timestamp = None
            if isinstance(timestamp, str) and timestamp >= since and position % keep_every:
                dropped += 1
                continue
            kept.append(line)
        path.write_text("\n".join(kept) + "\n")
    return dropped


def test_a_volume_drop_blocks_the_run(mailroom_env, sample_landing, prepared_dbt):
    settings = with_landing(mailroom_env, sample_landing)
    assert _drop_recent_events(settings.landing_dir, keep_every=10, since="2026-10-25") > 100

    result = run_daily_pipeline()
    gate = gate_checks(result)["gx_raw_cdp_events"]
    assert not gate.passed
    assert gate.metadata["blocking_failures"].value == "volume_within_band"
    assert gate.metadata["volume_ratio"].value < 0.33
    assert dbt_materializations(result) == []


def test_adding_an_expectation_to_a_suite_file_blocks_downstream_assets(built_warehouse, tmp_path, monkeypatch):
    """Suites are data: one more expectation in JSON, no code change, and the run stops."""
    settings = built_warehouse.settings
    suites = tmp_path / "expectations"
    shutil.copytree(settings.expectations_dir, suites)
    document = json.loads((suites / "customer_features.json").read_text())
    document["expectations"].append({
        "type": "expect_column_max_to_be_between",
        "kwargs": {"column": "engagement_score", "max_value": 1},
        "severity": "critical",
    })
    (suites / "customer_features.json").write_text(json.dumps(document))
    monkeypatch.setenv("MAILROOM_EXPECTATIONS_DIR", str(suites))

    result, ran = run_with_downstream_probe(only_features=True)
    gate = gate_checks(result)["gx_customer_features"]
    assert not gate.passed
    assert "expect_column_max_to_be_between(engagement_score)" in gate.metadata["blocking_failures"].value
    assert ran == []
    assert PROBE not in {e.asset_key for e in result.get_asset_materialization_events()}


@pytest.mark.parametrize("warehouse_kind", ["duckdb"], indirect=False)
def test_without_a_failing_gate_the_downstream_asset_runs(built_warehouse):
    result, ran = run_with_downstream_probe(only_features=True)
    assert result.success and ran == [True]
    assert gate_checks(result)["gx_customer_features"].passed


@pytest.mark.slow
def test_a_failing_dbt_test_blocks_downstream_assets(mailroom_env, sample_landing, prepared_dbt):
    """An order line without a product id passes the raw gates (properties are free-form JSON) but
    fails dbt's error-severity not_null test on stg_cdp__order_items: the dbt step fails, dbt skips
    the models below the test, and nothing downstream runs."""
    settings = with_landing(mailroom_env, sample_landing)
    path = next(p for p in sorted((settings.landing_dir / "cdp").glob("*.jsonl"))
                if '"Order Completed"' in p.read_text())
    lines = path.read_text().splitlines()
    position = next(i for i, line in enumerate(lines) if '"Order Completed"' in line and '"product_id"' in line)
    lines[position] = lines[position].replace('"product_id"', '"productid"')
    path.write_text("\n".join(lines) + "\n")

    result, ran = run_with_downstream_probe()
    assert all(check.passed for check in gate_checks(result).values() if check.asset_key.path[0] == "raw")
    dbt_test = next(
        c for c in result.get_asset_check_evaluations() if c.check_name == "not_null_stg_cdp__order_items_product_id"
    )
    assert not dbt_test.passed
    assert ran == []  # the dbt step failed, so Dagster runs nothing below it
    assert dg.AssetKey(["marts", "product_recommendations"]) not in dbt_materializations(result)  # dbt skipped it


@pytest.mark.slow
@pytest.mark.parametrize("warehouse_kind", ["duckdb"], indirect=False)
def test_a_source_without_new_files_shows_stale_without_blocking(built_warehouse):
    settings = built_warehouse.settings
    with Warehouse(settings).connect() as conn:
        conn.execute("update raw.ingested_files set loaded_at = loaded_at - interval '3 days' where source = 'cdp'")

    # Ingest and an asset below it, with the freshness checks: stale data warns, and what depends on it still runs.
    sources = [dg.AssetKey(["raw", source.table]) for source in SOURCES.values()]
    downstream = dg.AssetKey(["ops", "phone_numbers"])
    job = dg.Definitions.merge(load_definitions(), dg.Definitions(jobs=[dg.define_asset_job(
        "ingest_and_below", dg.AssetSelection.assets(*sources, downstream))])).resolve_job_def("ingest_and_below")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success
    assert downstream in {e.asset_key for e in result.get_asset_materialization_events()}
    freshness = {
        c.asset_key.path[-1]: c for c in result.get_asset_check_evaluations() if c.check_name == "landing_freshness"
    }
    assert not freshness["cdp_events"].passed
    assert freshness["cdp_events"].severity == dg.AssetCheckSeverity.WARN
    assert freshness["cdp_events"].metadata["newest_file_age_hours"].value > 70
    assert all(check.passed for name, check in freshness.items() if name != "cdp_events")


def test_quality_docs_report_every_suite(campaigned_warehouse):
    from dagster_project.quality.docs import build_quality_docs

    settings = campaigned_warehouse.settings
    index, results = build_quality_docs(settings)
    assert index == settings.data_dir / "quality-docs" / "index.html" and index.exists()
    names = {result.suite.name for result in results}
    assert {suite.name for suite in load_suites(settings.expectations_dir)} <= names
    assert {"campaign_audience__weekly_picks", "campaign_audience__cart_reminder",
            "campaign_messages__weekly_picks"} <= names
    assert "campaign_messages__cart_reminder" not in names  # a journey's step renders it, one customer at a time
    assert next(r for r in results if r.suite.name == "campaign_messages__weekly_picks").rows > 0
    assert all(r.passed for r in results), [r.suite.name for r in results if not r.passed]
    pages = {path.stem for path in (index.parent / "expectations").glob("*.html")}
    assert names <= pages
    assert list((index.parent / "validations").rglob("*.html"))
    if settings.warehouse == "postgres":  # no connection string left on disk
        assert settings.postgres.dbname not in "".join(p.read_text(errors="ignore")
                                                       for p in index.parent.rglob("*.html"))


def campaign_suite(settings, template: str, campaign_id: str, relation: str, audience: tuple[str, ...]):
    suite = next(s for s in load_templates(settings.expectations_dir) if s.name == template)
    return suite.for_campaign(campaign_id, relation, audience)


def test_campaign_gates_catch_a_customer_without_consent_and_broken_messages(campaigned_warehouse):
    settings = campaigned_warehouse.settings
    warehouse = Warehouse(settings)
    audience = campaign_suite(settings, "campaign_audience", "weekly_picks", "marts.campaign_weekly_picks",
                              ("marts", "campaign_weekly_picks"))
    messages = campaign_suite(settings, "campaign_messages", "weekly_picks", "", ())
    brand = {"postal_address_regex": "100 Example Street", "subject_max_length": 60}
    assert run_gate(warehouse, audience, settings.reference_time()).passed
    assert run_gate(warehouse, messages, settings.reference_time(), parameters=brand).passed

    with warehouse.connect() as conn:
        # An opted-out customer slipped into the audience, and two messages went wrong in rendering.
        assert conn.execute(
            "update marts.campaign_weekly_picks set is_eligible = true, ineligible_reason = null where customer_id = "
            "(select min(customer_id) from marts.campaign_weekly_picks where ineligible_reason = 'opted_out')") == 1
        first, second = [row[0] for row in conn.fetchall(
            "select message_id from ops.campaign_messages where campaign_id = 'weekly_picks' order by 1 limit 2")]
        conn.execute("update ops.campaign_messages set html_body = html_body || '{{ first_name }}' "
                     "where message_id = ?", [first])
        conn.execute("update ops.campaign_messages set text_body = replace(text_body, ?, '') where message_id = ?",
                     ["unsubscribe?token=", second])
    failed_audience = run_gate(warehouse, audience, settings.reference_time()).blocking_failures
    assert "expect_column_values_to_be_in_set(eligible_now)" in failed_audience
    assert "expect_column_values_to_not_be_in_set(email_consent)" in failed_audience
    failed_messages = run_gate(warehouse, messages, settings.reference_time(), parameters=brand).blocking_failures
    assert "expect_column_values_to_not_match_regex(html_body)" in failed_messages
    assert "expect_column_values_to_match_regex(text_body)" in failed_messages


def test_a_failed_audience_gate_stops_the_campaign_before_any_message(built_warehouse, tmp_path, monkeypatch):
    from dagster_project.pipeline import run_batch_campaigns

    settings = built_warehouse.settings
    suites = tmp_path / "expectations"
    shutil.copytree(settings.expectations_dir, suites)
    document = json.loads((suites / "campaign_audience.json").read_text())
    document["expectations"].append({
        "type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": 10}, "severity": "critical",
    })
    (suites / "campaign_audience.json").write_text(json.dumps(document))
    monkeypatch.setenv("MAILROOM_EXPECTATIONS_DIR", str(suites))

    [run] = run_batch_campaigns(dg.DagsterInstance.ephemeral())
    gate = gate_checks(run)["gx_campaign_audience"]
    assert not gate.passed and "expect_table_row_count_to_be_between" in gate.metadata["blocking_failures"].value
    rendered = {e.asset_key for e in run.get_asset_materialization_events()}
    assert dg.AssetKey(["campaigns", "weekly_picks", "weekly_picks_content"]) not in rendered
    with Warehouse(settings).connect() as conn:
        assert not conn.table_exists("ops", "campaign_messages") or conn.scalar(
            "select count(*) from ops.campaign_messages where campaign_id = 'weekly_picks'") == 0


TINY_ROWS = [  # id, amount, event_type, previous_id, email
    ("a1", 5, "track", None, "jane.doe@example.com"),
    ("a2", 200000, "alias", None, "bob@example.com"),
    ("a3", -20, "alias", "p1", "ann@example.com"),
    ("a4", 50, "page", None, None),
]
TINY_SUITE = {
    "name": "tiny",
    "expectations": [
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "amount", "min_value": 0, "max_value": 100000}, "severity": "critical"},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "amount", "min_value": -10, "max_value": 10}, "severity": "warning"},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {
            "column": "previous_id",
            "row_condition": {"column": {"name": "event_type"}, "operator": "==", "parameter": "alias",
                              "type": "comparison"}},
         "severity": "critical", "notes": "Segment spec: an alias call carries previousId."},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "event_type"}, "severity": "critical"},
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "event_type", "value_set": ["track", "alias"]}, "severity": "critical"},
        {"type": "expect_column_values_to_match_regex", "kwargs": {
            "column": "email", "regex": "@example\\.org$",
            "row_condition": {"column": {"name": "email"}, "is_null": False, "type": "nullity"}},
         "severity": "warning", "meta": {"notes": "Our own domain."}},
    ],
    "meta": {"mailroom": {"asset": "raw/tiny", "table": "raw.tiny", "key_columns": ["id"], "pii_columns": ["email"]}},
}


def _table_rows(markdown: str) -> dict[str, list[str]]:
    """The results table as {expectation: [its cells]}, cells split on unescaped pipes."""
    import re

    lines = markdown.splitlines()
    rows = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]
    return {row[0]: row for row in rows}


def test_the_results_table_tells_every_expectation_apart_with_its_condition_and_note(
    warehouse, settings, tmp_path, prepared_dbt
):
    """Two checks on one column, and a check that applies to alias events only, each read as what they
    check, on which rows, why, and with what result; every metadata value a proper MetadataValue."""
    import dagster as dg

    from dagster_project.defs.personalization.resource import PersonalizationResource
    from dagster_project.defs.quality.checks import build_gate_check
    from dagster_project.quality.suites import load_suite
    from dagster_project.resources import WarehouseResource

    warehouse.ensure_schemas()
    with warehouse.connect() as conn:
        conn.execute("create table raw.tiny (id varchar, amount integer, event_type varchar, "
                     "previous_id varchar, email varchar)")
        for row in TINY_ROWS:
            conn.execute("insert into raw.tiny values (?, ?, ?, ?, ?)", list(row))
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_SUITE))
    suite = load_suite(tmp_path / "tiny.json")

    @dg.asset(key=["raw", "tiny"])
    def tiny() -> None:
        pass

    run = dg.materialize([tiny, build_gate_check(suite)], raise_on_error=False, resources={
        "warehouse": WarehouseResource.from_settings(settings),
        "personalization": PersonalizationResource(content_dir=str(tmp_path), data_dir=str(tmp_path),
                                                   unsubscribe_url="http://localhost/u", sender_domain="example.com"),
    })
    [gate] = run.get_asset_check_evaluations()
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    for name, value in gate.metadata.items():
        assert isinstance(value, dg.MetadataValue), name
        assert "unserializable" not in str(value.value), name
        assert dg.deserialize_value(dg.serialize_value(value)) == value, name

    table = _table_rows(gate.metadata["results"].value)
    assert list(table) == [
        "amount between 0 and 100,000", "amount between -10 and 10", "previous\\_id not null",
        "event\\_type not null", "event\\_type in {track, alias}", "email matches /@example\\\\.org$/",
    ]
    # expectation | applies to | note | severity | result | unexpected rows | % of rows checked | failing rows
    assert table["amount between 0 and 100,000"][1:7] == ["all rows", "", "critical", "**FAIL**", "2", "50%"]
    assert table["amount between -10 and 10"][3:7] == ["warning", "**FAIL**", "3", "75%"]
    assert table["previous\\_id not null"][1:7] == [
        "rows where event\\_type is alias", "Segment spec: an alias call carries previousId.", "critical",
        "**FAIL**", "1", "50%"]
    assert table["previous\\_id not null"][7] == "id=a2, previous\\_id=null"  # NaN from pandas reads as null
    assert table["event\\_type not null"][4:7] == ["pass", "0", "0%"]
    email = table["email matches /@example\\\\.org$/"]
    assert email[1:3] == ["rows where email has a value", "Our own domain."] and email[6] == "100%"
    assert email[7].split("<br>")[0] == "id=a1, email=j\\*\\*\\*@example.com"
    assert "jane" not in gate.metadata["results"].value

    assert gate.description == (
        "Blocked: amount between 0 and 100,000; previous_id not null, where event_type is alias; "
        "event_type in {track, alias}")
    blocking = gate.metadata["blocking_failures"].value
    assert "expect_column_values_to_be_between(amount): amount between 0 and 100,000" in blocking
    assert "amount between -10 and 10" not in blocking
    assert "amount between -10 and 10" in gate.metadata["warnings"].value
    assert gate.metadata["unexpected_rows"].value == 2 + 3 + 1 + 1 + 3
