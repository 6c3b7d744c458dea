"""The CRM sync engine (reverse_etl.sync) on both warehouses: diff against the acknowledged snapshot,
the database CRM (SQLite, and PostgreSQL on the postgres run), and HubSpot through the official client
against tests/doubles/hubspot_double.py (rejections, 429s, 5xx, a crash mid-sync, update-only, dry run)."""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from dagster_project.settings import Settings, SyncSettings
from dagster_project.warehouse import Warehouse
from reverse_etl.sync import state as state_module
from reverse_etl.sync.destinations.hubspot import HubSpotCrm
from reverse_etl.sync.errors import DestinationUnavailable
from reverse_etl.sync.pacing import Pacer
from reverse_etl.sync.relation import describe
from reverse_etl.sync.run import DEFAULT_MODEL, build_destination, sync_model
from reverse_etl.throttle import Backoff

from doubles.hubspot_double import ACCESS_TOKEN, ACCOUNT_DETAILS_PATH, HubSpotDouble
from postgres_server import fresh_database

ROWS = 1000
COLUMNS = (
    "customer_id VARCHAR, email VARCHAR, last_sent_at TIMESTAMP, last_opened_at TIMESTAMP, last_clicked_at TIMESTAMP, "
    "sends_30d INTEGER, opens_30d INTEGER, clicks_30d INTEGER, sends_90d INTEGER, opens_90d INTEGER, "
    "clicks_90d INTEGER, engagement_score DOUBLE PRECISION, is_unsubscribed BOOLEAN, is_bounced BOOLEAN, "
    "best_send_hour INTEGER, last_campaign_id VARCHAR, last_variant_id VARCHAR"
)
NAMES = [c.split()[0] for c in COLUMNS.split(", ")]
TYPES = [c.split()[1] for c in COLUMNS.split(", ")]
BASE = datetime(2026, 10, 1, 9, 30, 15, 250000)


def model_rows(n: int = ROWS, bad_emails: bool = False) -> list[tuple]:
    """Deterministic contacts; with bad_emails, every 100th has no email and every 100th+50 an address
    HubSpot refuses (no top-level domain)."""
    rows = []
    for i in range(1, n + 1):
        email = f"user{i}@example.com"
        if bad_emails and i % 100 == 0:
            email = None
        elif bad_emails and i % 100 == 50:
            email = f"user{i}@invalid"
        sent = BASE + timedelta(seconds=37 * i, microseconds=i)
        rows.append((f"cust-{i:05d}", email, sent, sent + timedelta(hours=2) if i % 3 else None,
                     sent + timedelta(hours=3) if i % 4 == 0 else None, i % 9, i % 5, i % 4, i % 27, i % 15, i % 8,
                     i / 7, i % 11 == 0, i % 13 == 0, i % 24, f"camp-{i % 6}", None if i % 2 else f"var-{i % 3}"))
    return rows


def seed_model(warehouse: Warehouse, rows: list[tuple]) -> None:
    with warehouse.connect() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS marts")
        conn.execute(f"CREATE TABLE {DEFAULT_MODEL} ({COLUMNS})")
        for start in range(0, len(rows), 200):
            chunk = rows[start:start + 200]
            marks = ", ".join("(" + ", ".join("?" for _ in NAMES) + ")" for _ in chunk)
            conn.execute(f"INSERT INTO {DEFAULT_MODEL} VALUES {marks}", [v for row in chunk for v in row])


def crm_url(settings: Settings) -> str:
    """SQLite next to the DuckDB warehouse; the test's PostgreSQL database on the postgres run."""
    return (settings.postgres.url if settings.warehouse == "postgres"
            else f"sqlite:///{settings.data_dir / 'crm.sqlite'}")


