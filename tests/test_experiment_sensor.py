"""experiment_rollout_sensor: a roll-out run only while a remainder waits, once per batch of new
provider events and once per passed deadline, with run keys that repeat for the same state."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import dagster as dg

CAMPAIGN = "weekly_picks"
MESSAGES = dg.AssetKey(["campaigns", CAMPAIGN, f"{CAMPAIGN}_messages"])
ROLLOUT = dg.AssetKey(["campaigns", CAMPAIGN, f"{CAMPAIGN}_rollout"])
ESP = dg.AssetKey(["raw", "esp_events"])


def _report(instance, key, **metadata):
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, metadata=metadata))


def test_the_rollout_sensor_looks_when_events_arrive_or_a_deadline_passes(prepared_dbt):
    from dagster_project.pipeline import load_definitions

    sensor = load_definitions().resolve_sensor_def("experiment_rollout_sensor")
    instance = dg.DagsterInstance.ephemeral()

    def evaluate(cursor):
        context = dg.build_sensor_context(instance=instance, cursor=cursor)
        result = sensor.evaluate_tick(context)
        return result.run_requests or [], result.skip_message, result.cursor

    requests, skipped, cursor = evaluate(None)
    assert not requests and "No experiment remainder" in skipped  # nothing rendered yet

    future = datetime.now(timezone.utc) + timedelta(days=1)
    _report(instance, MESSAGES, remainder_awaiting_winner=40, next_deadline=dg.MetadataValue.timestamp(future))
    requests, _, cursor = evaluate(cursor)
    assert not requests, "a waiting remainder with no events and a distant deadline: nothing new to look at"

    _report(instance, ESP, files_loaded=0)  # an ingest that found nothing (the roll-out job's own)
    assert not evaluate(cursor)[0], "an ingest with no new files is no news"

    _report(instance, ESP, files_loaded=1)
    requests, _, cursor_after_events = evaluate(cursor)
    [request] = requests
    assert request.job_name == f"{CAMPAIGN}_rollout" and request.run_key.startswith(f"{CAMPAIGN}:events:")
    assert evaluate(cursor)[0][0].run_key == request.run_key  # the same state gives the same key
    assert not evaluate(cursor_after_events)[0], "the same events are looked at once"

    # The roll-out looked: two runs wait, one past its deadline (held by a sample ratio mismatch, say).
    past, later = datetime.now(timezone.utc) - timedelta(minutes=1), datetime.now(timezone.utc) - timedelta(seconds=5)
    _report(instance, ROLLOUT, runs_waiting=2, waiting_deadlines=dg.MetadataValue.json([past.timestamp()]))
    [deadline_request], _, cursor = evaluate(cursor_after_events)
    assert deadline_request.run_key == f"{CAMPAIGN}:deadline:{int(past.timestamp())}"
    assert not evaluate(cursor)[0], "a passed deadline is acted on once"
    # The look left that run waiting; the other run's deadline passes too and still gets its look.
    _report(instance, ROLLOUT, runs_waiting=2,
            waiting_deadlines=dg.MetadataValue.json([past.timestamp(), later.timestamp()]))
    [second], _, cursor = evaluate(cursor)
    assert second.run_key == f"{CAMPAIGN}:deadline:{int(later.timestamp())}"
    assert json.loads(cursor)[CAMPAIGN]["deadlines"] == [past.timestamp(), later.timestamp()]

    _report(instance, ROLLOUT, runs_waiting=0, waiting_deadlines=dg.MetadataValue.json([]))
    _report(instance, ESP, files_loaded=3)
    assert not evaluate(cursor)[0], "nothing waits any more: new events start no roll-out"
