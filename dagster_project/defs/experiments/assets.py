"""Per campaign, below marts.experiment_units and marts.campaign_performance:

    campaigns/<id>/<id>_readout   the latest run's performance per arm and segment (the holdout beside the
                             variants) and the experiment readout (variants against the control, the
                             campaign against its holdout) as metadata, with the blocking check
                             no_sample_ratio_mismatch
    campaigns/<id>/<id>_rollout   (batch campaigns with a roll-out experiment) looks at every run whose
                             remainder waits, records the decision when the rule fires, and renders the
                             remainder with the winner; campaigns/<id>/<id>_sends hands it over

and per roll-out campaign a job (<id>_rollout: fresh engagement -> dbt -> readout -> rollout -> sends)
that experiment_rollout_sensor starts when provider events arrive or a deadline passes."""

from datetime import datetime, timezone

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from dagster_project.defs.activation.ops_assets import OPS_GROUP
from dagster_project.defs.experiments.metadata import readout_metadata, rollout_metadata
from dagster_project.defs.journeys.assets import JOURNEY_GROUP
from dagster_project.defs.personalization.campaign_assets import (
    CAMPAIGN_GROUP,
    messages_key,
    readout_key,
    rollout_key,
    sends_key,
)
from dagster_project.defs.personalization.resource import PersonalizationResource
from dagster_project.defs.warehouse.dbt_models import mailroom_dbt_models
from dagster_project.experiments.decisions import ROLLOUT, decisions_of
from dagster_project.experiments.performance import campaign_performance
from dagster_project.experiments.rollout import roll_out
from dagster_project.experiments.spec import primary_metric
from dagster_project.experiments.warehouse_readout import CampaignReadouts, campaign_readouts
from dagster_project.personalization.campaigns import Campaign
from dagster_project.resources import WarehouseResource

EXPERIMENT_GROUP = "experiments"
SRM_CHECK = "no_sample_ratio_mismatch"


def experiment_units_key() -> dg.AssetKey:
    return get_asset_key_for_model([mailroom_dbt_models], "experiment_units")


def campaign_performance_key() -> dg.AssetKey:
    return get_asset_key_for_model([mailroom_dbt_models], "campaign_performance")


