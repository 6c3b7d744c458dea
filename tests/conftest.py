"""Shared fixtures: sample data, a DuckDB warehouse in a temp dir, a fresh PostgreSQL database per
test, and the dbt manifest prepared once per session."""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from postgres_server import fresh_database, postgres_server  # noqa: E402

from dagster_project.settings import Settings  # noqa: E402
from dagster_project.warehouse import Warehouse  # noqa: E402

SAMPLE_CUSTOMERS = 300
SAMPLE_SEED = 11
SAMPLE_AS_OF = date(2026, 11, 1)


@pytest.fixture(scope="session")
def sample_landing(tmp_path_factory) -> Path:
    """A small, deterministic sample data set (read-only: copy it before changing files)."""
    from dagster_project.sample_data import generate

    landing = tmp_path_factory.mktemp("sample") / "landing"
    generate(out_dir=landing, customers=SAMPLE_CUSTOMERS, seed=SAMPLE_SEED, as_of=SAMPLE_AS_OF,
             events_per_file=1000)
    return landing


@pytest.fixture(scope="session")
def pg_server():
    with postgres_server() as server:
        if server is None:
            message = (
                "No PostgreSQL server: set MAILROOM_TEST_PG_URL or run one on 127.0.0.1:5432 (user postgres)."
            )
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                pytest.fail(message + " Under CI=true the PostgreSQL tests must run.", pytrace=False)
            pytest.skip(message)
        yield server


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_kind(request) -> str:
    return request.param


@pytest.fixture
def settings(warehouse_kind, tmp_path, request) -> Settings:
    """Settings for a brand-new warehouse of `warehouse_kind` with an empty landing directory."""
    # Time-window rules (volume bands, CASL expiry) look back from the day the sample data ends.
    as_of = SAMPLE_AS_OF.isoformat()
    if warehouse_kind == "duckdb":
        yield Settings(warehouse="duckdb", data_dir=tmp_path / "data", as_of=as_of)
        return
    server = request.getfixturevalue("pg_server")
    with fresh_database(server) as database:
        yield Settings(warehouse="postgres", data_dir=tmp_path / "data", postgres=database, as_of=as_of)


@pytest.fixture
def warehouse(settings) -> Warehouse:
    return Warehouse(settings)


def settings_environment(settings: Settings) -> dict[str, str]:
    """The environment a Dagster code location would be started with for `settings`."""
    return {
        "MAILROOM_WAREHOUSE": settings.warehouse,
        "MAILROOM_DATA_DIR": str(settings.data_dir),
        "MAILROOM_LANDING_DIR": str(settings.landing_dir),
        "MAILROOM_DUCKDB_PATH": str(settings.duckdb_path),
        "MAILROOM_PG_URL": settings.postgres.url,
        "MAILROOM_AS_OF": settings.as_of,
        "MAILROOM_EXPECTATIONS_DIR": str(settings.expectations_dir),
    }


@pytest.fixture
def mailroom_env(settings, monkeypatch) -> Settings:
    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)
    return settings


@pytest.fixture(scope="session")
def prepared_dbt():
    """Parse the dbt project once per session (never at import time)."""
    from dagster_project.dbt_project import mailroom_dbt
    from dagster_project.resources import dbt_executable

    os.environ["PATH"] = str(Path(dbt_executable()).parent) + os.pathsep + os.environ["PATH"]
    mailroom_dbt.preparer.prepare(mailroom_dbt)
    return mailroom_dbt
