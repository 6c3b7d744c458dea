"""experiment_rollout_sensor: starts a campaign's roll-out job when its remainder waits and there is
something new to look at: provider events ingested since the last look, or a decision deadline that
has passed. It reads only Dagster's event log (never the warehouse, which a running job may hold), and
its run keys come from those events, so a re-evaluation never starts the same look twice."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import dagster as dg

from dagster_project.defs.personalization.campaign_assets import messages_key, rollout_key
from dagster_project.personalization.campaigns import Campaign

ESP_EVENTS = dg.AssetKey(["raw", "esp_events"])


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey):
    records = instance.fetch_materializations(key, limit=1).records
    return records[0] if records else None


def _value(record, name: str):
    entry = record.asset_materialization.metadata.get(name) if record else None
    return entry.value if entry is not None else None


def latest_events_loaded(instance: dg.DagsterInstance, look_back: int = 50):
    """The newest raw/esp_events materialization that loaded files. An ingest that found nothing new
    (the roll-out job's own, for one) is not news and starts no look."""
    records = instance.fetch_materializations(ESP_EVENTS, limit=look_back).records
    return next((r for r in records if (_value(r, "files_loaded") or 0) > 0), None)


def waiting_state(instance: dg.DagsterInstance, campaign: Campaign) -> tuple[bool, list[float]]:
    """(whether a remainder waits, the decision deadlines of the waiting runs as POSIX timestamps),
    from the campaign's latest messages and roll-out materializations."""
    messages, rollout = _latest(instance, messages_key(campaign)), _latest(instance, rollout_key(campaign))
    if messages is None and rollout is None:
        return False, []
    newest = max((r for r in (messages, rollout) if r), key=lambda r: r.storage_id)
    waiting = (_value(newest, "remainder_awaiting_winner") or 0) > 0 or (_value(newest, "runs_waiting") or 0) > 0
    deadlines = set(_value(rollout, "waiting_deadlines") or [])
    if _value(messages, "remainder_awaiting_winner") and _value(messages, "next_deadline") is not None:
        deadlines.add(_value(messages, "next_deadline"))
    return waiting, sorted(deadlines)


def build_rollout_sensor(campaigns: list[Campaign], jobs: dict):
    @dg.sensor(
        jobs=list(jobs.values()),
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Starts a campaign's roll-out job while its experiment's remainder waits for a winner: when new "
        "provider events have been ingested since the last look, or when a decision deadline has passed.",
    )
    def experiment_rollout_sensor(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        events = latest_events_loaded(context.instance)
        now = datetime.now(timezone.utc).timestamp()
        requests = []
        for campaign in campaigns:
            waiting, deadlines = waiting_state(context.instance, campaign)
            if not waiting:
                continue
            seen = cursor.get(campaign.campaign_id, {})
            passed = [d for d in deadlines if d <= now and d not in seen.get("deadlines", [])]
            if events is not None and events.storage_id > seen.get("esp", 0):
                seen["esp"] = events.storage_id
                run_key = f"{campaign.campaign_id}:events:{events.storage_id}"
            elif passed:
                # Each deadline is acted on once; a run it leaves waiting (a sample ratio mismatch)
                # does not hold back the deadlines of later runs.
                seen["deadlines"] = sorted({*seen.get("deadlines", []), passed[0]})[-20:]
                run_key = f"{campaign.campaign_id}:deadline:{int(passed[0])}"
            else:
                continue
            cursor[campaign.campaign_id] = seen
            requests.append(dg.RunRequest(run_key=run_key, job_name=jobs[campaign.campaign_id].name,
                                          tags={"campaign": campaign.campaign_id, "mailroom/trigger": "experiment"}))
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        return requests or dg.SkipReason("No experiment remainder is waiting on new events or a passed deadline.")

    return experiment_rollout_sensor
