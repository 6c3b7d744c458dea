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


def waiting_state(instance: dg.DagsterInstance, campaign: Campaign) -> tuple[bool, float | None]:
    """(whether a remainder waits, the earliest deadline of the waiting runs as a POSIX timestamp),
    from the latest of the campaign's messages and rollout materializations."""
    latest = [r for r in (_latest(instance, messages_key(campaign)), _latest(instance, rollout_key(campaign))) if r]
    if not latest:
        return False, None
    record = max(latest, key=lambda r: r.storage_id)
    waiting = (_value(record, "remainder_awaiting_winner") or 0) > 0 or (_value(record, "runs_waiting") or 0) > 0
    return waiting, _value(record, "next_deadline")


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
        esp = _latest(context.instance, ESP_EVENTS)
        now = datetime.now(timezone.utc).timestamp()
        requests = []
        for campaign in campaigns:
            waiting, deadline = waiting_state(context.instance, campaign)
            if not waiting:
                continue
            seen = cursor.get(campaign.campaign_id, {})
            if esp is not None and esp.storage_id > seen.get("esp", 0):
                seen["esp"] = esp.storage_id
                run_key = f"{campaign.campaign_id}:events:{esp.storage_id}"
            elif deadline is not None and now >= deadline and seen.get("deadline") != deadline:
                seen["deadline"] = deadline
                run_key = f"{campaign.campaign_id}:deadline:{int(deadline)}"
            else:
                continue
            cursor[campaign.campaign_id] = seen
            requests.append(dg.RunRequest(run_key=run_key, job_name=jobs[campaign.campaign_id].name,
                                          tags={"campaign": campaign.campaign_id, "mailroom/trigger": "experiment"}))
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        return requests or dg.SkipReason("No experiment remainder is waiting on new events or a passed deadline.")

    return experiment_rollout_sensor
