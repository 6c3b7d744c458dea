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


def test_landing_sensor_lets_a_queued_fast_path_run_take_new_cdp_files(tmp_path, prepared_dbt):
    """A fast-path run that has not started yet ingests every file present when it starts, so a second
    one is not queued behind it; once it has started, new files get their own run."""
    from dagster_project.defs.ingest.sensors import landing_files_sensor
    from dagster_project.resources import WarehouseResource
    from dagster_project.settings import Settings

    settings = Settings(data_dir=tmp_path)
    resource = WarehouseResource.from_settings(settings)
    (settings.landing_dir / "cdp").mkdir(parents=True)
    (settings.landing_dir / "cdp" / "new.jsonl").write_text("{}\n")
    with dg.DagsterInstance.ephemeral() as instance:
        # Created, not yet started (a queued run is the same to the sensor; it needs a code location to make).
        queued = instance.add_run(dg.DagsterRun(job_name="journeys_fast_path", run_id="queued-run",
                                                status=dg.DagsterRunStatus.NOT_STARTED))
        context = dg.build_sensor_context(instance=instance, cursor=None, resources={"warehouse": resource})
        skipped = landing_files_sensor(context)
        assert isinstance(skipped, dg.SkipReason) and "queued" in skipped.skip_message
        assert context.cursor is None  # the files are looked at again later
        instance.handle_run_event(queued.run_id, dg.DagsterEvent(
            event_type_value="PIPELINE_START", job_name="journeys_fast_path"))
        assert instance.get_run_by_id(queued.run_id).status == dg.DagsterRunStatus.STARTED
        request = landing_files_sensor(dg.build_sensor_context(instance=instance, cursor=None,
                                                               resources={"warehouse": resource}))
        assert isinstance(request, dg.RunRequest) and request.job_name == "journeys_fast_path"


def test_lineage_tells_the_whole_story_with_names_a_person_can_tell_apart(prepared_dbt):
    from dagster_project.pipeline import load_definitions

    graph = load_definitions().resolve_asset_graph()
    keys = list(graph.materializable_asset_keys)
    assert not [k for k in graph.get_all_asset_keys() if not graph.get(k).is_materializable], "no external stubs"
    assert {graph.get(k).group_name for k in keys} <= {"ingest", "warehouse", "campaigns", "activation",
                                                      "engagement", "experiments", "analytics", "journeys",
                                                      "predictive", "privacy"}
    # The graph labels a node with its key's last part: no two nodes read the same.
    labels = [k.path[-1] for k in keys]
    assert len(labels) == len(set(labels)), sorted(label for label in labels if labels.count(label) > 1)
    # campaign -> content -> messages -> sends -> ledger -> engagement facts -> CRM write-back
    story = [["marts", "campaign_weekly_picks"], ["campaigns", "weekly_picks", "weekly_picks_content"],
             ["campaigns", "weekly_picks", "weekly_picks_messages"],
             ["campaigns", "weekly_picks", "weekly_picks_sends"],
             ["ops", "send_ledger"], ["staging", "stg_ops__send_ledger"], ["intermediate", "int_email_sends"],
             ["marts", "fct_email_sends"], ["marts", "sync_crm__contacts"], ["crm", "contacts"]]
    for parent, child in zip(story, story[1:]):
        assert dg.AssetKey(child) in graph.get(dg.AssetKey(parent)).child_keys, (parent, child)
    assert graph.get(dg.AssetKey(["marts", "fct_email_clicks"])).group_name == "engagement"
    assert graph.get(dg.AssetKey(["staging", "countries"])).group_name == "warehouse"  # a seed
    # ... and on to the metrics marts and the dashboards built from them.
    metrics = dg.AssetKey(["marts", "metrics_email_daily"])
    assert graph.get(metrics).group_name == graph.get(dg.AssetKey(["analytics", "dashboards"])).group_name \
        == "analytics"
    assert metrics in graph.get(dg.AssetKey(["marts", "email_message_outcomes"])).child_keys
    assert dg.AssetKey(["analytics", "dashboards"]) in graph.get(metrics).child_keys


