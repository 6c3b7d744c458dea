"""Where engagement is written back: the CRM sync settings. The HubSpot token is read when a request
is made (settings.hubspot_access_token), never stored here."""

import dagster as dg

from dagster_project.settings import SyncSettings


class CrmSyncResource(dg.ConfigurableResource):
    destination: str = "database"
    mode: str = "upsert"
    database_url: str
    database_table: str = "crm_contacts"
    hubspot_host: str = "https://api.hubapi.com"
    hubspot_id_property: str = "email"
    batch_size: int = 100
    rate_per_second: float = 10.0
    max_attempts: int = 5

    @classmethod
    def from_settings(cls, settings: SyncSettings) -> "CrmSyncResource":
        return cls(**{name: getattr(settings, name) for name in cls.model_fields})

    @property
    def settings(self) -> SyncSettings:
        return SyncSettings(**{name: getattr(self, name) for name in type(self).model_fields})
