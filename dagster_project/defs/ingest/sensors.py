"""Starts an ingest run when new or changed files land, so fresh data (an unsubscribe, a new
export) reaches raw.* without waiting for the daily schedule. When CDP events land and journeys are
declared, the run is the journeys' fast path instead: ingest, the journeys' incremental models and
a tick, so a signup or an abandoned cart is acted on within a minute (one sensor, never two racing
on the same files)."""

import hashlib
import json

import dagster as dg

from dagster_project.defs.ingest.assets import ingest_assets
from dagster_project.defs.journeys.jobs import fast_path_checks, fast_path_job
from dagster_project.ingest.reader import landing_files
from dagster_project.ingest.sources import SOURCES
from dagster_project.resources import WarehouseResource

# Built here, where the sensor that launches it lives (a job two modules define would be defined twice).
journeys_fast_path, FAST_PATH_AFTER_INGEST = fast_path_job()

ingest_job = dg.define_asset_job(
    "ingest_landing_files",
    selection=dg.AssetSelection.assets(*ingest_assets),
    description="Load new landing files into raw.* (the file ledger skips files already loaded).",
)


def landing_fingerprints(landing_dir) -> dict[str, str]:
    """Per source with files, a digest of every file's name, size and modification time."""
    fingerprints = {}
    for source in SOURCES.values():
        files = landing_files(landing_dir, source)
        if not files:
            continue
        digest = hashlib.sha256()
        for path in files:
            stat = path.stat()
            digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        fingerprints[source.name] = digest.hexdigest()[:16]
    return fingerprints


def _fast_path_waiting(instance: dg.DagsterInstance) -> bool:
    waiting = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]
    return bool(instance.get_run_records(dg.RunsFilter(job_name=journeys_fast_path.name, statuses=waiting), limit=1))


@dg.sensor(
    jobs=[ingest_job, journeys_fast_path],
    minimum_interval_seconds=10,  # journeys act within a minute; an unsubscribe reaches raw before the next send
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches the landing directory and runs ingest for sources with new or changed files.",
)
def landing_files_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    previous = json.loads(context.cursor) if context.cursor else {}
    current = landing_fingerprints(warehouse.settings.landing_dir)
    changed = sorted(name for name, digest in current.items() if previous.get(name) != digest)
    if not changed:
        return dg.SkipReason("No new landing files.")
    if "cdp" in changed and FAST_PATH_AFTER_INGEST and _fast_path_waiting(context.instance):
        # It ingests every file present when it starts: these too. The cursor stays, so the files are
        # looked at again once that run has started.
        return dg.SkipReason("A journeys fast-path run is queued and will load these files.")
    context.update_cursor(json.dumps(current, sort_keys=True))
    # The run key derives from the cursor state, so a re-evaluation never launches the same run twice.
    run_key = "landing-" + hashlib.sha256(json.dumps(current, sort_keys=True).encode()).hexdigest()[:16]
    selection = [dg.AssetKey(["raw", SOURCES[name].table]) for name in changed]
    after_ingest = FAST_PATH_AFTER_INGEST if "cdp" in changed else []
    return dg.RunRequest(
        run_key=run_key,
        job_name=journeys_fast_path.name if after_ingest else ingest_job.name,
        asset_selection=selection + after_ingest,
        asset_check_keys=fast_path_checks(selection + after_ingest) if after_ingest else None,
        tags={"mailroom/trigger": "landing-files", "mailroom/sources": ",".join(changed)},
    )
