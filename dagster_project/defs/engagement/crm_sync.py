"""crm/contacts: the diff-based write-back of sync_crm__contacts to the CRM (the database table by
default, HubSpot when configured). Only rows the CRM has not acknowledged in this form are sent."""

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from dagster_project.defs.engagement.metadata import sync_metadata
from dagster_project.defs.engagement.resource import CrmSyncResource
from dagster_project.defs.kinds import crm_kinds
from dagster_project.defs.warehouse.dbt_models import mailroom_dbt_models
from dagster_project.resources import WarehouseResource
from reverse_etl.sync.run import sync_model

SYNC_MODEL = "sync_crm__contacts"


class CrmSyncConfig(dg.Config):
    dry_run: bool = False  # show the plan (new, changed, unchanged, retried rows); send nothing


def build_crm_contacts_asset() -> dg.AssetsDefinition:
    """Built when the definitions load, so its kind names the CRM configured now."""

    @dg.asset(
        key=["crm", "contacts"],
        deps=[get_asset_key_for_model([mailroom_dbt_models], SYNC_MODEL)],
        group_name="engagement",
        owners=["team:marketing"],
        kinds=crm_kinds(),
        description="Writes what changed in marts.sync_crm__contacts since the CRM last acknowledged it: last "
        "sent/opened/clicked, 30/90-day counts, engagement score, unsubscribed, bounced, best send hour, "
        "last campaign.",
    )
    def crm_contacts(context: dg.AssetExecutionContext, config: CrmSyncConfig, warehouse: WarehouseResource,
                     crm: CrmSyncResource) -> dg.MaterializeResult:
        report = sync_model(warehouse.warehouse(), crm.settings, model=f"marts.{SYNC_MODEL}", key=("customer_id",),
                            dry_run=config.dry_run, log=context.log.info)
        metadata = sync_metadata(report)
        if report.error:
            raise dg.Failure(description=f"CRM sync stopped: {report.error}", metadata=metadata)
        return dg.MaterializeResult(metadata=metadata)

    return crm_contacts


@dg.definitions
def crm_sync() -> dg.Definitions:
    return dg.Definitions(assets=[build_crm_contacts_asset()])
