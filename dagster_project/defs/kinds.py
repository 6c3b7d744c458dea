"""The kinds on asset nodes name what is configured when the definitions load, so the lineage graph
tells the truth: an OpenAI badge only where OpenAI writes, the CRM and destinations actually in use,
the warehouse that holds the tables. A setting that does not load falls back to the embedded default
here; the asset that needs it reports the error when it runs."""

from __future__ import annotations

from urllib.parse import urlsplit

from dagster_project.settings import (
    SettingsError,
    load_activation_settings,
    load_personalization_settings,
    load_settings,
    load_sync_settings,
)

# Destination -> the kind Dagster shows (it has icons for these names).
DESTINATION_KINDS = {"sendgrid": "sendgrid", "smtp": "email", "outbox": "file"}


def warehouse_kind() -> str:
    try:
        return load_settings().warehouse  # "duckdb" or "postgres"
    except SettingsError:
        return "duckdb"


def content_kinds() -> set[str]:
    try:
        llm = load_personalization_settings().primary is not None
    except SettingsError:
        llm = False
    return {"python", "openai"} if llm else {"python"}


def send_kinds() -> set[str]:
    try:
        destinations = load_activation_settings().destinations
    except SettingsError:
        destinations = ("outbox",)
    return {"python", *(DESTINATION_KINDS[name] for name in destinations)}


def crm_kinds() -> set[str]:
    try:
        sync = load_sync_settings()
    except SettingsError:
        return {"python", "sqlite"}
    if sync.destination == "hubspot":
        return {"python", "hubspot"}
    scheme = urlsplit(sync.database_url).scheme.split("+")[0]  # postgresql+psycopg -> postgresql
    return {"python", {"postgresql": "postgres"}.get(scheme, scheme or "sqlite")}
