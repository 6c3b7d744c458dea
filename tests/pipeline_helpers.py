"""Running the Dagster pipeline from tests on a given warehouse."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from dagster_project.pipeline import run_pipeline
from dagster_project.settings import Settings


def with_landing(settings: Settings, sample_landing: Path) -> Settings:
    shutil.copytree(sample_landing, settings.landing_dir)
    return settings


def run_daily_pipeline() -> dg.ExecuteInProcessResult:
    """Runs with resources built from the environment (tests set it with the mailroom_env fixture)."""
    instance = dg.DagsterInstance.ephemeral()
    return run_pipeline(instance)


def table_rows(conn, table: str, exclude: tuple[str, ...] = ("loaded_at",)) -> list[tuple]:
    """Every row of `table` as comparable plain values, sorted, without load-time columns."""
    schema, name = table.split(".")
    columns = [
        c for (c,) in conn.fetchall(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [schema, name],
        )
        if c not in exclude
    ]
    rows = conn.fetchall(f"SELECT {', '.join(columns)} FROM {table}")
    return sorted((tuple(_plain(v) for v in row) for row in rows), key=repr)


def _plain(value):
    from decimal import Decimal

    if isinstance(value, Decimal):
        return float(value)
    return value
