"""analytics/dashboards: the five HTML dashboards, rebuilt after the metrics marts (every daily run), with
links to the files and the key figures as numbers (Dagster plots their trend on the asset's page)."""

from datetime import datetime, timezone

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from dagster_project.analytics.dashboards import write_dashboards
from dagster_project.analytics.operations import CheckSummary, RunSummary
from dagster_project.defs.warehouse.dbt_models import mailroom_dbt_models
from dagster_project.resources import WarehouseResource
from dagster_project.settings import load_personalization_settings

DASHBOARDS_KEY = dg.AssetKey(["analytics", "dashboards"])
METRICS_MODELS = ("metrics_email_daily", "metrics_llm_daily", "metrics_content_daily", "metrics_suppressions_daily",
                  "metrics_delivery_daily", "metrics_send_runs", "metrics_provider_responses_daily",
                  "metrics_opt_outs_daily", "metrics_engagement_cohorts", "metrics_engagement_decay",
                  "campaign_performance")
RUNS_SHOWN = 50


@dg.asset(
    key=DASHBOARDS_KEY,
    deps=[get_asset_key_for_model([mailroom_dbt_models], model) for model in METRICS_MODELS],
    group_name="analytics",
    owners=["team:marketing"],
    kinds={"html", "plotly"},
    description="Five self-contained HTML dashboards (marketing, ops, ML and content, cost, compliance) from the "
    "metrics marts, written to <data dir>/dashboards/; they open in any browser with no network.",
)
def dashboards(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    settings = warehouse.settings
    runs = recent_runs(context.instance)
    checks = gate_outcomes(context.instance, [run.run_id for run in runs])
    with warehouse.warehouse().connect() as conn:
        written = write_dashboards(conn, settings.data_dir / "dashboards", runs, checks,
                                   load_personalization_settings().daily_budget_usd,
                                   now=datetime.now(timezone.utc).replace(tzinfo=None))
    metadata: dict = {}
    for item in written:
        context.log.info(f"{item.dashboard.title}: {item.path} ({item.dashboard.charts} charts)")
        metadata[f"{item.dashboard.name}_dashboard"] = dg.MetadataValue.url(item.path.resolve().as_uri())
    for item in written:
        for name, value in item.dashboard.numbers.items():
            metadata[f"{item.dashboard.name}/{name}"] = dg.MetadataValue.float(float(value)) \
                if isinstance(value, float) else dg.MetadataValue.int(int(value))
    metadata["folder"] = dg.MetadataValue.path(str(settings.data_dir / "dashboards"))
    return dg.MaterializeResult(metadata=metadata)


def recent_runs(instance: dg.DagsterInstance) -> list[RunSummary]:
    """The latest runs with their wall time; step timings for the latest finished run of each job."""
    records = instance.get_run_records(limit=RUNS_SHOWN)
    timed_jobs: set[str] = set()
    runs = []
    for record in records:
        run = record.dagster_run
        started, ended = record.start_time, record.end_time
        steps = {}
        if ended and run.job_name not in timed_jobs:
            timed_jobs.add(run.job_name)
            steps = {stat.step_key: stat.end_time - stat.start_time for stat in instance.get_run_step_stats(run.run_id)
                     if stat.start_time and stat.end_time}
        runs.append(RunSummary(
            job_name=run.job_name, run_id=run.run_id, status=run.status.value,
            started_at=datetime.fromtimestamp(started, timezone.utc).replace(tzinfo=None) if started else None,
            seconds=(ended - started) if started and ended else None, step_seconds=steps))
    return list(reversed(runs))  # oldest first, as a timeline reads


def gate_outcomes(instance: dg.DagsterInstance, run_ids: list[str]) -> list[CheckSummary]:
    """Per asset, its checks' evaluations in these runs: passed, failed with a warning, failed."""
    per_asset: dict[str, list[int]] = {}
    for run_id in run_ids:
        records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
        for record in records:
            evaluation = record.event_log_entry.dagster_event.event_specific_data
            counts = per_asset.setdefault(evaluation.asset_key.to_user_string(), [0, 0, 0])
            if evaluation.passed:
                counts[0] += 1
            elif evaluation.severity == dg.AssetCheckSeverity.WARN:
                counts[1] += 1
            else:
                counts[2] += 1
    return [CheckSummary(check=asset, passed=p, warned=w, failed=f) for asset, (p, w, f) in sorted(per_asset.items())]
