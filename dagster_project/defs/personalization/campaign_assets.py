"""Each campaign in dbt/models/campaigns/ becomes two assets below its audience model:

    campaigns/<id>/<id>_content    one content unit per segment x variant (LLM or rules, guardrails, cost)
    campaigns/<id>/<id>_messages   one rendered message per eligible customer -> ops.campaign_messages

and a third, campaigns/<id>/<id>_sends, built in defs/activation (it hands the messages to the provider).

The campaigns are read from the dbt manifest, so adding a campaign (SQL + meta) adds its assets.
"""

import functools
import json
from datetime import datetime, timezone

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from dagster_project.dbt_project import mailroom_dbt
from dagster_project.defs.data_versions import campaign_data_version
from dagster_project.defs.kinds import content_kinds
from dagster_project.defs.personalization.metadata import content_metadata, messages_metadata, previews_metadata
from dagster_project.defs.personalization.resource import PersonalizationResource
from dagster_project.defs.warehouse.dbt_models import mailroom_dbt_models
from dagster_project.personalization.campaigns import Campaign, campaigns_from_manifest
from dagster_project.personalization.content_step import write_campaign_content
from dagster_project.personalization.messages_step import render_campaign_messages
from dagster_project.personalization.previews import receiver_base_url, write_campaign_previews
from dagster_project.resources import WarehouseResource

CAMPAIGN_GROUP = "campaigns"


def campaign_asset_key(campaign: Campaign, step: str) -> dg.AssetKey:
    """campaigns/<id>/<id>_<step>: the lineage graph labels a node with its key's last part only, so that
    part names the campaign too ("weekly_picks_messages", not a third "messages")."""
    return dg.AssetKey(["campaigns", campaign.campaign_id, f"{campaign.campaign_id}_{step}"])


def content_key(campaign: Campaign) -> dg.AssetKey:
    return campaign_asset_key(campaign, "content")


def messages_key(campaign: Campaign) -> dg.AssetKey:
    """The asset that renders the campaign's messages: its messages asset, or for a journey campaign
    the journey step that sends it (defs/journeys)."""
    if campaign.campaign_type == "journey":
        return _journey_steps().get(campaign.campaign_id, campaign_asset_key(campaign, "messages"))
    return campaign_asset_key(campaign, "messages")


@functools.cache
def _journey_steps() -> dict[str, dg.AssetKey]:
    from dagster_project.defs.journeys.assets import journey_step_of_campaign, load_journeys

    return journey_step_of_campaign(load_journeys())


def sends_key(campaign: Campaign) -> dg.AssetKey:
    """Built in defs/activation; named here so the campaign's job and the daily job can select it."""
    return campaign_asset_key(campaign, "sends")


def rollout_key(campaign: Campaign) -> dg.AssetKey:
    """Built in defs/experiments for campaigns with a roll-out experiment: the remainder gets the winner."""
    return campaign_asset_key(campaign, "rollout")


def readout_key(campaign: Campaign) -> dg.AssetKey:
    """Built in defs/experiments: the campaign's experiment readout."""
    return campaign_asset_key(campaign, "readout")


