"""Each campaign's sends: campaigns/<id>/<id>_sends hands the rendered messages to the destination chain
through the send ledger, below the messages asset (so its blocking gate stops sends) and the
consent and provider-event ingest (so the last look before sending sees the latest opt-outs)."""

import dagster as dg

from dagster_project.defs.activation.metadata import send_metadata
from dagster_project.defs.activation.resource import ActivationResource
from dagster_project.defs.data_versions import campaign_data_version
from dagster_project.defs.kinds import send_kinds
from dagster_project.defs.personalization.campaign_assets import (
    CAMPAIGN_GROUP,
    load_campaigns,
    messages_key,
    rollout_key,
    sends_key,
)
from dagster_project.personalization.campaigns import Campaign
from dagster_project.resources import WarehouseResource
from reverse_etl.run import send_campaigns, summary_lines

FRESH_INPUTS = [dg.AssetKey(["raw", "consent_events"]), dg.AssetKey(["raw", "esp_events"])]
SEND_LEDGER = dg.AssetKey(["ops", "send_ledger"])


class SendConfig(dg.Config):
    dry_run: bool = False  # report what would be sent, suppressed and why; send nothing


def build_send_asset(campaign: Campaign) -> dg.AssetsDefinition:
    # A roll-out experiment's remainder is rendered by campaigns/<id>/<id>_rollout and sent from here too.
    rollout = [rollout_key(campaign)] if campaign.experiment and campaign.experiment.rolls_out else []

    @dg.asset(
        key=sends_key(campaign),
        deps=[messages_key(campaign), *rollout, *FRESH_INPUTS],
        group_name=CAMPAIGN_GROUP,
        owners=["team:marketing"],
        tags={"campaign": campaign.campaign_id, "campaign_type": campaign.campaign_type},
        kinds=send_kinds(),
        description=f"Hands campaign {campaign.campaign_id}'s due messages to the destination chain exactly once "
        "(ops.send_ledger), after re-checking consent, suppressions, the frequency cap and quiet hours.",
    )
    def sends(context: dg.AssetExecutionContext, config: SendConfig, warehouse: WarehouseResource,
              activation: ActivationResource) -> dg.MaterializeResult:
        [report] = send_campaigns(warehouse.settings, activation.settings, [campaign.campaign_id],
                                  dry_run=config.dry_run, log=context.log.info, run_id=context.run.run_id)
        for line in summary_lines(report):
            context.log.info(line)
        if report.paused:  # not a failure: somebody (or a guard) chose to hold this campaign's sends
            context.log.warning(
                f"{campaign.campaign_id} is paused: {report.paused.describe()}. Its planned messages wait; resume it "
                f"with the job resume_campaign_sends or `python -m reverse_etl.send --resume --campaign "
                f"{campaign.campaign_id}`")
        if report.awaiting:
            context.log.warning(f"{report.awaiting:,} messages are awaiting reconciliation (outcome unknown, or in "
                                "flight in another run); a later run settles them with the provider before any resend")
        if report.reconciled.get("held"):
            context.log.warning(
                f"{report.reconciled['held']:,} messages are held with an unknown outcome: settle them with `python -m "
                f"reverse_etl.send --resolve-unknown accepted|resend --campaign {campaign.campaign_id}`")
        metadata = send_metadata(report)
        if report.failed.get("destinations_unavailable"):
            raise dg.Failure(
                description=f"{report.failed['destinations_unavailable']:,} messages of {campaign.campaign_id} could "
                "not be handed to any destination; they stay in the ledger as failed (retryable) and the next run "
                "sends them. See failovers and the log for the destinations' errors.",
                metadata=metadata,
            )
        return dg.MaterializeResult(metadata=metadata, data_version=campaign_data_version(
            warehouse.warehouse(), "sends", campaign.campaign_id))

    return sends


@dg.definitions
def campaign_sends() -> dg.Definitions:
    campaigns = load_campaigns()
    # Messages scheduled for later (SMTP delivers at once, so it waits for the send time) and retries.
    due = dg.define_asset_job(
        "deliver_due_messages",
        selection=dg.AssetSelection.assets(*FRESH_INPUTS, *(sends_key(c) for c in campaigns), SEND_LEDGER),
        description="Loads new consent and provider events, then hands every campaign's due messages over.",
    )
    return dg.Definitions(
        assets=[build_send_asset(campaign) for campaign in campaigns],
        jobs=[due],
        schedules=[dg.ScheduleDefinition(
            job=due, cron_schedule="*/15 * * * *", execution_timezone="UTC",
            default_status=dg.DefaultScheduleStatus.STOPPED,
            description="Every 15 minutes: sends what has come due since the campaign ran (off until turned on).",
        )],
    )