def crm_rows(url: str) -> dict[str, tuple]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        table = sa.Table("crm_contacts", sa.MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            return {r.customer_id: tuple(getattr(r, n) for n in NAMES) for r in conn.execute(sa.select(table))}
    finally:
        engine.dispose()


def crm_synced_at(url: str) -> dict[str, datetime]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return dict(conn.execute(sa.text("SELECT customer_id, synced_at FROM crm_contacts")).all())
    finally:
        engine.dispose()


def quiet_pacer(max_attempts: int = 5) -> Pacer:
    """No real waiting: the waits asked for are recorded in pacer.waits."""
    return Pacer(0, max_attempts, Backoff(base_seconds=0.5, rng=random.Random(7)), sleep=lambda seconds: None)


def state(warehouse: Warehouse, sql: str, params=None):
    with warehouse.connect() as conn:
        return conn.fetchall(sql, params)


def hubspot_sync(warehouse, double, pacer=None, mode="upsert", **kwargs):
    settings = SyncSettings(destination="hubspot", mode=mode, hubspot_host=double.url, max_attempts=5)
    pacer = pacer or quiet_pacer()
    return sync_model(warehouse, settings, pacer=pacer, destination=build_destination(settings, pacer),
                      log=lambda line: None, **kwargs)


@pytest.fixture
def hubspot(monkeypatch):
    monkeypatch.setenv("MAILROOM_HUBSPOT_ACCESS_TOKEN", ACCESS_TOKEN)
    with HubSpotDouble() as double:
        yield double


def good_emails(rows) -> set[str]:
    return {r[1] for r in rows if r[1] and not r[1].endswith("@invalid")}


# --- the diff ---------------------------------------------------------------------------------------

def test_row_hashes_are_identical_on_duckdb_and_postgres(tmp_path, pg_server):
    rows = model_rows(200)
    hashes = []
    with fresh_database(pg_server) as database:
        for settings in (Settings(warehouse="duckdb", data_dir=tmp_path / "d"),
                         Settings(warehouse="postgres", data_dir=tmp_path / "p", postgres=database)):
            warehouse = Warehouse(settings)
            seed_model(warehouse, rows)
            with warehouse.connect() as conn:
                relation = describe(conn, DEFAULT_MODEL, ["customer_id"])
                hashes.append(dict(conn.fetchall(
                    f"SELECT {relation.key_sql('m')}, {relation.hash_sql(conn.kind, 'm')} FROM {DEFAULT_MODEL} AS m")))
    assert len(hashes[0]) == 200 and hashes[0] == hashes[1]
    assert len(set(hashes[0].values())) == 200


def test_every_column_counts_in_the_hash_and_null_differs_from_empty(settings):
    warehouse = Warehouse(settings)
    base = model_rows(1)[0]
    changed = [base]
    for index in range(1, len(NAMES)):  # one variant per column: the value changed, then NULL
        other = _another_value(TYPES[index], base[index])
        changed.append(base[:index] + (other,) + base[index + 1:])
        changed.append(base[:index] + (None,) + base[index + 1:])
    changed.append(base[:15] + ("",) + base[16:])  # '' vs NULL in last_campaign_id
    seed_model(warehouse, [(f"k{n}",) + row[1:] for n, row in enumerate(changed)])
    with warehouse.connect() as conn:
        relation = describe(conn, DEFAULT_MODEL, ["customer_id"])
        without_key = dataclasses.replace(relation, columns=relation.columns[1:])  # the variants' keys differ
        hashes = [h for (h,) in conn.fetchall(
            f"SELECT {without_key.hash_sql(conn.kind, 'm')} FROM {DEFAULT_MODEL} AS m")]
    distinct_rows = len({row[1:] for row in changed})
    assert len(set(hashes)) == distinct_rows > 30


def _another_value(sql_type: str, value):
    if sql_type == "VARCHAR":
        return (value or "") + "x"
    if sql_type == "INTEGER":
        return (value or 0) + 1
    if sql_type == "DOUBLE":
        return (value or 0) + 0.001  # visible at the six decimals the hash keeps
    if sql_type == "BOOLEAN":
        return not value
    return (value or BASE) + timedelta(microseconds=1)


# --- the database CRM --------------------------------------------------------------------------------

def test_database_crm_sends_all_then_nothing_then_exactly_the_changed_one_percent(settings):
    warehouse = Warehouse(settings)
    rows = model_rows()
    seed_model(warehouse, rows)
    sync = SyncSettings(database_url=crm_url(settings))

    first = sync_model(warehouse, sync, log=lambda line: None)
    assert (first.planned, first.sent, first.acknowledged, first.rejected) == (ROWS, ROWS, ROWS, 0)
    assert first.plan.due["new"] == ROWS and first.complete
    assert crm_rows(crm_url(settings)) == {r[0]: r for r in rows}

    second = sync_model(warehouse, sync, log=lambda line: None)
    assert (second.planned, second.sent, second.skipped) == (0, 0, ROWS)

    changed_keys = {f"cust-{i:05d}" for i in random.Random(3).sample(range(1, ROWS + 1), ROWS // 100)}
    keys = sorted(changed_keys)
    with warehouse.connect() as conn:
        conn.execute(f"UPDATE {DEFAULT_MODEL} SET engagement_score = engagement_score + 0.25 "
                     "WHERE customer_id = ANY(?)",
                     [keys[:4]])
        conn.execute(f"UPDATE {DEFAULT_MODEL} SET last_clicked_at = ? WHERE customer_id = ANY(?)", [BASE, keys[4:7]])
        conn.execute(f"UPDATE {DEFAULT_MODEL} SET is_unsubscribed = NOT is_unsubscribed WHERE customer_id = ANY(?)",
                     [keys[7:]])
        model_now = {r[0]: r for r in conn.fetchall(f"SELECT {', '.join(NAMES)} FROM {DEFAULT_MODEL}")}
    before = crm_synced_at(crm_url(settings))
    third = sync_model(warehouse, sync, log=lambda line: None)
    after = crm_synced_at(crm_url(settings))
    assert (third.planned, third.sent, third.acknowledged, third.skipped) == (10, 10, 10, ROWS - 10)
    assert third.plan.due == {"new": 0, "changed": 10, "retrying": 0}
    assert {key for key in after if after[key] != before[key]} == changed_keys
    assert crm_rows(crm_url(settings)) == model_now

    runs = state(warehouse, "SELECT rows_planned, rows_sent, rows_acknowledged, rows_skipped, dry_run, mode "
                            "FROM ops.sync_runs ORDER BY started_at")
    assert runs == [(ROWS, ROWS, ROWS, 0, False, "upsert"), (0, 0, 0, ROWS, False, "upsert"),
                    (10, 10, 10, ROWS - 10, False, "upsert")]
    assert state(warehouse, "SELECT count(*), count(DISTINCT sync_key) FROM ops.sync_snapshots") == [(ROWS, ROWS)]


def test_database_crm_keeps_good_rows_rejects_bad_ones_with_the_reason_and_retries_them(settings):
    warehouse = Warehouse(settings)
    rows = model_rows(bad_emails=True)
    seed_model(warehouse, rows)
    sync = SyncSettings(database_url=crm_url(settings))
    no_email = {r[0] for r in rows if r[1] is None}

    first = sync_model(warehouse, sync, log=lambda line: None)
    assert (first.acknowledged, first.rejected) == (ROWS - 10, 10)
    assert set(crm_rows(crm_url(settings))) == {r[0] for r in rows} - no_email
    rejections = state(warehouse, "SELECT sync_key, reason, attempts FROM ops.sync_rejections")
    assert {key for key, _, _ in rejections} == no_email
    assert all("email" in reason.lower() and "null" in reason.lower() and attempts == 1
               for _, reason, attempts in rejections)

    second = sync_model(warehouse, sync, log=lambda line: None)
    assert second.plan.due == {"new": 0, "changed": 0, "retrying": 10}
    assert (second.sent, second.rejected) == (10, 10)
    assert {a for (a,) in state(warehouse, "SELECT attempts FROM ops.sync_rejections")} == {2}

    with warehouse.connect() as conn:  # fixed upstream: the next run delivers them and clears the rejections
        conn.execute(f"UPDATE {DEFAULT_MODEL} SET email = customer_id || '@example.com' WHERE email IS NULL")
    third = sync_model(warehouse, sync, log=lambda line: None)
    assert (third.sent, third.acknowledged, third.rejected) == (10, 10, 0)
    assert state(warehouse, "SELECT count(*) FROM ops.sync_rejections") == [(0,)]
    assert len(crm_rows(crm_url(settings))) == ROWS


def test_database_crm_update_only_leaves_unknown_contacts_alone(settings):
    warehouse = Warehouse(settings)
    seed_model(warehouse, model_rows())
    url = crm_url(settings)
    sync_model(warehouse, SyncSettings(database_url=url), log=lambda line: None)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM crm_contacts WHERE customer_id LIKE 'cust-000%'"))  # 99 contacts
    engine.dispose()
    with warehouse.connect() as conn:
        conn.execute(f"UPDATE {DEFAULT_MODEL} SET sends_30d = sends_30d + 100")

    report = sync_model(warehouse, SyncSettings(database_url=url, mode="update_only"), log=lambda line: None)
    assert (report.planned, report.acknowledged, report.not_in_destination, report.rejected) == (ROWS, ROWS - 99, 99, 0)
    assert "901 rows but 1,000 were acknowledged" in report.target_reset  # the CRM lost rows: a full sync
    crm = crm_rows(url)
    assert len(crm) == ROWS - 99 and all(row[5] >= 100 for row in crm.values())
    assert not any(key.startswith("cust-000") for key in crm)
    # Skipped, not rejected, and still due: they are looked up again next run.
    assert state(warehouse, "SELECT count(*) FROM ops.sync_rejections") == [(0,)]
    again = sync_model(warehouse, SyncSettings(database_url=url, mode="update_only"), log=lambda line: None)
    assert again.planned == again.not_in_destination == 99 and again.target_reset is None


def test_dry_run_shows_the_plan_and_writes_nothing(settings, hubspot):
    warehouse = Warehouse(settings)
    seed_model(warehouse, model_rows())
    sync = SyncSettings(database_url=crm_url(settings))
    lines = []
    plan = sync_model(warehouse, sync, dry_run=True, log=lines.append)
    assert plan.dry_run and plan.plan.due == {"new": ROWS, "changed": 0, "retrying": 0}
    assert plan.plan.samples["new"] == [f"cust-{i:05d}" for i in range(1, 6)] and plan.sent == 0
    with warehouse.connect() as conn:
        assert not conn.table_exists("ops", "sync_snapshots") and not conn.table_exists("ops", "sync_runs")
    if settings.warehouse == "duckdb":
        assert not (settings.data_dir / "crm.sqlite").exists()

    sync_model(warehouse, sync, log=lambda line: None)
    with warehouse.connect() as conn:
        conn.execute(f"UPDATE {DEFAULT_MODEL} SET best_send_hour = 23 "
                     "WHERE customer_id IN ('cust-00002', 'cust-00004')")
        conn.execute(f"INSERT INTO {DEFAULT_MODEL} (customer_id, email) VALUES ('cust-99999', 'new@example.com')")
        conn.execute(f"DELETE FROM {DEFAULT_MODEL} WHERE customer_id = 'cust-00010'")
    snapshot = state(warehouse, "SELECT sync_key, row_hash FROM ops.sync_snapshots ORDER BY 1")
    plan = hubspot_sync(warehouse, hubspot, dry_run=True)  # another destination: everything is new to it
    assert plan.plan.due["new"] == ROWS
    assert [r.path for r in hubspot.requests] == [ACCOUNT_DETAILS_PATH]  # which portal; nothing written
    plan = sync_model(warehouse, sync, dry_run=True, log=lines.append)
    assert plan.plan.due == {"new": 1, "changed": 2, "retrying": 0} and plan.plan.removed_from_model == 1
    assert plan.plan.samples == {"new": ["cust-99999"], "changed": ["cust-00002", "cust-00004"]}
    assert any("1 new" in line and "2 changed" in line for line in lines)
    assert state(warehouse, "SELECT sync_key, row_hash FROM ops.sync_snapshots ORDER BY 1") == snapshot
    assert state(warehouse, "SELECT count(*) FROM ops.sync_runs") == [(1,)]


# --- HubSpot -----------------------------------------------------------------------------------------

def test_hubspot_acknowledges_every_good_row_and_stores_every_bad_one_through_429s(settings, hubspot):
    warehouse = Warehouse(settings)
    rows = model_rows(bad_emails=True)
    seed_model(warehouse, rows)
    hubspot.reject_ids = {"user7@example.com"}  # valid-looking, refused by HubSpot anyway
    hubspot.script(["429", "ok", "503", "drop", "429", "ok", "500"])
    pacer = quiet_pacer()

    report = hubspot_sync(warehouse, hubspot, pacer=pacer)
    good = good_emails(rows) - {"user7@example.com"}
    assert set(hubspot.contacts) == good
    assert (report.acknowledged, report.rejected, report.failed) == (len(good), ROWS - len(good), 0)
    assert report.retries == 5  # the 429s, the 5xx and the dropped connection were each retried
    assert pacer.waits[0] == 10.0  # HubSpot's window from X-HubSpot-RateLimit-Interval-Milliseconds
    assert all(len(r.ids) <= 100 for r in hubspot.requests)

    contact = hubspot.contacts["user12@example.com"]
    expected = dict(zip(NAMES, rows[11]))
    assert contact.properties["mailroom_customer_id"] == "cust-00012"
    assert contact.properties["mailroom_last_sent_at"] == \
        expected["last_sent_at"].isoformat(timespec="milliseconds") + "Z"
    assert contact.properties["mailroom_last_clicked_at"] == \
        (expected["last_clicked_at"].isoformat(timespec="milliseconds") + "Z")
    assert contact.properties["mailroom_last_opened_at"] == ""  # NULL clears the property
    assert contact.properties["mailroom_engagement_score"] == f"{12 / 7:.6f}"
    assert contact.properties["mailroom_is_unsubscribed"] == "false" and contact.properties["mailroom_sends_30d"] == "3"

    reasons = dict(state(warehouse, "SELECT sync_key, reason FROM ops.sync_rejections"))
    assert set(reasons) == {r[0] for r in rows if r[1] not in good}
    assert "INVALID_EMAIL" in reasons["cust-00050"] and "user50@invalid" in reasons["cust-00050"]
    assert "INVALID_EMAIL" in reasons["cust-00007"]
    assert reasons["cust-00100"].startswith("no email")
    assert state(warehouse, "SELECT count(*) FROM ops.sync_snapshots") == [(len(good),)]

    sent_before = len(hubspot.requests)
    again = hubspot_sync(warehouse, hubspot)
    assert again.plan.due == {"new": 0, "changed": 0, "retrying": ROWS - len(good)}
    assert again.rejected == ROWS - len(good) and again.acknowledged == 0
    resent = {i for r in hubspot.requests[sent_before:] for i in r.ids}
    assert resent == {r[1] for r in rows if r[1] and r[1] not in good}  # only the bad rows went again
    assert {a for (a,) in state(warehouse, "SELECT attempts FROM ops.sync_rejections")} == {2}
    assert all(c.upserts == 1 for c in hubspot.contacts.values())


def test_hubspot_whole_batch_400_is_split_until_the_bad_rows_are_alone(settings, hubspot):
    warehouse = Warehouse(settings)
    rows = model_rows(300, bad_emails=True)
    seed_model(warehouse, rows)
    hubspot.invalid_inputs = "400"
    hubspot.retry_after = "3"
    hubspot.script(["429"])
    pacer = quiet_pacer()
    report = hubspot_sync(warehouse, hubspot, pacer=pacer)
    assert set(hubspot.contacts) == good_emails(rows)
    assert pacer.waits[0] == 3.0  # Retry-After wins over the rate-limit headers
    reasons = dict(state(warehouse, "SELECT sync_key, reason FROM ops.sync_rejections"))
    assert set(reasons) == {r[0] for r in rows if r[1] is None or r[1].endswith("@invalid")}
    assert all("400 VALIDATION_ERROR" in reasons[f"cust-{i:05d}"] for i in (50, 150, 250))
    assert report.acknowledged == len(good_emails(rows))


def test_hubspot_batch_that_keeps_failing_is_left_for_the_next_run(settings, hubspot):
    warehouse = Warehouse(settings)
    rows = model_rows(500)
    seed_model(warehouse, rows)
    hubspot.script(["503"] * 5)  # the first batch fails all of its 5 attempts
    report = hubspot_sync(warehouse, hubspot)
    assert (report.batches_failed, report.failed, report.acknowledged) == (1, 100, 400)
    assert not report.complete
    assert state(warehouse, "SELECT rows_failed, batches_failed FROM ops.sync_runs") == [(100, 1)]
    before = len(hubspot.requests)
    again = hubspot_sync(warehouse, hubspot)
    assert (again.planned, again.acknowledged) == (100, 100) and again.complete
    assert {i for r in hubspot.requests[before:] for i in r.ids} == {f"user{i}@example.com" for i in range(1, 101)}
    assert set(hubspot.contacts) == good_emails(rows)


def test_hubspot_refused_token_stops_the_run_and_records_it(settings, hubspot):
    warehouse = Warehouse(settings)
    seed_model(warehouse, model_rows(150))
    hubspot.access_token = "pat-na1-another"
    with pytest.raises(DestinationUnavailable, match="MAILROOM_HUBSPOT_ACCESS_TOKEN"):
        hubspot_sync(warehouse, hubspot)
    # Refused when asked which portal it belongs to, before anything was planned or sent.
    assert [(r.path, r.status) for r in hubspot.requests] == [(ACCOUNT_DETAILS_PATH, 401)]
    assert hubspot.contacts == {}
    (error, destination), = state(warehouse, "SELECT error, destination FROM ops.sync_runs")
    assert "401" in error and destination == "hubspot"
    assert state(warehouse, "SELECT count(*) FROM ops.sync_snapshots") == [(0,)]


class CrashAfter:
    """Delegates to a destination and dies right after the CRM accepted the n-th batch (before the
    engine can record it): the worst moment for a crash."""

    def __init__(self, inner, batches: int):
        self.inner, self.batches, self.written = inner, batches, 0
        self.name, self.max_batch = inner.name, inner.max_batch

    def identity(self):
        return self.inner.identity()

    def rows_held(self):
        return self.inner.rows_held()

    def prepare(self, relation):
        self.inner.prepare(relation)

    def existing(self, rows):
        return self.inner.existing(rows)

    def write(self, rows, mode):
        result = self.inner.write(rows, mode)
        self.written += 1
        if self.written == self.batches:
            raise KeyboardInterrupt("simulated crash after HubSpot accepted the batch")
        return result

    def close(self):
        self.inner.close()


def test_crash_mid_sync_reruns_without_loss_or_duplicates(settings, hubspot):
    warehouse = Warehouse(settings)
    rows = model_rows()
    seed_model(warehouse, rows)
    pacer = quiet_pacer()
    crashing = CrashAfter(HubSpotCrm(hubspot.url, lambda: ACCESS_TOKEN, pacer), batches=4)
    with pytest.raises(KeyboardInterrupt):
        sync_model(warehouse, SyncSettings(destination="hubspot"), destination=crashing, pacer=pacer,
                   log=lambda line: None)
    assert len(hubspot.contacts) == 400
    assert state(warehouse, "SELECT count(*) FROM ops.sync_snapshots") == [(300,)]  # batch 4 never recorded
    assert "interrupted" in state(warehouse, "SELECT error FROM ops.sync_runs")[0][0]

    report = hubspot_sync(warehouse, hubspot)
    assert (report.planned, report.acknowledged) == (700, 700)
    emails = {r[1] for r in rows}
    assert set(hubspot.contacts) == emails  # nothing lost, one contact per email
    upserts = {email: c.upserts for email, c in hubspot.contacts.items()}
    assert {e for e, n in upserts.items() if n == 2} == {f"user{i}@example.com" for i in range(301, 401)}
    assert set(upserts.values()) == {1, 2}
    assert all(hubspot.contacts[r[1]].properties["mailroom_customer_id"] == r[0] for r in rows)
    with warehouse.connect() as conn:
        relation = describe(conn, DEFAULT_MODEL, ["customer_id"])
        current = dict(conn.fetchall(f"SELECT {relation.key_sql('m')}, {relation.hash_sql(conn.kind, 'm')} "
                                     f"FROM {DEFAULT_MODEL} AS m"))
        assert dict(conn.fetchall("SELECT sync_key, row_hash FROM ops.sync_snapshots")) == current
    assert hubspot_sync(warehouse, hubspot).sent == 0


def test_hubspot_update_only_skips_contacts_hubspot_does_not_have(settings, hubspot):
    warehouse = Warehouse(settings)
    rows = model_rows(400)
    seed_model(warehouse, rows)
    known = {f"user{i}@example.com" for i in range(1, 401, 4)}
    for email in known:
        hubspot.add_contact(email.upper() if email.endswith("1@example.com") else email)
    report = hubspot_sync(warehouse, hubspot, mode="update_only")
    assert (report.acknowledged, report.not_in_destination, report.rejected) == (100, 300, 0)
    assert set(hubspot.contacts) == known  # nobody created
    assert all(c.properties.get("mailroom_customer_id") for c in hubspot.contacts.values())
    reads = [r for r in hubspot.requests if r.path.endswith("/batch/read")]
    assert len(reads) == 4 and all(r.status == 207 for r in reads)
    assert state(warehouse, "SELECT count(*) FROM ops.sync_snapshots") == [(100,)]
    assert state(warehouse, "SELECT count(*) FROM ops.sync_rejections") == [(0,)]


def test_hubspot_double_refuses_more_than_100_inputs_like_hubspot(hubspot):
    import hubspot as hubspot_client
    from hubspot.crm.contacts import (
        ApiException,
        BatchInputSimplePublicObjectBatchInputUpsert,
        SimplePublicObjectBatchInputUpsert,
    )

    api = hubspot_client.Client.create(access_token=ACCESS_TOKEN, host=hubspot.url).crm.contacts.batch_api
    inputs = [SimplePublicObjectBatchInputUpsert(id_property="email", id=f"u{i}@example.com", properties={})
              for i in range(101)]
    with pytest.raises(ApiException) as refused:
        api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs))
    assert refused.value.status == 400 and "VALIDATION_ERROR" in refused.value.body and hubspot.contacts == {}
    answer = api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs[:100]))
    assert len(answer.results) == 100 and all(r.new for r in answer.results) and len(hubspot.contacts) == 100


