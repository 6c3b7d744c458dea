"""Sends as Dagster assets on both warehouses: below the messages and the consent/provider ingest in
the lineage, a dry run from run config, and an opt-out that lands after the audience was built."""

from __future__ import annotations

import json

import dagster as dg

from dagster_project.pipeline import load_definitions
from dagster_project.warehouse import Warehouse

WEEKLY = ["campaigns", "weekly_picks"]


def test_sends_sit_below_messages_and_the_fresh_consent_and_provider_events(prepared_dbt):
    graph = load_definitions().resolve_asset_graph()
    fresh = {dg.AssetKey(["raw", "consent_events"]), dg.AssetKey(["raw", "esp_events"])}
    # The weekly campaign's roll-out experiment renders its remainder in campaigns/weekly_picks/weekly_picks_rollout.
    assert graph.get(dg.AssetKey(WEEKLY + ["weekly_picks_sends"])).parent_keys == fresh | {
        dg.AssetKey(WEEKLY + ["weekly_picks_messages"]), dg.AssetKey(WEEKLY + ["weekly_picks_rollout"])}
    # A journey campaign's messages are rendered by the journey step that sends it.
    assert graph.get(dg.AssetKey(["campaigns", "cart_reminder", "cart_reminder_sends"])).parent_keys == fresh | {
        dg.AssetKey(["journeys", "cart_abandonment", "cart_abandonment__reminder"])}


def _materialization(result, key: list[str]) -> dict:
    return next({name: value.value for name, value in event.materialization.metadata.items()}
                for event in result.get_asset_materialization_events() if event.asset_key == dg.AssetKey(key))


def test_an_opt_out_after_the_audience_was_built_is_honoured(built_warehouse):
    settings = built_warehouse.settings
    definitions, instance = load_definitions(), dg.DagsterInstance.ephemeral()
    # Build the weekly audience and render its messages, but do not send yet.
    rendered = definitions.resolve_job_def("weekly_picks_campaign").execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(WEEKLY + ["weekly_picks_content"]),
                                            dg.AssetKey(WEEKLY + ["weekly_picks_messages"])])
    assert rendered.success
    with Warehouse(settings).connect() as conn:
        message_id, customer_id, address = conn.fetchall(
            "SELECT message_id, customer_id, to_email FROM ops.campaign_messages WHERE campaign_id = 'weekly_picks' "
            "ORDER BY message_id LIMIT 1")[0]
        rendered_count = conn.scalar("SELECT count(*) FROM ops.campaign_messages WHERE campaign_id = 'weekly_picks'")
    # The customer unsubscribes through the preference center: a new consent file lands.
    opt_out = {"event_id": "late-opt-out-1", "email": address.upper(), "channel": "email", "status": "opt_out",
               "jurisdiction": "US", "lawful_basis": "consent", "source": "preference_center",
               "occurred_at": f"{settings.as_of}T00:00:00Z"}
    (settings.landing_dir / "consent" / "zz-late-opt-out.jsonl").write_text(json.dumps(opt_out) + "\n")
    deliver = definitions.resolve_job_def("deliver_due_messages")
    sends_step = "campaigns__weekly_picks__weekly_picks_sends"

    dry = deliver.execute_in_process(instance=instance, run_config={"ops": {sends_step: {"config": {"dry_run": True}}}})
    plan = _materialization(dry, WEEKLY + ["weekly_picks_sends"])
    assert plan["dry_run"] and plan["handed_over"] == rendered_count - 1 and plan["suppressed"] == 1
    assert "opted_out" in plan["suppression_reasons"]
    assert not (settings.data_dir / "outbox" / "weekly_picks").exists()

    sent = _materialization(deliver.execute_in_process(instance=instance), WEEKLY + ["weekly_picks_sends"])

    assert sent["handed_over"] == plan["handed_over"] and "opted_out" in sent["suppression_reasons"]
    files = {path.stem for path in (settings.data_dir / "outbox" / "weekly_picks").glob("*.eml")}
    assert len(files) == rendered_count - 1 and message_id.strip("<>").split("@")[0] not in files
    with Warehouse(settings).connect() as conn:
        assert conn.fetchall("SELECT state, reason FROM ops.send_ledger WHERE customer_id = ? AND campaign_id = "
                             "'weekly_picks'", [customer_id]) == [("suppressed", "opted_out")]
