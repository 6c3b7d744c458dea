"""Shared fixtures: sample data, a DuckDB warehouse in a temp dir, a fresh PostgreSQL database per
test, and the dbt manifest prepared once per session."""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import NamedTuple

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dagster_project.settings import Settings  # noqa: E402
from dagster_project.warehouse import Warehouse  # noqa: E402

from postgres_server import fresh_database, postgres_server  # noqa: E402

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


def pytest_collection_modifyitems(items) -> None:
    """The `postgres` marker on every test that needs the server (`-m "not postgres"` runs the rest):
    its warehouse is PostgreSQL, or it asks for the server itself. Modules that reach it through the
    session's built templates mark themselves."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if (callspec and callspec.params.get("warehouse_kind") == "postgres") or "pg_server" in item.fixturenames:
            item.add_marker(pytest.mark.postgres)
    # The longest modules first (a stable sort keeps the rest in order): `--dist loadfile` hands out
    # whole modules in this order, so they start early and the two workers end together instead of one
    # carrying a long tail alone. Longest: slow as a whole (the demo builds), then any slow scenario.
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (not _slow_as_a_whole(item.module), item.module.__name__ not in slow_modules))


def _slow_as_a_whole(module) -> bool:
    marks = getattr(module, "pytestmark", [])
    return any(mark.name == "slow" for mark in (marks if isinstance(marks, list) else [marks]))


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


class BuiltWarehouse(NamedTuple):
    settings: Settings  # this test's own copy, its environment set
    # What built it, to read, never to rerun: the daily run's dg.ExecuteInProcessResult, or for
    # "campaigns" the list [daily run, *batch campaign runs].
    result: object


def _copy_warehouse(template: Settings, data_dir: Path, request, cleanup: ExitStack) -> Settings:
    """A copy of `template`: its data directory, and its DuckDB file or PostgreSQL database."""
    shutil.copytree(template.data_dir, data_dir)
    if template.warehouse == "duckdb":
        return Settings(warehouse="duckdb", data_dir=data_dir, as_of=template.as_of)
    server = request.getfixturevalue("pg_server")
    postgres = cleanup.enter_context(fresh_database(server, template=template.postgres.dbname))
    return Settings(warehouse="postgres", data_dir=data_dir, postgres=postgres, as_of=template.as_of)


@pytest.fixture(scope="session")
def built_templates(tmp_path_factory, sample_landing, prepared_dbt, request):
    """Per engine and stage, the sample data built once per test session (a daily run costs half a
    minute or more), for `built_warehouse` to copy for each test. Stages: "daily" (ingest, dbt, gates,
    trigger campaigns) and "campaigns" (then every batch campaign's run)."""
    import dagster as dg

    from dagster_project.pipeline import run_batch_campaigns

    from pipeline_helpers import run_daily_pipeline, with_landing

    built: dict[tuple[str, str], BuiltWarehouse] = {}
    cleanup = ExitStack()
    request.addfinalizer(cleanup.close)

    def build(kind: str, stage: str = "daily") -> BuiltWarehouse:
        if (kind, stage) in built:
            return built[(kind, stage)]
        data_dir = tmp_path_factory.mktemp(f"built-{kind}-{stage}") / "data"
        if stage == "daily":
            postgres = {}
            if kind == "postgres":
                server = request.getfixturevalue("pg_server")
                postgres = {"postgres": cleanup.enter_context(fresh_database(server, "mailroom_template"))}
            settings = with_landing(Settings(warehouse=kind, data_dir=data_dir, as_of=SAMPLE_AS_OF.isoformat(),
                                             **postgres), sample_landing)
        else:
            daily = build(kind, "daily")
            settings = _copy_warehouse(daily.settings, data_dir, request, cleanup)
        with pytest.MonkeyPatch.context() as patch:
            for name, value in settings_environment(settings).items():
                patch.setenv(name, value)
            if stage == "daily":
                result = run_daily_pipeline()
                assert result.success, "the daily pipeline failed on the sample data"
            else:
                batch = run_batch_campaigns(dg.DagsterInstance.ephemeral())
                assert batch and all(run.success for run in batch), "a batch campaign failed on the sample data"
                result = [daily.result, *batch]
        built[(kind, stage)] = BuiltWarehouse(settings, result)
        return built[(kind, stage)]

    return build


def _built_warehouse(stage: str, warehouse_kind, built_templates, tmp_path, monkeypatch, request) -> BuiltWarehouse:
    template = built_templates(warehouse_kind, stage)
    cleanup = ExitStack()
    request.addfinalizer(cleanup.close)
    settings = _copy_warehouse(template.settings, tmp_path / "data", request, cleanup)
    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)
    return BuiltWarehouse(settings, template.result)


@pytest.fixture
def built_warehouse(warehouse_kind, built_templates, tmp_path, monkeypatch, request) -> BuiltWarehouse:
    """A warehouse of `warehouse_kind` the daily pipeline has built from the sample data, this test's
    own to change (a copy of the session's: data directory and DuckDB file, or a PostgreSQL database
    created from the template), with the environment pointing at it."""
    return _built_warehouse("daily", warehouse_kind, built_templates, tmp_path, monkeypatch, request)


@pytest.fixture
def campaigned_warehouse(warehouse_kind, built_templates, tmp_path, monkeypatch, request) -> BuiltWarehouse:
    """Like built_warehouse, after every batch campaign has run too (content, messages, sends)."""
    return _built_warehouse("campaigns", warehouse_kind, built_templates, tmp_path, monkeypatch, request)
