"""The daily campaign pipeline: ingest, then every dbt model and check downstream of it."""

import dagster as dg

daily_campaign_job = dg.define_asset_job(
    "daily_campaign_pipeline",
    selection=dg.AssetSelection.all(),
    description="Ingest new landing files, rebuild the warehouse models and run every gate.",
)

daily_campaign_schedule = dg.ScheduleDefinition(
    job=daily_campaign_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Runs the campaign pipeline every day at 06:00 UTC (off until an operator turns it on).",
)
