"""The journeys' runs: a tick of every journey (each minute when a step is due), the fast path that
a landing file starts (ingest, the journeys' incremental models, a tick), and pausing a journey."""

import json
from datetime import datetime, timezone

import dagster as dg
from dagster_dbt import get_asset_key_for_model
from pydantic import Field

from dagster_project.dbt_project import mailroom_dbt
from dagster_project.defs.ingest.assets import FILES_CHECK, ingest_assets
from dagster_project.defs.journeys.assets import load_journeys, read_next_due, step_key
from dagster_project.defs.warehouse.dbt_models import mailroom_dbt_models
from dagster_project.journeys.evaluate import pause_key
from dagster_project.journeys.spec import Journey
from dagster_project.resources import WarehouseResource
from reverse_etl import pauses

FAST_PATH_TAG = "journeys_fast_path"  # dbt models the fast path rebuilds (besides stg_cdp__events)
LANE_TAG = {"mailroom/lane": "journeys"}


def journey_keys(journeys: list[Journey]) -> list[dg.AssetKey]:
    return [step_key(journey, step.step_id) for journey in journeys for step in journey.steps]


def fast_path_models(manifest: dict) -> list[dg.AssetKey]:
    """The dbt models a landing CDP file must refresh before a tick: stg_cdp__events and the tagged ones."""
    names = ["stg_cdp__events"] + sorted(
        node["name"] for node in manifest.get("nodes", {}).values()
        if node.get("resource_type") == "model" and FAST_PATH_TAG in (node.get("tags") or []))
    return [get_asset_key_for_model([mailroom_dbt_models], name) for name in names]


def tick_job(journeys: list[Journey]):
    return dg.define_asset_job(
        "journeys_tick", selection=dg.AssetSelection.assets(*journey_keys(journeys)), tags=LANE_TAG,
        description="One tick of every journey: entries, exits, goals, due steps and their hand-over.")


def fast_path_job() -> tuple[object, list[dg.AssetKey]]:
    """The job, and what it runs after ingest: the fast-path dbt models and every live journey's steps
    (none when no journey is live: a landing CDP file then only starts an ingest run)."""
    journeys = [journey for journey in load_journeys() if journey.status == "live"]
    after_ingest = [*fast_path_models(json.loads(mailroom_dbt.manifest_path.read_text())),
                    *journey_keys(journeys)] if journeys else []
    # Ingest keeps its own check (files refused) and its row-level quarantine; the table-level GX suites and
    # freshness checks of the raw tables validate the whole table (10 s at 100K customers) and stay with the
    # daily run, where they block the marts.
    ingest_keys = [key for definition in ingest_assets for key in definition.keys]
    ingest = dg.AssetSelection.assets(*ingest_assets).without_checks() | dg.AssetSelection.checks(
        *(dg.AssetCheckKey(key, FILES_CHECK) for key in ingest_keys))
    return dg.define_asset_job(
        "journeys_fast_path",
        selection=ingest | dg.AssetSelection.assets(*after_ingest),
        tags=LANE_TAG, executor_def=dg.in_process_executor,  # no process per step: seconds count here
        description="What a landing file starts: ingest it, rebuild the journeys' incremental models, tick the "
        "journeys and hand their messages over - without waiting for the daily run. The raw tables' GX "
        "suites run in the daily job."), after_ingest


def fast_path_checks(selected: list[dg.AssetKey]) -> list[dg.AssetCheckKey]:
    """The checks a fast-path run of `selected` runs: ingest's files check and the dbt tests of its models.
    A run request names them; left to itself it would run every check on the selected raw tables."""
    dbt_tests = [key for key in mailroom_dbt_models.check_keys if key.asset_key in selected]
    return [dg.AssetCheckKey(key, FILES_CHECK) for key in selected if key.path[0] == "raw"] + sorted(
        dbt_tests, key=lambda key: key.to_user_string())


def minute_schedule(job, data_dir_of) -> dg.ScheduleDefinition:
    @dg.schedule(job=job, cron_schedule="* * * * *", execution_timezone="UTC",
                 default_status=dg.DefaultScheduleStatus.STOPPED,
                 description="Every minute, when a journey step has come due (journeys_next_due.json, written by "
                 "each tick), releases it. It never opens the warehouse itself.")
    def journeys_every_minute(context: dg.ScheduleEvaluationContext):
        now = (context.scheduled_execution_time or datetime.now(timezone.utc)).astimezone(timezone.utc)
        due = [journey for journey, at in read_next_due(data_dir_of()).items()
               if at and datetime.fromisoformat(at) <= now.replace(tzinfo=None)]
        if not due:
            return dg.SkipReason("No journey step is due.")
        return dg.RunRequest(tags={"mailroom/trigger": "journeys-due", "mailroom/journeys": ",".join(sorted(due))})

    return journeys_every_minute


class JourneyPauseConfig(dg.Config):
    journey_id: str = Field(description="The journey to pause or resume, e.g. cart_abandonment.")
    reason: str = Field(default="", description="Why: kept with the entry and shown in the journey's metadata.")
    operator: str = Field(default="", description="Who, for the record (default: this run's id).")


def pause_jobs(journeys: list[Journey]) -> list[dg.JobDefinition]:
    known = sorted(journey.journey_id for journey in journeys)

    def record(context: dg.OpExecutionContext, config: JourneyPauseConfig, warehouse: WarehouseResource,
               action: str) -> None:
        if config.journey_id not in known:
            raise dg.Failure(description=f"No journey {config.journey_id!r}: set journey_id to one of "
                                         f"{', '.join(known)}.")
        change = pauses.pause if action == pauses.PAUSE else pauses.resume
        done = "paused" if action == pauses.PAUSE else "resumed"
        with warehouse.warehouse().connect() as conn:
            pauses.ensure_pauses(conn)
            entry = change(conn, pause_key(config.journey_id), config.reason or f"{done} from the Dagster UI",
                           f"dagster:{config.operator or 'run ' + context.run_id[:8]}",
                           datetime.now(timezone.utc).replace(tzinfo=None))
        context.log.info(f"journey {config.journey_id}: {entry.describe() if entry else 'nothing to record'}")

    @dg.op(description="Pause a journey: nobody moves on, new entries are still recorded, state is kept.")
    def pause_journey_op(context: dg.OpExecutionContext, config: JourneyPauseConfig, warehouse: WarehouseResource):
        record(context, config, warehouse, pauses.PAUSE)

    @dg.op(description="Resume a journey: the next tick runs the steps that came due meanwhile.")
    def resume_journey_op(context: dg.OpExecutionContext, config: JourneyPauseConfig, warehouse: WarehouseResource):
        record(context, config, warehouse, pauses.RESUME)

    @dg.job(name="pause_journey", description="Pause one journey without losing state (ops.campaign_pauses).")
    def pause_journey():
        pause_journey_op()

    @dg.job(name="resume_journey", description="Resume a paused journey.")
    def resume_journey():
        resume_journey_op()

    return [pause_journey, resume_journey]
