"""Ingest on both warehouses: idempotent, incremental, and nothing lost (every dirty row is kept in
raw.quarantine with its reason)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.sources import SOURCES

from conftest import SAMPLE_AS_OF

NOW = datetime.combine(SAMPLE_AS_OF, datetime.min.time(), tzinfo=timezone.utc)

REASON_FOR_KIND = {
    "malformed_json": ("malformed JSON", "malformed CSV row"),
    "missing_field": ("missing required field",),
    "wrong_type": ("wrong type",),
    "invalid_email": ("invalid email",),
    "duplicate_key": ("duplicate key",),
    "future_timestamp": ("timestamp in the future",),
    "invalid_value": ("invalid value",),
}


def ingest_all(warehouse, landing: Path) -> dict:
    return {name: ingest_source(warehouse, source, landing, now=NOW) for name, source in SOURCES.items()}


def raw_counts(warehouse) -> dict[str, int]:
    tables = [s.qualified_table for s in SOURCES.values()] + ["raw.quarantine", "raw.ingested_files"]
    with warehouse.connect() as conn:
        return {table: conn.scalar(f"SELECT count(*) FROM {table}") for table in tables}


def jsonl_lines(landing: Path, source: str) -> int:
    import gzip

    total = 0
    for path in (landing / source).iterdir():
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as handle:
            total += sum(1 for line in handle if line.strip())
    return total


def test_sample_data_loads_and_reingest_changes_nothing(warehouse, sample_landing):
    first = ingest_all(warehouse, sample_landing)
    counts = raw_counts(warehouse)
    for name, report in first.items():
        # Nothing lost: every record read is either in its raw table or in the quarantine.
        assert report.rows_read == report.rows_loaded + report.rows_quarantined > 0
        assert counts[SOURCES[name].qualified_table] == report.rows_loaded
    for name in ("cdp", "consent", "esp"):
        assert first[name].rows_read == jsonl_lines(sample_landing, name)
    assert counts["raw.quarantine"] == sum(r.rows_quarantined for r in first.values())

    second = ingest_all(warehouse, sample_landing)
    assert raw_counts(warehouse) == counts
    assert all(report.rows_loaded == 0 and report.files_skipped > 0 for report in second.values())


def test_every_dirty_row_is_quarantined_with_its_reason(warehouse, sample_landing):
    ingest_all(warehouse, sample_landing)
    expected = [json.loads(line) for line in (sample_landing / "truth" / "dirty_rows.jsonl").read_text().splitlines()]
    with warehouse.connect() as conn:
        quarantined = {
            (source, file, int(line)): (reason, payload)
            for source, file, line, reason, payload in conn.fetchall(
                "SELECT source, file, line, reason, payload FROM raw.quarantine"
            )
        }
    assert {row["kind"] for row in expected} >= set(REASON_FOR_KIND) - {"invalid_value"}
    assert set(quarantined) == {(row["source"], row["file"], row["line"]) for row in expected}
    for row in expected:
        reason, payload = quarantined[(row["source"], row["file"], row["line"])]
        assert reason.startswith(REASON_FOR_KIND[row["kind"]]), (row, reason)
        assert payload, "the raw payload is kept so the row can be repaired and replayed"


def test_new_files_load_incrementally_and_overlaps_dedupe(warehouse, sample_landing, tmp_path):
    landing = tmp_path / "landing"
    (landing / "cdp").mkdir(parents=True)
    first_file = sorted((sample_landing / "cdp").iterdir())[0]
    shutil.copy(first_file, landing / "cdp" / "day-1.jsonl")
    report = ingest_source(warehouse, SOURCES["cdp"], landing, now=NOW)
    loaded = report.rows_loaded
    assert loaded > 0

    # A re-delivery of the same events under a new name (an overlapping export) adds no event.
    shutil.copy(first_file, landing / "cdp" / "day-2.jsonl")
    again = ingest_source(warehouse, SOURCES["cdp"], landing, now=NOW)
    assert again.files_skipped == 1 and again.rows_loaded == 0
    # Every event already loaded is a duplicate now, besides the file's own repeated lines.
    assert again.reasons["duplicate key"] == loaded + report.reasons["duplicate key"]

    new_event = {"messageId": "brand-new", "type": "track", "event": "Product Viewed", "anonymousId": "a",
                 "timestamp": "2026-10-30T10:00:00Z"}
    (landing / "cdp" / "day-3.jsonl").write_text(json.dumps(new_event) + "\n")
    third = ingest_source(warehouse, SOURCES["cdp"], landing, now=NOW)
    assert third.files_skipped == 2 and third.rows_loaded == 1
    with warehouse.connect() as conn:
        assert conn.scalar("SELECT count(*) FROM raw.cdp_events") == loaded + 1
        assert conn.scalar("SELECT count(*) FROM raw.ingested_files") == 3


def test_gzipped_jsonl_is_read_like_plain(warehouse, tmp_path):
    import gzip

    landing = tmp_path / "landing"
    (landing / "esp").mkdir(parents=True)
    event = {"sg_event_id": "e1", "event": "delivered", "email": "a@b.co", "timestamp": 1761955200}
    with gzip.open(landing / "esp" / "events.jsonl.gz", "wt") as handle:
        handle.write(json.dumps(event) + "\n")
    assert ingest_source(warehouse, SOURCES["esp"], landing, now=NOW).rows_loaded == 1


def test_a_csv_without_required_columns_is_rejected_clearly_and_loads_once_fixed(warehouse, tmp_path):
    landing = tmp_path / "landing"
    (landing / "crm").mkdir(parents=True)
    (landing / "crm" / "contacts.csv").write_text("id,email\n1,a@b.co\n")
    report = ingest_source(warehouse, SOURCES["crm"], landing, now=NOW)
    assert [f.file for f in report.files_rejected] == ["crm/contacts.csv"]
    assert "hs_object_id" in report.files_rejected[0].error
    with warehouse.connect() as conn:
        assert conn.fetchall("SELECT status, rows_loaded FROM raw.ingested_files") == [("rejected", 0)]
    # Not tried again while it is unchanged.
    assert ingest_source(warehouse, SOURCES["crm"], landing, now=NOW).files_skipped == 1
    # After the export is fixed, the same file name loads.
    (landing / "crm" / "contacts.csv").write_text(
        "hs_object_id,email,createdate,lastmodifieddate\n1,a@b.co,2026-01-01,2026-01-02\n"
    )
    assert ingest_source(warehouse, SOURCES["crm"], landing, now=NOW).rows_loaded == 1


def test_parallel_parsing_loads_exactly_what_serial_parsing_loads(sample_landing, tmp_path, monkeypatch):
    from dagster_project.ingest import loader
    from dagster_project.settings import Settings
    from dagster_project.warehouse import Warehouse

    serial = Warehouse(Settings(data_dir=tmp_path / "serial"))
    ingest_source(serial, SOURCES["cdp"], sample_landing, now=NOW, workers=1)
    monkeypatch.setattr(loader, "PARALLEL_PARSE_BYTES", 0)  # use worker processes even for small files
    parallel = Warehouse(Settings(data_dir=tmp_path / "parallel"))
    report = ingest_source(parallel, SOURCES["cdp"], sample_landing, now=NOW, workers=2)
    assert len(report.files_loaded) > 1
    columns = "message_id, event_type, user_id, event_at, traits, source_file, source_line"
    contents = []
    for warehouse in (serial, parallel):
        with warehouse.connect() as conn:
            contents.append((
                conn.fetchall(f"SELECT {columns} FROM raw.cdp_events ORDER BY message_id"),
                conn.fetchall("SELECT file, line, reason FROM raw.quarantine ORDER BY file, line"),
            ))
    assert contents[0] == contents[1]


def test_columns_added_in_a_later_release_appear_in_an_existing_warehouse(warehouse, tmp_path):
    from dagster_project.ingest.loader import ensure_raw_tables

    warehouse.ensure_schemas()
    with warehouse.connect() as conn:
        conn.execute("CREATE TABLE raw.crm_contacts (contact_id VARCHAR, updated_at TIMESTAMP)")
    ensure_raw_tables(warehouse)
    with warehouse.connect() as conn:
        columns = {name for (name,) in conn.fetchall(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'raw' AND table_name = 'crm_contacts'"
        )}
    assert {"email_opt_out", "source_file", "loaded_at"} <= columns