def build_readout_asset(campaign: Campaign) -> dg.AssetsDefinition:
    key = readout_key(campaign)
    metric = primary_metric(campaign.experiment)

    @dg.asset(
        key=key,
        deps=[experiment_units_key(), campaign_performance_key()],
        group_name=EXPERIMENT_GROUP,
        owners=["team:marketing"],
        tags={"campaign": campaign.campaign_id},
        kinds={"python", "sql"},
        check_specs=[dg.AssetCheckSpec(
            SRM_CHECK, asset=key, blocking=True,
            description="The arms of the latest run are split as configured (chi-square goodness of fit, "
                        "p >= 0.001); a mismatch means broken assignment or delivery and blocks the roll-out.")],
        description=f"Experiment readout of campaign {campaign.campaign_id}: the latest run's performance per variant "
        "and segment beside the holdout's, each variant against the control and the campaign against its holdout, "
        "on delivered, opened, clicked, converted and revenue per recipient.",
    )
    def readout(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        with warehouse.warehouse().connect() as conn:
            readouts = campaign_readouts(conn, campaign)
            decisions = decisions_of(conn, campaign.campaign_id)
            performance = campaign_performance(conn, campaign.campaign_id, readouts.run_key) if readouts.run_key else []
        yield dg.MaterializeResult(metadata=readout_metadata(readouts, metric, decisions, performance))
        decided = any(d.run_key == readouts.run_key and d.kind == ROLLOUT for d in decisions)
        yield _srm_check(readouts, decided)

    return readout


def _srm_check(readouts: CampaignReadouts, decided: bool) -> dg.AssetCheckResult:
    """Fails on a mismatch in the latest run, unless that run's roll-out was already decided (an
    operator's `decide` after explaining it): then there is nothing left to block."""
    found = [(name, r) for name, r in (("variants", readouts.primary), ("holdout", readouts.holdout),
                                       ("send_time", readouts.send_time)) if r is not None]
    mismatched = [f"{name} (p = {r.srm_p_value:.2g}, units {', '.join(f'{a.arm} {a.units:,}' for a in r.arms)})"
                  for name, r in found if r.has_srm]
    return dg.AssetCheckResult(
        check_name=SRM_CHECK,
        passed=not mismatched or decided,
        severity=dg.AssetCheckSeverity.ERROR,
        description=("Sample ratio mismatch in " + "; ".join(mismatched) + ": the split is not the configured one, "
                     "so no decision is made. Look for assignment or delivery problems (an arm bounced, suppressed "
                     "or filtered more than the others); once explained, `python -m dagster_project.experiments "
                     "decide` records the winner by hand." + (" The run is decided already." if decided else "")
                     if mismatched else "Arms split as configured."),
        metadata={f"{name}_srm_p_value": dg.MetadataValue.float(r.srm_p_value) for name, r in found},
    )


def build_rollout_asset(campaign: Campaign) -> dg.AssetsDefinition:
    @dg.asset(
        key=rollout_key(campaign),
        # Below the assignments it updates, not below the readout or marts.experiment_units it reads: those
        # are built from the ledger its remainder's sends write, and Dagster's lineage admits no cycle. It
        # still runs after dbt in its job (the assignments model comes from the same dbt step).
        deps=[get_asset_key_for_model([mailroom_dbt_models], "stg_ops__campaign_assignments"), messages_key(campaign)],
        group_name=CAMPAIGN_GROUP,
        owners=["team:marketing"],
        tags={"campaign": campaign.campaign_id, "campaign_type": campaign.campaign_type},
        kinds={"python"},
        description=f"Winner roll-out of campaign {campaign.campaign_id}: looks at each run whose remainder waits, "
        f"decides ({campaign.experiment.method}, {campaign.experiment.metric}, alpha {campaign.experiment.alpha}, "
        f"within {campaign.experiment.decide_within_hours:g} h) and renders the remainder with the winner.",
    )
    def rollout(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                personalization: PersonalizationResource) -> dg.MaterializeResult:
        store = warehouse.warehouse()
        looks = roll_out(store, campaign, personalization.renderer(), _utc_now())
        for look in looks:
            if look.decision:
                context.log.info(f"{campaign.campaign_id} run {look.run_key}: "
                                 f"remainder gets {look.decision.variant_id} "
                                 f"({look.decision.rule}: {look.decision.reason}); {look.rendered:,} rendered")
            else:
                context.log.info(f"{campaign.campaign_id} run {look.run_key}: waiting ({look.waiting_reason})")
        with store.connect() as conn:
            decisions = decisions_of(conn, campaign.campaign_id)
        return dg.MaterializeResult(metadata=rollout_metadata(looks, decisions))

    return rollout


def rollout_job(campaign: Campaign):
    return dg.define_asset_job(
        f"{campaign.campaign_id}_rollout",
        # Ingest and the models below marts.experiment_units, not the campaigns' own assets above the ops tables.
        selection=((dg.AssetSelection.assets(experiment_units_key()).upstream()
                    - dg.AssetSelection.groups(CAMPAIGN_GROUP, OPS_GROUP, JOURNEY_GROUP))
                   | _performance_models()
                   | dg.AssetSelection.assets(readout_key(campaign), rollout_key(campaign), sends_key(campaign))),
        description=f"Takes in new engagement, rebuilds marts.experiment_units and marts.campaign_performance, reads "
        f"campaign {campaign.campaign_id}'s experiment and, once decided, renders and sends the remainder its winner.",
    )


def _performance_models() -> dg.AssetSelection:
    """marts.campaign_performance and the engagement facts it reads that experiment_units does not (the
    rest of its upstream is experiment_units' too), so the readout's performance table is as fresh as
    its readout."""
    return dg.AssetSelection.assets(
        campaign_performance_key(),
        *(get_asset_key_for_model([mailroom_dbt_models], model)
          for model in ("fct_email_bounces", "fct_email_spam_reports", "fct_email_unsubscribes")))


def _utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
