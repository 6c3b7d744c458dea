"""The daily pipeline: ingest, every dbt model and gate, and the trigger campaigns. Batch campaigns
have their own jobs and schedules (defs/personalization), so a weekly campaign is not sent daily; their
deliverability guards run here all the same, on the day's provider events (defs/analytics/guards.py)."""

import dagster as dg

from dagster_project.defs.activation.ops_assets import ops_table_keys
from dagster_project.defs.analytics.guards import guard_check_keys
from dagster_project.defs.personalization.campaign_assets import batch_campaign_assets, load_campaigns


@dg.definitions
def daily_pipeline() -> dg.Definitions:
    campaigns = load_campaigns()
    job = dg.define_asset_job(
        "daily_campaign_pipeline",
        # Not the ops tables' assets: they sit between the sends and dbt's engagement models, so with them
        # the one dbt step would have to run in pieces around the trigger campaigns. Campaign jobs and
        # deliver_due_messages refresh them; the dbt build here reads the tables as they are.
        selection=dg.AssetSelection.all() - batch_campaign_assets(campaigns)
        - dg.AssetSelection.assets(*ops_table_keys())
        # The propensity models' training, scoring and roll-out have their own weekly job (defs/predictive).
        - dg.AssetSelection.groups("predictive")
        # Privacy requests are worked through by their own job (defs/privacy): an erasure rebuilds dbt's tables.
        - dg.AssetSelection.assets(dg.AssetKey(["privacy", "request_work"]))
        # Every campaign's guards, after dbt has counted the day's bounces and complaints (a weekly
        # campaign's arrive in the days after it sent): a pause holds its next sends.
        | dg.AssetSelection.checks(*(key for campaign in campaigns for key in guard_check_keys(campaign))),
        description="Ingest new landing files, rebuild the warehouse models, run every gate, write and render the "
        "trigger campaigns, and judge every campaign's deliverability.",
    )
    schedule = dg.ScheduleDefinition(
        job=job,
        cron_schedule="0 6 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Runs the campaign pipeline every day at 06:00 UTC (off until an operator turns it on).",
    )
    return dg.Definitions(jobs=[job], schedules=[schedule])
