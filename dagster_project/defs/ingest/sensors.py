"""Starts an ingest run when new or changed files land, so fresh data (an unsubscribe, a new
export) reaches raw.* without waiting for the daily schedule."""

import hashlib
import json

import dagster as dg

from dagster_project.defs.ingest.assets import ingest_assets
from dagster_project.ingest.reader import landing_files
from dagster_project.ingest.sources import SOURCES
from dagster_project.resources import WarehouseResource

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


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=30,  # an unsubscribe must reach raw.consent_events before the next send
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches the landing directory and runs ingest for sources with new or changed files.",
)
def landing_files_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    previous = json.loads(context.cursor) if context.cursor else {}
    current = landing_fingerprints(warehouse.settings.landing_dir)
    changed = sorted(name for name, digest in current.items() if previous.get(name) != digest)
    if not changed:
        return dg.SkipReason("No new landing files.")
    context.update_cursor(json.dumps(current, sort_keys=True))
    # The run key derives from the cursor state, so a re-evaluation never launches the same run twice.
    run_key = "landing-" + hashlib.sha256(json.dumps(current, sort_keys=True).encode()).hexdigest()[:16]
    return dg.RunRequest(
        run_key=run_key,
        asset_selection=[dg.AssetKey(["raw", SOURCES[name].table]) for name in changed],
        tags={"mailroom/trigger": "landing-files", "mailroom/sources": ",".join(changed)},
    )
