"""Row counts for the tables a dbt build materialized, as `dagster/row_count` on each model's
materialization, so every model's page shows its size and Dagster plots it run over run.

dagster-dbt's own fetch_row_counts() queries while dbt still runs, through a second connection; the
embedded DuckDB file admits one writing process, so the counts are taken here, after dbt has finished,
through Mailroom's warehouse connection (the same on PostgreSQL). Views are not counted: counting one
runs its whole query."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

from dagster_project.warehouse import Warehouse


def with_row_counts(events: list, manifest: Mapping[str, Any], warehouse: Warehouse) -> Iterable:
    tables = {}
    for event in events:
        node = _node(event, manifest)
        if node and node.get("config", {}).get("materialized") in ("table", "incremental", "seed"):
            tables[node["unique_id"]] = f'{node["schema"]}."{node.get("alias") or node["name"]}"'
    counts = _count(warehouse, tables)
    for event in events:
        node = _node(event, manifest)
        if node and node["unique_id"] in counts:
            event = event.with_metadata({**event.metadata,
                                         "dagster/row_count": dg.MetadataValue.int(counts[node["unique_id"]])})
        yield event


def _node(event, manifest: Mapping[str, Any]) -> dict | None:
    if not isinstance(event, (dg.Output, dg.AssetMaterialization)):
        return None
    unique_id = event.metadata.get("unique_id")
    unique_id = getattr(unique_id, "value", unique_id)
    return manifest.get("nodes", {}).get(unique_id) if unique_id else None


def _count(warehouse: Warehouse, tables: dict[str, str]) -> dict[str, int]:
    if not tables:
        return {}
    with warehouse.connect() as conn:
        return {unique_id: int(conn.scalar(f"SELECT count(*) FROM {relation}"))
                for unique_id, relation in tables.items()}
