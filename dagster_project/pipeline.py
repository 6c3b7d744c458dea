"""Runs the daily pipeline outside the UI (make demo, the benchmark) and summarises what it built."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from dagster_project.settings import Settings
from dagster_project.warehouse import SCHEMAS, Warehouse

PIPELINE_JOB = "daily_campaign_pipeline"


def load_definitions() -> dg.Definitions:
    from dagster_project.definitions import defs

    return defs()


def run_pipeline(instance: dg.DagsterInstance, asset_selection: Iterable[dg.AssetKey] | None = None):
    """Execute the daily job in this process (steps run one after another, as DuckDB needs)."""
    job = load_definitions().resolve_job_def(PIPELINE_JOB)
    return job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        asset_selection=list(asset_selection) if asset_selection else None,
    )


def run_batch_campaigns(instance: dg.DagsterInstance) -> list:
    """Run every batch campaign's job once (their schedules do this in production)."""
    from dagster_project.defs.personalization.campaign_assets import batch_campaign_jobs, load_campaigns

    definitions = load_definitions()
    jobs, _ = batch_campaign_jobs(load_campaigns())
    return [
        definitions.resolve_job_def(job.name).execute_in_process(instance=instance, raise_on_error=False)
        for job in jobs
    ]


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Wall seconds per step, in the order the steps started, from the run's event log."""
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not record.step_key:
            continue
        if event.event_type_value == "STEP_START":
            started[record.step_key] = record.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and record.step_key in started:
            seconds[record.step_key] = record.timestamp - started[record.step_key]
    return {step: seconds[step] for step in started if step in seconds}


def warehouse_table_rows(settings: Settings) -> dict[str, int]:
    with Warehouse(settings).connect() as conn:
        return {
            f"{schema}.{table}": int(conn.scalar(f'SELECT count(*) FROM {schema}."{table}"'))
            for schema, table in conn.tables(SCHEMAS)
        }


def quarantine_reasons(settings: Settings) -> list[tuple[str, str, int]]:
    """(source, reason kind, rows) for everything in raw.quarantine."""
    with Warehouse(settings).connect() as conn:
        if not conn.table_exists("raw", "quarantine"):
            return []
        return [
            (source, kind, int(rows))
            for source, kind, rows in conn.fetchall(
                "SELECT source, split_part(reason, ':', 1) AS kind, count(*) FROM raw.quarantine "
                "GROUP BY 1, 2 ORDER BY 1, 2"
            )
        ]