# --- the target: sync state per database table or HubSpot portal -----------------------------------

def drop_or_empty(url: str, how: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE crm_contacts" if how == "drop" else "DELETE FROM crm_contacts"))
    engine.dispose()


@pytest.mark.parametrize("how", ["drop", "empty"])
def test_a_dropped_or_emptied_crm_table_gets_every_row_again(settings, how):
    warehouse = Warehouse(settings)
    rows = model_rows(300)
    seed_model(warehouse, rows)
    sync = SyncSettings(database_url=crm_url(settings))
    assert sync_model(warehouse, sync, log=lambda line: None).acknowledged == 300
    drop_or_empty(crm_url(settings), how)

    lines = []
    report = sync_model(warehouse, sync, log=lines.append)
    assert (report.planned, report.acknowledged) == (300, 300) and report.plan.due["new"] == 300
    assert "holds 0 rows but 300 were acknowledged" in report.target_reset
    assert any("full sync" in line for line in lines)
    assert crm_rows(crm_url(settings)) == {r[0]: r for r in rows}
    again = sync_model(warehouse, sync, log=lambda line: None)
    assert again.planned == 0 and again.target_reset is None


def test_a_crm_table_holding_more_rows_than_acknowledged_is_not_reset(settings):
    warehouse = Warehouse(settings)
    seed_model(warehouse, model_rows(50))
    sync = SyncSettings(database_url=crm_url(settings))
    sync_model(warehouse, sync, log=lambda line: None)
    engine = sa.create_engine(crm_url(settings).replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:  # contacts someone else wrote; ours are all still there
        conn.execute(sa.text("INSERT INTO crm_contacts (customer_id, email, synced_at) "
                             "VALUES ('other-1', 'o@example.com', CURRENT_TIMESTAMP)"))
    engine.dispose()
    report = sync_model(warehouse, sync, log=lambda line: None)
    assert (report.planned, report.target_reset) == (0, None)


def test_another_table_or_database_starts_a_full_sync_and_each_keeps_its_own_snapshot(settings, tmp_path):
    warehouse = Warehouse(settings)
    rows = model_rows(200)
    seed_model(warehouse, rows)
    first_file, second_file = f"sqlite:///{tmp_path / 'crm-a.sqlite'}", f"sqlite:///{tmp_path / 'crm-b.sqlite'}"
    targets = [SyncSettings(database_url=first_file), SyncSettings(database_url=first_file, database_table="people"),
               SyncSettings(database_url=second_file)]
    for target in targets:
        report = sync_model(warehouse, target, log=lambda line: None)
        assert (report.planned, report.acknowledged, report.target_reset) == (200, 200, None)
    for target in targets:  # back to each one: nothing is due
        assert sync_model(warehouse, target, log=lambda line: None).planned == 0
    identities = [f"database:sqlite:///{tmp_path / 'crm-a.sqlite'}#crm_contacts",
                  f"database:sqlite:///{tmp_path / 'crm-a.sqlite'}#people",
                  f"database:sqlite:///{tmp_path / 'crm-b.sqlite'}#crm_contacts"]
    snapshots = dict(state(warehouse, "SELECT destination, count(*) FROM ops.sync_snapshots GROUP BY 1"))
    assert snapshots == dict.fromkeys(identities, 200)
    runs = [d for (d,) in state(warehouse, "SELECT destination FROM ops.sync_runs ORDER BY started_at")]
    assert runs == identities * 2


def test_database_identity_names_the_table_never_the_credentials():
    crm = build_destination(SyncSettings(database_url="postgresql+psycopg://crm:s3cret@DB.internal:6543/sales",
                                         database_table="crm.contacts"), quiet_pacer())
    assert crm.identity() == "database:postgresql://db.internal:6543/sales#crm.contacts"


def test_snapshots_from_before_targets_were_identified_do_not_count(settings):
    """Rows acknowledged under the bare kind ('database') could be any table: the identified target gets
    a full sync, and the old rows are left as they were."""
    warehouse = Warehouse(settings)
    seed_model(warehouse, model_rows(20))
    with warehouse.connect() as conn:
        state_module.ensure_state(conn)
        relation = describe(conn, DEFAULT_MODEL, ["customer_id"])
        hashes = dict(conn.fetchall(f"SELECT {relation.key_sql('m')}, {relation.hash_sql(conn.kind, 'm')} "
                                    f"FROM {DEFAULT_MODEL} AS m"))
        state_module.acknowledge(conn, "database", DEFAULT_MODEL, hashes, BASE)
    lines = []
    report = sync_model(warehouse, SyncSettings(database_url=crm_url(settings)), log=lines.append)
    assert report.planned == 20 and any("20 rows acknowledged before targets were identified" in line for line in lines)
    assert len(crm_rows(crm_url(settings))) == 20
    assert state(warehouse, "SELECT count(*) FROM ops.sync_snapshots WHERE destination = 'database'") == [(20,)]


def test_another_hubspot_portal_starts_a_full_sync(settings, hubspot):
    warehouse = Warehouse(settings)
    rows = model_rows(150)
    seed_model(warehouse, rows)
    assert hubspot_sync(warehouse, hubspot).acknowledged == 150
    assert hubspot_sync(warehouse, hubspot).planned == 0

    hubspot.portal_id, hubspot.contacts = 7_000_001, {}  # the token now belongs to another, empty portal
    report = hubspot_sync(warehouse, hubspot)
    assert (report.planned, report.acknowledged, report.target) == (150, 150, "hubspot:portal:7000001")
    assert set(hubspot.contacts) == {r[1] for r in rows}
    assert dict(state(warehouse, "SELECT destination, count(*) FROM ops.sync_snapshots GROUP BY 1")) == {
        "hubspot:portal:62515": 150, "hubspot:portal:7000001": 150}


def test_a_token_that_may_not_read_account_details_is_identified_by_its_hash(settings, hubspot):
    warehouse = Warehouse(settings)
    seed_model(warehouse, model_rows(30))
    hubspot.account_details_scope = False
    first = hubspot_sync(warehouse, hubspot)
    assert first.acknowledged == 30 and first.target.startswith("hubspot:token:")
    assert ACCESS_TOKEN not in first.target and ACCESS_TOKEN[-8:] not in first.target
    assert hubspot_sync(warehouse, hubspot).planned == 0  # the same token: the same target

    hubspot.access_token = "pat-na1-rotated"
    rotated = SyncSettings(destination="hubspot", hubspot_host=hubspot.url)
    pacer = quiet_pacer()
    report = sync_model(warehouse, rotated, pacer=pacer, log=lambda line: None, destination=HubSpotCrm(
        hubspot.url, lambda: "pat-na1-rotated", pacer))
    assert report.planned == 30 and report.target != first.target  # one full sync, never a missed one


def test_account_details_are_retried_and_a_portal_that_stays_unknown_stops_the_run(settings, hubspot):
    warehouse = Warehouse(settings)
    seed_model(warehouse, model_rows(10))
    hubspot.script_account_details(["503", "429", "drop"])
    pacer = quiet_pacer()
    assert hubspot_sync(warehouse, hubspot, pacer=pacer).acknowledged == 10
    assert pacer.retries == 3

    hubspot.script_account_details(["503"] * 5)
    with warehouse.connect() as conn:
        conn.execute(f"UPDATE {DEFAULT_MODEL} SET sends_30d = 99")
    with pytest.raises(DestinationUnavailable, match="which HubSpot portal"):
        hubspot_sync(warehouse, hubspot)
    (error,), = state(warehouse, "SELECT error FROM ops.sync_runs ORDER BY started_at DESC LIMIT 1")
    assert "which HubSpot portal" in error
    assert all(c.properties["mailroom_sends_30d"] != "99" for c in hubspot.contacts.values())


def test_the_crm_contacts_asset_syncs_with_the_password_kept_out_of_its_config(mailroom_env, pg_server, monkeypatch,
                                                                                prepared_dbt):
    import dagster as dg

    from dagster_project.defs.engagement.crm_sync import build_crm_contacts_asset
    from dagster_project.defs.engagement.resource import CrmSyncResource
    from dagster_project.resources import WarehouseResource
    from dagster_project.settings import load_sync_settings

    seed_model(Warehouse(mailroom_env), model_rows(40))
    with fresh_database(pg_server, prefix="mailroom_crm") as crm_database:
        target = f"{crm_database.host}:{crm_database.port}/{crm_database.dbname}"
        monkeypatch.setenv("MAILROOM_CRM_DATABASE_URL", f"postgresql://{crm_database.user}:pw-s3cret@{target}")
        crm = CrmSyncResource.from_settings(load_sync_settings())
        assert "pw-s3cret" not in repr(crm.model_dump())
        result = dg.materialize([build_crm_contacts_asset()], resources={
            "warehouse": WarehouseResource.from_settings(mailroom_env), "crm": crm})
        assert result.success
        [event] = result.get_asset_materialization_events()
        metadata = {name: entry.value for name, entry in event.materialization.metadata.items()}
        assert metadata["target"] == f"database:postgresql://{target}#crm_contacts"
        assert metadata["rows_acknowledged"] == 40 and "s3cret" not in repr(metadata)
        assert len(crm_rows(crm_database.url)) == 40
