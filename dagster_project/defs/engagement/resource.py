"""Where engagement is written back: the CRM sync settings. Secrets are never stored here, since the
UI shows resource config: the HubSpot token is read when a request is made
(settings.hubspot_access_token), and the CRM database URL is kept without its password, which is read
from MAILROOM_CRM_DATABASE_URL when the database is connected to (settings.crm_database_password)."""

import dagster as dg
from sqlalchemy.engine import make_url

from dagster_project.settings import SyncSettings


class CrmSyncResource(dg.ConfigurableResource):
    destination: str = "database"
    mode: str = "upsert"
    database_url: str  # without its password
    database_table: str = "crm_contacts"
    hubspot_host: str = "https://api.hubapi.com"
    hubspot_id_property: str = "email"
    batch_size: int = 100
    rate_per_second: float = 10.0
    max_attempts: int = 5

    @classmethod
    def from_settings(cls, settings: SyncSettings) -> "CrmSyncResource":
        values = {name: getattr(settings, name) for name in cls.model_fields}
        return cls(**{**values, "database_url": url_without_password(settings.database_url)})

    @property
    def settings(self) -> SyncSettings:
        return SyncSettings(**{name: getattr(self, name) for name in type(self).model_fields})


def url_without_password(url: str) -> str:
    """The URL as it may be shown: the password left out, everything else as configured."""
    parsed = make_url(url)  # load_sync_settings has checked that it parses
    if parsed.password is None:
        return url
    # _replace, not URL.set(password=None), which means "leave the password as it is".
    return parsed._replace(password=None).render_as_string(hide_password=False)
