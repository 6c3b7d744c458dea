"""Incremental models: a next-day build that adds only the new rows gives exactly what a full refresh
gives, on both engines."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

from benchmarks.next_day import write_next_day
from dagster_project.dbt_project import DBT_PROJECT_DIR
from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.sources import SOURCES
from dagster_project.warehouse import Warehouse

from dbt_runner import dbt
from pipeline_helpers import table_rows


def _incremental_models() -> dict[str, str]:
    """Every incremental model's relation (schema.table), from the prepared manifest."""
    manifest = json.loads((Path(DBT_PROJECT_DIR) / "target" / "manifest.json").read_text())
    return {
        node["name"]: f"{node['schema']}.{node['alias'] or node['name']}"
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"]["materialized"] == "incremental"
    }


def test_the_raw_event_models_are_incremental():
    assert "stg_cdp__events" in _incremental_models()


def test_a_next_day_build_equals_a_full_refresh(built_warehouse):
    settings = built_warehouse.settings
    warehouse = Warehouse(settings)
    models = _incremental_models()
    with warehouse.connect() as conn:
        before = {name: conn.fetchall(f"SELECT count(*) FROM {relation}")[0][0] for name, relation in models.items()}

    written = write_next_day(settings.landing_dir, share=0.05)
    assert written["cdp"] > 0, "the sample should give the next day some CDP events"
    loaded = {source: ingest_source(warehouse, SOURCES[source], settings.landing_dir).rows_loaded
              for source in ("cdp", "esp")}
    assert loaded["cdp"] > 0
    next_day = (date.fromisoformat(settings.as_of) + timedelta(days=1)).isoformat()
    selection = ("--select", " ".join(models))

    dbt(settings, "run", *selection, as_of=next_day)
    with warehouse.connect() as conn:
        incremental = {name: table_rows(conn, relation) for name, relation in models.items()}
    assert len(incremental["stg_cdp__events"]) == before["stg_cdp__events"] + loaded["cdp"]

    dbt(settings, "run", "--full-refresh", *selection, as_of=next_day)
    with warehouse.connect() as conn:
        for name, relation in models.items():
            assert table_rows(conn, relation) == incremental[name], f"{name}: incremental != full refresh"
