"""Readouts for every campaign a journey does not send (a journey's steps carry its funnel instead);
roll-out assets, jobs and the sensor for the ones with a roll-out
experiment (meta.campaign.experiment)."""

import dagster as dg

from dagster_project.defs.experiments.assets import build_readout_asset, build_rollout_asset, rollout_job
from dagster_project.defs.experiments.sensors import build_rollout_sensor
from dagster_project.defs.personalization.campaign_assets import load_campaigns


@dg.definitions
def experiments() -> dg.Definitions:
    campaigns = [c for c in load_campaigns() if c.campaign_type != "journey"]
    rolling = [c for c in campaigns if c.experiment and c.experiment.rolls_out]
    jobs = {c.campaign_id: rollout_job(c) for c in rolling}
    return dg.Definitions(
        assets=[build_readout_asset(c) for c in campaigns] + [build_rollout_asset(c) for c in rolling],
        jobs=list(jobs.values()),
        sensors=[build_rollout_sensor(rolling, jobs)] if rolling else [],
    )
