"""Pausing and resuming a campaign's sends from the UI: the jobs pause_campaign_sends and
resume_campaign_sends (Launchpad: ops: {<op>: {config: {campaign_id: ..., reason: ...}}}). They record
an entry in ops.campaign_pauses (reverse_etl/pauses.py), as `python -m reverse_etl.send --pause` and
`--resume` do, and send nothing: the next send run hands a resumed campaign's planned messages over."""

from datetime import datetime, timezone

import dagster as dg
from pydantic import Field

from dagster_project.defs.personalization.campaign_assets import load_campaigns
from dagster_project.resources import WarehouseResource
from reverse_etl import pauses


class PauseConfig(dg.Config):
    campaign_id: str = Field(description="The campaign whose sends to pause or resume, e.g. weekly_picks.")
    reason: str = Field(default="", description="Why: kept with the entry and shown wherever the pause is.")
    operator: str = Field(default="", description="Who, for the record (default: this run's id).")


def _record(context: dg.OpExecutionContext, config: PauseConfig, warehouse: WarehouseResource, action: str) -> None:
    known = sorted(campaign.campaign_id for campaign in load_campaigns())
    if config.campaign_id not in known:
        raise dg.Failure(description=f"No campaign {config.campaign_id!r}: set campaign_id to one of "
                                     f"{', '.join(known)}.")
    done = "paused" if action == pauses.PAUSE else "resumed"
    actor = f"dagster:{config.operator or 'run ' + context.run_id[:8]}"
    change = pauses.pause if action == pauses.PAUSE else pauses.resume
    with warehouse.warehouse().connect() as conn:
        entry = change(conn, config.campaign_id, config.reason or f"{done} from the Dagster UI", actor,
                       datetime.now(timezone.utc).replace(tzinfo=None))
        in_force = pauses.current_pause(conn, config.campaign_id)
    if entry is None:
        context.log.info(f"{config.campaign_id} was {'paused' if action == pauses.PAUSE else 'not paused'} already; "
                         "nothing recorded")
    else:
        context.log.info(f"{config.campaign_id}: {done} - {entry.describe()}")
    context.add_output_metadata({"campaign_id": config.campaign_id, "recorded": entry is not None,
                                 "paused_now": in_force.describe() if in_force else "no"})


@dg.op(description="Pause a campaign's sends: its planned messages stay planned until it is resumed.")
def pause_campaign(context: dg.OpExecutionContext, config: PauseConfig, warehouse: WarehouseResource) -> None:
    _record(context, config, warehouse, pauses.PAUSE)


@dg.op(description="Resume a paused campaign's sends: the next send run hands its planned messages over.")
def resume_campaign(context: dg.OpExecutionContext, config: PauseConfig, warehouse: WarehouseResource) -> None:
    _record(context, config, warehouse, pauses.RESUME)


@dg.job(description="Pause one campaign's sends (recorded in ops.campaign_pauses); nothing is lost: its messages "
        "stay planned in the send ledger.")
def pause_campaign_sends():
    pause_campaign()


@dg.job(description="Resume one paused campaign's sends (recorded in ops.campaign_pauses); the next send run - the "
        "campaign's job, deliver_due_messages or `python -m reverse_etl.send` - hands its planned messages over.")
def resume_campaign_sends():
    resume_campaign()


@dg.definitions
def campaign_pauses() -> dg.Definitions:
    return dg.Definitions(jobs=[pause_campaign_sends, resume_campaign_sends])
