"""The Dagster pipeline end to end: ingest assets feed dbt models, on DuckDB and on PostgreSQL."""

from __future__ import annotations

import dagster as dg
import pytest

from dagster_project.ingest.sources import SOURCES
from dagster_project.warehouse import Warehouse

from pipeline_helpers import run_daily_pipeline, table_rows

STAGING_FOR_SOURCE = {
    "cdp": "staging.stg_cdp__events",
    "crm": "staging.stg_crm__contacts",
    "consent": "staging.stg_consent__events",
    "catalog": "staging.stg_catalog__products",
    "esp": "staging.stg_esp__events",
}


def test_daily_pipeline_materializes_ingest_and_dbt(built_warehouse):
    settings, result = built_warehouse

    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    for source in SOURCES.values():
        assert dg.AssetKey(["raw", source.table]) in materialized
    assert dg.AssetKey(["staging", "stg_cdp__events"]) in materialized

    checks = result.get_asset_check_evaluations()
    assert checks and all(check.passed for check in checks)

    ingest_metadata = next(
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(["raw", "cdp_events"])
    )
    assert ingest_metadata["rows_loaded"].value > 0
    assert ingest_metadata["rows_quarantined"].value > 0

    with Warehouse(settings).connect() as conn:
        for name, staging in STAGING_FOR_SOURCE.items():
            raw = conn.scalar(f"SELECT count(*) FROM {SOURCES[name].qualified_table}")
            assert conn.scalar(f"SELECT count(*) FROM {staging}") == raw > 0
        # Segment traits are unpacked from JSON the same way on both engines.
        assert conn.scalar("SELECT count(*) FROM staging.stg_cdp__events WHERE email IS NOT NULL") > 0
        assert conn.scalar("SELECT count(*) FROM staging.stg_cdp__events WHERE product_id IS NOT NULL") > 0


@pytest.mark.slow
def test_second_run_is_idempotent(built_warehouse):
    settings = built_warehouse.settings
    with Warehouse(settings).connect() as conn:
        before = {t: table_rows(conn, t) for t in ("raw.cdp_events", "raw.quarantine")}
    assert run_daily_pipeline().success
    with Warehouse(settings).connect() as conn:
        assert {t: table_rows(conn, t) for t in before} == before
