"""The entry point the Dagster asset, the demo and the CLI share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dagster_project.settings import SyncSettings, crm_database_password, hubspot_access_token
from dagster_project.warehouse import Warehouse
from reverse_etl.sync.destinations.base import CrmDestination
from reverse_etl.sync.engine import Syncer
from reverse_etl.sync.pacing import Pacer
from reverse_etl.sync.report import SyncReport
from reverse_etl.throttle import Backoff

DEFAULT_MODEL = "marts.sync_crm__contacts"
DEFAULT_KEY = ("customer_id",)


def sync_model(warehouse: Warehouse, sync_settings: SyncSettings, model: str = DEFAULT_MODEL,
               key: Sequence[str] = DEFAULT_KEY, dry_run: bool = False, log: Callable[[str], None] = print,
               destination: CrmDestination | None = None, pacer: Pacer | None = None) -> SyncReport:
    """Sync the new and changed rows of `model` (one row per `key`) to the configured CRM.

    Returns the report (also logged to ops.sync_runs). Rows the CRM refused are in ops.sync_rejections
    and rows of batches that kept failing are left for the next run: `report.complete` tells whether
    everything due was settled. Raises DestinationUnavailable (after recording the run) when the CRM
    cannot work at all: a refused token, HubSpot's daily limit."""
    pacer = pacer or build_pacer(sync_settings)
    destination = destination or build_destination(sync_settings, pacer)
    syncer = Syncer(warehouse, destination, pacer, mode=sync_settings.mode, batch_size=sync_settings.batch_size,
                    dry_run=dry_run, log=log)
    return syncer.sync(model, key)


def build_pacer(sync_settings: SyncSettings) -> Pacer:
    return Pacer(sync_settings.rate_per_second if sync_settings.destination == "hubspot" else 0.0,
                 sync_settings.max_attempts, Backoff(base_seconds=1.0, cap_seconds=60.0))


def build_destination(sync_settings: SyncSettings, pacer: Pacer) -> CrmDestination:
    if sync_settings.destination == "hubspot":
        from reverse_etl.sync.destinations.hubspot import HubSpotCrm

        return HubSpotCrm(sync_settings.hubspot_host, hubspot_access_token, pacer,
                          id_property=sync_settings.hubspot_id_property)
    from reverse_etl.sync.destinations.database import DatabaseCrm

    url = sync_settings.database_url
    if not url:  # SyncSettings() built by hand rather than by load_sync_settings
        from dagster_project.settings import load_sync_settings

        url = load_sync_settings().database_url
    # The URL may come without its password (from Dagster resource config): it is read when connecting.
    return DatabaseCrm(url, sync_settings.database_table, pacer, password=lambda: crm_database_password(url))
