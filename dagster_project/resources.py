"""Dagster resources. They are built from Settings (settings.py reads the environment), so asset
bodies receive a ready warehouse and never look at the environment themselves."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from dagster_project.settings import PostgresTarget, Settings, postgres_password
from dagster_project.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """Where raw, staging, marts and ops tables live (embedded DuckDB or PostgreSQL), with the
    Settings the Python assets need."""

    kind: str = "duckdb"
    duckdb_path: str
    data_dir: str
    landing_dir: str
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "postgres"
    # No password field: it is read from the environment when a connection opens (see
    # settings.postgres_password), so the UI never displays it.
    pg_dbname: str = "mailroom"
    phone_default_region: str = "US"
    as_of: str = ""
    previews_dir: str = ""  # empty: data_dir/previews

    @classmethod
    def from_settings(cls, settings: Settings) -> "WarehouseResource":
        pg = settings.postgres
        return cls(
            kind=settings.warehouse,
            duckdb_path=str(settings.duckdb_path),
            data_dir=str(settings.data_dir),
            landing_dir=str(settings.landing_dir),
            pg_host=pg.host,
            pg_port=pg.port,
            pg_user=pg.user,
            pg_dbname=pg.dbname,
            phone_default_region=settings.phone_default_region,
            as_of=settings.as_of,
            previews_dir=str(settings.previews_dir),
        )

    @property
    def settings(self) -> Settings:
        return Settings(
            warehouse=self.kind,
            data_dir=Path(self.data_dir),
            landing_dir=Path(self.landing_dir),
            duckdb_path=Path(self.duckdb_path),
            postgres=PostgresTarget(
                host=self.pg_host, port=self.pg_port, user=self.pg_user,
                password=postgres_password(), dbname=self.pg_dbname,
            ),
            phone_default_region=self.phone_default_region,
            as_of=self.as_of,
            previews_dir=Path(self.previews_dir) if self.previews_dir else None,
        )

    def warehouse(self) -> Warehouse:
        return Warehouse(self.settings)


def dbt_executable() -> str:
    """The dbt installed beside this Python, so a non-activated virtualenv still finds it."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


class MailroomDbtResource(DbtCliResource):
    """dbt CLI that always sees the warehouse chosen in Settings.

    dbt runs as a subprocess and reads its profile from environment variables; passing them
    explicitly here keeps Python and dbt on the same database even when the variables were never
    exported (defaults) or were given as relative paths.
    """

    warehouse_environment: dict[str, str] = {}  # without PGPASSWORD, which is added per call

    def cli(self, args, **kwargs):
        environment = {**self.warehouse_environment, "PGPASSWORD": postgres_password()}
        saved = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        try:
            return super().cli(args, **kwargs)  # the subprocess starts (and copies the env) in here
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
