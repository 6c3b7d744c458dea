"""The propensity models' weekly retraining: its own job, so the daily pipeline keeps one dbt step
and no model training (defs/schedules.py leaves the predictive group out)."""

import dagster as dg

from dagster_project.defs.predictive.assets import (
    PREDICTIVE_GROUP,
    model_rollout,
    propensity_model,
    propensity_scores,
)


@dg.definitions
def predictive() -> dg.Definitions:
    job = dg.define_asset_job(
        "propensity_refresh", selection=dg.AssetSelection.groups(PREDICTIVE_GROUP),
        description="Retrain the propensity models on the examples the daily pipeline built and register the "
        "versions (ops.model_registry), score every customer (ops.propensity_scores; the next daily dbt build "
        "turns them into marts.customer_propensity), then promote or roll back a canary version.")
    schedule = dg.ScheduleDefinition(
        job=job, cron_schedule="40 6 * * 1", execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Mondays at 06:40 UTC, after the daily pipeline (off until an operator turns it on).")
    return dg.Definitions(assets=[propensity_model, propensity_scores, model_rollout], jobs=[job], schedules=[schedule])
