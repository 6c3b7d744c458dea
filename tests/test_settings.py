from pathlib import Path

import pytest

from dagster_project.settings import SettingsError, load_settings, load_sync_settings, parse_postgres_url


def test_defaults_put_everything_under_the_data_dir(tmp_path):
    settings = load_settings({"MAILROOM_DATA_DIR": str(tmp_path)})
    assert settings.warehouse == "duckdb"
    assert settings.landing_dir == tmp_path / "landing"
    assert settings.duckdb_path == tmp_path / "warehouse.duckdb"


def test_explicit_paths_win_and_relative_paths_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        {"MAILROOM_DATA_DIR": "d", "MAILROOM_LANDING_DIR": "in", "MAILROOM_DUCKDB_PATH": "w.duckdb"}
    )
    assert settings.landing_dir == tmp_path / "in"
    assert settings.duckdb_path == tmp_path / "w.duckdb"
    assert Path(settings.dbt_environment()["MAILROOM_DUCKDB_PATH"]).is_absolute()


def test_postgres_url_beats_pg_variables_and_decodes_credentials():
    settings = load_settings(
        {
            "MAILROOM_WAREHOUSE": "POSTGRES",
            "MAILROOM_PG_URL": "postgresql+psycopg://mail%40room:p%3Ass@db.internal:6543/marketing",
            "PGHOST": "ignored",
        }
    )
    assert settings.warehouse == "postgres"
    pg = settings.postgres
    assert (pg.host, pg.port, pg.user, pg.password, pg.dbname) == (
        "db.internal", 6543, "mail@room", "p:ss", "marketing"
    )
    environment = settings.dbt_environment()
    assert environment["PGPASSWORD"] == "p:ss" and environment["MAILROOM_PG_URL"] == ""


def test_pg_variables_apply_without_a_url():
    pg = load_settings({"PGHOST": "h", "PGPORT": "7000", "PGUSER": "u", "PGDATABASE": "d"}).postgres
    assert (pg.host, pg.port, pg.user, pg.dbname) == ("h", 7000, "u", "d")


@pytest.mark.parametrize(
    "environ, named",
    [
        ({"MAILROOM_WAREHOUSE": "snowflake"}, "MAILROOM_WAREHOUSE"),
        ({"MAILROOM_PG_URL": "mysql://x@y/z"}, "MAILROOM_PG_URL"),
        ({"PGPORT": "five"}, "PGPORT"),
    ],
)
def test_bad_configuration_names_the_variable(environ, named):
    with pytest.raises(SettingsError, match=named):
        load_settings(environ)


def test_url_round_trip():
    url = "postgresql://postgres@127.0.0.1:5432/mailroom"
    assert parse_postgres_url(url).url == url


def test_the_postgres_password_never_sits_in_resource_config(monkeypatch):
    from dagster_project.resources import WarehouseResource

    monkeypatch.setenv("MAILROOM_PG_URL", "postgresql://mailroom:s3cret%21@db:5432/marketing")
    settings = load_settings()
    resource = WarehouseResource.from_settings(settings)
    assert "s3cret" not in repr(resource.model_dump())
    assert resource.settings.postgres.password == "s3cret!"  # read when a connection is made


def test_crm_batches_default_to_the_most_each_crm_takes_and_refuse_more():
    assert load_sync_settings({}).batch_size == 0  # the Syncer then takes the destination's max_batch
    assert load_sync_settings({"MAILROOM_CRM_BATCH_SIZE": "500"}).batch_size == 500
    hubspot = {"MAILROOM_CRM_DESTINATION": "hubspot", "MAILROOM_HUBSPOT_ACCESS_TOKEN": "pat-x"}
    with pytest.raises(SettingsError, match=r"MAILROOM_CRM_BATCH_SIZE=500 must be between 1 and 100"):
        load_sync_settings({**hubspot, "MAILROOM_CRM_BATCH_SIZE": "500"})
    with pytest.raises(SettingsError, match=r"MAILROOM_CRM_BATCH_SIZE=5000 must be between 1 and 1000"):
        load_sync_settings({"MAILROOM_CRM_BATCH_SIZE": "5000"})
