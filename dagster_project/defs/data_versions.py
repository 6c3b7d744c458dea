"""Data versions for the Python assets, fingerprints of what they wrote. Dagster marks an asset
"Unsynced" when an upstream data version changed since it ran; without a data version every run is a
change. With these, a run that wrote the same rows (nothing new to ingest, send or render) leaves
everything below it up to date, and dbt's models (versioned by their SQL and their inputs) follow."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import dagster as dg

from dagster_project.warehouse import Warehouse

# Per asset: one row of aggregates over what it owns in its ops table, for one campaign.
CAMPAIGN_FINGERPRINTS = {
    "content": ("campaign_content", "string_agg(segment_key || '/' || variant_id || '=' || content_key, ',' "
                                    "ORDER BY segment_key, variant_id)"),
    "messages": ("campaign_messages", "count(*), max(rendered_at), count(DISTINCT variant_id)"),
    "sends": ("send_ledger", "count(*), count(provider_message_id), max(finished_at), max(state)"),
}


def campaign_data_version(warehouse: Warehouse, step: str, campaign_id: str) -> dg.DataVersion:
    table, aggregates = CAMPAIGN_FINGERPRINTS[step]
    with warehouse.connect() as conn:
        if not conn.table_exists("ops", table):
            return dg.DataVersion("empty")
        row = conn.fetchall(f"SELECT {aggregates} FROM ops.{table} WHERE campaign_id = ?", [campaign_id])[0]
    return fingerprint(row)


def fingerprint(values: Sequence) -> dg.DataVersion:
    return dg.DataVersion(hashlib.sha256(repr(tuple(str(v) for v in values)).encode()).hexdigest()[:16])