def build_campaign_assets(campaign: Campaign) -> list[dg.AssetsDefinition]:
    audience = get_asset_key_for_model([mailroom_dbt_models], campaign.model)
    shared = {
        "group_name": CAMPAIGN_GROUP,
        "owners": ["team:marketing"],
        "tags": {"campaign": campaign.campaign_id, "campaign_type": campaign.campaign_type},
    }

    @dg.asset(
        key=content_key(campaign),
        deps=[audience],
        kinds=content_kinds(),
        **shared,
        description=f"Content units of campaign {campaign.campaign_id}: one per segment x variant of its "
        f"eligible audience, written by the LLM when configured, else by rules, behind guardrails.",
    )
    def content(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                personalization: PersonalizationResource) -> dg.MaterializeResult:
        now = _utc_now()
        store = warehouse.warehouse()
        report = write_campaign_content(
            store, campaign, personalization.chain(store, now), personalization.cache_identity(),
            personalization.brand().voice, now, progress=context.log.info,
        )
        for unit in report.review_queue:
            context.log.warning(f"{unit.segment_key}/{unit.variant_id} is in the review queue: "
                                f"{unit.written.review_reason}")
        return dg.MaterializeResult(metadata=content_metadata(report),
                                    data_version=campaign_data_version(store, "content", campaign.campaign_id))

    if campaign.campaign_type == "journey":
        return [content]  # its messages are rendered by the journey step that sends it (defs/journeys)

    model_deps = []  # what the messages read besides the audience: products, propensity scores
    if campaign.product_source:
        model_deps.append(get_asset_key_for_model([mailroom_dbt_models], campaign.product_source[0].split(".")[1]))
    if campaign.audience:
        model_deps.append(get_asset_key_for_model([mailroom_dbt_models], "customer_propensity"))

    @dg.asset(
        key=messages_key(campaign),
        deps=[content_key(campaign), audience, *model_deps],
        kinds={"python", "jinja"},
        **shared,
        description=f"One rendered message per eligible customer of campaign {campaign.campaign_id} and run "
        f"(ops.campaign_messages); holdout and suppressions recorded with their reasons.",
    )
    def messages(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                 personalization: PersonalizationResource) -> dg.MaterializeResult:
        store = warehouse.warehouse()
        report = render_campaign_messages(store, campaign, personalization.renderer(),
                                          warehouse.settings.reference_time())
        context.log.info(
            f"{campaign.campaign_id} run {report.run_key}: {report.rendered:,} rendered, {report.holdout:,} holdout, "
            f"{sum(report.suppressed.values()):,} suppressed"
        )
        previews = write_campaign_previews(store, campaign.campaign_id, report.run_key, warehouse.settings.previews_dir,
                                           audience_relation=campaign.relation)
        return dg.MaterializeResult(
            metadata={**messages_metadata(report),
                      **previews_metadata(previews, base_url=receiver_base_url(personalization.unsubscribe_url))},
            data_version=campaign_data_version(store, "messages", campaign.campaign_id))

    return [content, messages]


def load_campaigns() -> list[Campaign]:
    return campaigns_from_manifest(json.loads(mailroom_dbt.manifest_path.read_text()))


def batch_campaign_jobs(campaigns: list[Campaign]) -> tuple[list, list]:
    """A job and a schedule per batch campaign: its audience model (rebuilt from the latest marts,
    so its gates run and block in the same run), content, messages, sends, and the ops tables' state."""
    from dagster_project.defs.activation.ops_assets import ops_table_keys

    jobs, schedules = [], []
    for campaign in campaigns:
        if campaign.campaign_type != "batch":
            continue
        audience = get_asset_key_for_model([mailroom_dbt_models], campaign.model)
        job = dg.define_asset_job(
            f"{campaign.campaign_id}_campaign",
            selection=dg.AssetSelection.assets(audience, content_key(campaign), messages_key(campaign),
                                               sends_key(campaign), *ops_table_keys()),
            description=f"Rebuilds the audience of batch campaign {campaign.campaign_id} from the latest marts, "
            "gates it, writes and renders the campaign, then sends it.",
        )
        jobs.append(job)
        if campaign.schedule:
            schedules.append(dg.ScheduleDefinition(
                job=job, cron_schedule=campaign.schedule, execution_timezone="UTC",
                default_status=dg.DefaultScheduleStatus.STOPPED,
                description=f"Batch campaign {campaign.campaign_id} on its schedule (meta.campaign.schedule).",
            ))
    return jobs, schedules


def batch_campaign_assets(campaigns: list[Campaign]) -> dg.AssetSelection:
    keys = [key for c in campaigns if c.campaign_type == "batch"
            for key in (content_key(c), messages_key(c), sends_key(c))]
    keys += [rollout_key(c) for c in campaigns if c.experiment and c.experiment.rolls_out]
    return dg.AssetSelection.assets(*keys)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
