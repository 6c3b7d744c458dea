"""Campaign assets, jobs and schedules, built from the campaigns in the dbt manifest."""

import dagster as dg

from dagster_project.defs.personalization.campaign_assets import (
    batch_campaign_jobs,
    build_campaign_assets,
    load_campaigns,
)


@dg.definitions
def campaigns() -> dg.Definitions:
    found = load_campaigns()
    jobs, schedules = batch_campaign_jobs(found)
    return dg.Definitions(
        assets=[asset for campaign in found for asset in build_campaign_assets(campaign)],
        jobs=jobs,
        schedules=schedules,
    )
