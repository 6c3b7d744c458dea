"""The code location loads and a marketer can follow the lineage from landing files to models."""

from __future__ import annotations

import json

import dagster as dg

from dagster_project.ingest.sources import SOURCES


def test_definitions_load_and_ingest_feeds_staging(prepared_dbt):
    from dagster_project.pipeline import load_definitions

    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    for source in SOURCES.values():
        key = dg.AssetKey(["raw", source.table])
        node = graph.get(key)
        assert node.is_materializable, f"{key} must be Mailroom's ingest asset, not an external source"
        assert node.group_name == "ingest"
        assert node.owners and node.description
        children = {child.to_user_string() for child in node.child_keys}
        assert any(child.startswith("staging/stg_") for child in children), (key, children)

    staging = graph.get(dg.AssetKey(["staging", "stg_cdp__events"]))
    assert staging.group_name == "warehouse" and "dbt" in staging.kinds
    check_targets = {check_key.asset_key for check_key in graph.asset_check_keys}
    assert dg.AssetKey(["staging", "stg_cdp__events"]) in check_targets, "dbt data_tests become asset checks"


def test_schedule_is_daily_and_off_by_default(prepared_dbt):
    from dagster_project.pipeline import load_definitions

    schedule = load_definitions().resolve_schedule_def("daily_campaign_pipeline_schedule")
    assert schedule.cron_schedule == "0 6 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_landing_sensor_requests_a_run_only_for_new_files(tmp_path, monkeypatch, prepared_dbt):
    from dagster_project.defs.ingest.sensors import landing_files_sensor
    from dagster_project.resources import WarehouseResource
    from dagster_project.settings import Settings

    settings = Settings(data_dir=tmp_path)
    resource = WarehouseResource.from_settings(settings)
    (settings.landing_dir / "consent").mkdir(parents=True)

    def evaluate(cursor):
        context = dg.build_sensor_context(cursor=cursor, resources={"warehouse": resource})
        return landing_files_sensor(context), context.cursor

    result, cursor = evaluate(None)
    assert isinstance(result, dg.SkipReason), "an empty landing directory starts no run"

    (settings.landing_dir / "consent" / "new.jsonl").write_text("{}\n")
    result, new_cursor = evaluate(cursor)
    assert isinstance(result, dg.RunRequest)
    assert result.asset_selection == [dg.AssetKey(["raw", "consent_events"])]
    assert "consent" in json.loads(new_cursor)
    # Same state, same run key: a re-evaluation cannot launch a duplicate run.
    again, _ = evaluate(cursor)
    assert again.run_key == result.run_key

    result, _ = evaluate(new_cursor)
    assert isinstance(result, dg.SkipReason), "files already seen start no run"