def test_every_dbt_model_has_a_description_and_none_is_its_sql(prepared_dbt):
    from dagster_project.pipeline import load_definitions

    graph = load_definitions().resolve_asset_graph()
    dbt_keys = [k for k in graph.materializable_asset_keys if "dbt" in graph.get(k).kinds]
    assert len(dbt_keys) > 40
    for key in dbt_keys:
        description = (graph.get(key).description or "").strip()
        assert not description.lower().startswith(("select", "with ", "{{", "{%", "--")), (key, description[:80])
    # Written in the YAML, not the translator's fallback.
    manifest = json.loads(prepared_dbt.manifest_path.read_text())
    undescribed = [node["name"] for node in manifest["nodes"].values()
                   if node["resource_type"] in ("model", "seed") and not node.get("description", "").strip()]
    assert undescribed == []


def test_kinds_name_what_is_configured(prepared_dbt, monkeypatch, tmp_path):
    from dagster_project.pipeline import load_definitions

    def kinds(key: list[str]) -> set[str]:
        return set(load_definitions().resolve_asset_graph().get(dg.AssetKey(key)).kinds)

    for name in ("MAILROOM_LLM_API_KEY", "OPENAI_API_KEY", "MAILROOM_CRM_DESTINATION", "MAILROOM_DESTINATIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAILROOM_DATA_DIR", str(tmp_path))
    content = ["campaigns", "weekly_picks", "weekly_picks_content"]
    assert "openai" not in kinds(content)  # the rule-based writer
    assert kinds(["crm", "contacts"]) == {"python", "sqlite"}
    assert "file" in kinds(["campaigns", "weekly_picks", "weekly_picks_sends"])  # the outbox

    monkeypatch.setenv("MAILROOM_LLM_API_KEY", "sk-test")
    monkeypatch.setenv("MAILROOM_CRM_DESTINATION", "hubspot")
    monkeypatch.setenv("MAILROOM_HUBSPOT_ACCESS_TOKEN", "pat-test")
    monkeypatch.setenv("MAILROOM_DESTINATIONS", "sendgrid,outbox")
    monkeypatch.setenv("MAILROOM_SENDGRID_API_KEY", "SG.test")
    assert "openai" in kinds(content)
    assert kinds(["crm", "contacts"]) == {"python", "hubspot"}
    assert {"sendgrid", "file"} <= kinds(["campaigns", "weekly_picks", "weekly_picks_sends"])


def test_ops_tables_follow_a_run_that_wrote_to_them_without_refreshing_them(prepared_dbt):
    """The daily job writes trigger campaigns' messages but cannot refresh the ops tables (its dbt step
    would split around them): their eager condition asks for exactly the tables below what changed."""
    from dagster_project.defs.activation.ops_assets import OPS_SENSOR, ops_table_keys
    from dagster_project.pipeline import load_definitions

    defs = load_definitions()
    assert defs.resolve_sensor_def(OPS_SENSOR).default_status == dg.DefaultSensorStatus.STOPPED
    selection = dg.AssetSelection.assets(*ops_table_keys())
    messages = dg.AssetKey(["campaigns", "weekly_picks", "weekly_picks_messages"])
    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions(defs, instance, selection)
        assert first.total_requested == 0  # turning the sensor on launches nothing by itself
        for key in ops_table_keys():
            instance.report_runless_asset_event(dg.AssetMaterialization(key))
        settled = dg.evaluate_automation_conditions(defs, instance, selection, cursor=first.cursor)
        assert settled.total_requested == 0

        instance.report_runless_asset_event(dg.AssetMaterialization(messages))
        after = dg.evaluate_automation_conditions(defs, instance, selection, cursor=settled.cursor)
        requested = {key for key in ops_table_keys() if after.get_num_requested(key)}
        assert requested == {dg.AssetKey(["ops", name]) for name in
                             ("campaign_messages", "campaign_assignments", "campaign_suppressions")}
