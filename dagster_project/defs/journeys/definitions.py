"""Journey assets, jobs and the minute schedule, built from the journeys in the dbt manifest."""

import dagster as dg

from dagster_project.defs.journeys.assets import build_journey_asset, load_journeys
from dagster_project.defs.journeys.jobs import minute_schedule, pause_jobs, tick_job
from dagster_project.defs.personalization.campaign_assets import load_campaigns
from dagster_project.settings import load_settings


@dg.definitions
def journeys() -> dg.Definitions:
    campaigns = load_campaigns()
    found = load_journeys(campaigns)
    if not found:
        return dg.Definitions()
    by_id = {campaign.campaign_id: campaign for campaign in campaigns}
    ticks = tick_job(found)
    return dg.Definitions(
        assets=[build_journey_asset(journey, by_id) for journey in found],
        jobs=[ticks, *pause_jobs(found)],  # journeys_fast_path is defined by the landing sensor (defs/ingest)
        schedules=[minute_schedule(ticks, lambda: load_settings().data_dir)],
    )
