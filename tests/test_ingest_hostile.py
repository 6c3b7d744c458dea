"""Hostile landing files on both warehouses: one bad file never stops its source, a bad row never
stops its file, and every row read is loaded or quarantined (or its whole file is rejected)."""

from __future__ import annotations

import gzip
import json

import pytest

from dagster_project.ingest.loader import ingest_source, outstanding_rejections
from dagster_project.ingest.reader import ReadLimits
from dagster_project.ingest.sources import SOURCES

from test_ingest import NOW

CRM_HEADER = "hs_object_id,email,firstname,createdate,lastmodifieddate\n"


def crm_row(contact_id: int, first_name: str = "Ann", email: str = "ann@example.com") -> str:
    return f"{contact_id},{email},{first_name},2026-01-01T00:00:00,2026-01-02T00:00:00\n"


def cdp_event(message_id: str, **traits) -> dict:
    return {"messageId": message_id, "type": "identify", "userId": f"u-{message_id}",
            "timestamp": "2026-10-30T10:00:00Z", "traits": traits or {"plan": "pro"}}


def consent_event(event_id: str) -> dict:
    return {"event_id": event_id, "email": f"{event_id}@example.com", "channel": "email", "status": "opt_out",
            "lawful_basis": "consent", "source": "preference_center", "occurred_at": "2026-10-30T10:00:00Z"}


def jsonl(*records) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)


def ledger(warehouse) -> dict[str, tuple]:
    with warehouse.connect() as conn:
        return {file: (status, rows_read, rows_loaded, rows_quarantined, error)
                for file, status, rows_read, rows_loaded, rows_quarantined, error in conn.fetchall(
                    "SELECT file, status, rows_read, rows_loaded, rows_quarantined, error FROM raw.ingested_files")}


def quarantine_reasons(warehouse, file: str) -> list[str]:
    with warehouse.connect() as conn:
        return [r for (r,) in conn.fetchall("SELECT reason FROM raw.quarantine WHERE file = ? ORDER BY line", [file])]


def test_each_reproduced_file_is_rejected_or_quarantined_and_the_files_after_it_load(warehouse, tmp_path):
    landing = tmp_path / "landing"
    for name in ("crm", "cdp", "consent"):
        (landing / name).mkdir(parents=True)
    # CRM: Latin-1 (rejected, names the fix), a BOM (accepted), a 200 KiB field (loads), then a good file.
    (landing / "crm" / "1-latin1.csv").write_bytes((CRM_HEADER + crm_row(1, "José")).encode("latin-1"))
    (landing / "crm" / "2-bom.csv").write_bytes(b"\xef\xbb\xbf" + (CRM_HEADER + crm_row(2)).encode())
    (landing / "crm" / "3-wide.csv").write_text(CRM_HEADER + crm_row(3, "x" * 200_000) + crm_row(4))
    (landing / "crm" / "4-nul.csv").write_text(CRM_HEADER + crm_row(5, "Nu\x00ll") + crm_row(6))
    # Consent: a truncated gzip (rejected) must not stop the opt-outs landing after it.
    whole = gzip.compress(jsonl(*(consent_event(f"c{i}") for i in range(200))))
    (landing / "consent" / "1-cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (landing / "consent" / "2-next.jsonl").write_bytes(jsonl(consent_event("after")))
    # CDP: a 17 MiB line, \u0000 in traits, a raw NUL, a non-object line, deep nesting, invalid UTF-8.
    deep = {"messageId": "deep", "type": "track", "event": "x", "userId": "u", "timestamp": "2026-10-30T10:00:00Z",
            "properties": json.loads("[" * 100 + "]" * 100)}
    (landing / "cdp" / "1-hostile.jsonl").write_bytes(jsonl(
        cdp_event("ok-1"),
        json.dumps(cdp_event("huge", blob="y" * (17 << 20))).encode(),
        cdp_event("nul-escape", name="a\u0000b"),
        b'{"messageId": "raw-nul", "type": "identify", "userId": "u\x00"}',
        [1, 2, 3],
        deep,
        b'{"messageId": "latin", "type": "identify", "userId": "Jos\xe9"}',
        b"[" * 5000 + b"]" * 5000,
        cdp_event("ok-2"),
    ))

    reports = {name: ingest_source(warehouse, SOURCES[name], landing, now=NOW) for name in ("crm", "consent", "cdp")}

    files = ledger(warehouse)
    assert files["crm/1-latin1.csv"][0] == "rejected"
    assert "MAILROOM_INGEST_ENCODING_CRM" in files["crm/1-latin1.csv"][4]
    assert files["crm/2-bom.csv"][:3] == ("loaded", 1, 1)
    assert files["crm/3-wide.csv"][:3] == ("loaded", 2, 2)
    assert files["crm/4-nul.csv"][:4] == ("loaded", 2, 1, 1)
    assert quarantine_reasons(warehouse, "crm/4-nul.csv")[0].startswith("NUL character")
    assert files["consent/1-cut.jsonl.gz"][0] == "rejected" and "truncated" in files["consent/1-cut.jsonl.gz"][4]
    assert files["consent/2-next.jsonl"][:3] == ("loaded", 1, 1)
    assert files["cdp/1-hostile.jsonl"][:4] == ("loaded", 9, 2, 7)
    reasons = quarantine_reasons(warehouse, "cdp/1-hostile.jsonl")
    assert [r.split(":")[0] for r in reasons] == [
        "line too long", "NUL character", "NUL character", "malformed JSON", "nested too deep", "malformed JSON",
        "malformed JSON"]

    with warehouse.connect() as conn:
        assert conn.scalar("SELECT first_name FROM raw.crm_contacts WHERE contact_id = '3'") == "x" * 200_000
        assert conn.scalar("SELECT count(*) FROM raw.crm_contacts WHERE contact_id = '2'") == 1  # BOM stripped
        # The quarantine keeps a bounded copy of the 17 MiB line, and PostgreSQL can read every traits value.
        assert conn.scalar("SELECT max(length(payload)) FROM raw.quarantine") < 100_000
        assert conn.scalar("SELECT count(*) FROM raw.cdp_events WHERE traits LIKE '%u0000%'") == 0
        if warehouse.kind == "postgres":
            assert conn.scalar("SELECT count(cast(traits AS jsonb)) FROM raw.cdp_events") == 2
    assert [f.file for f in reports["crm"].files_rejected] == ["crm/1-latin1.csv"]
    assert outstanding_rejections(warehouse, SOURCES["crm"], landing) == [
        ("crm/1-latin1.csv", files["crm/1-latin1.csv"][4])]

    # Unchanged, the rejected file is not tried again; with its encoding configured and an explicit
    # re-run it loads, its accents intact, and no longer waits for an operator.
    assert ingest_source(warehouse, SOURCES["crm"], landing, now=NOW).files_skipped == 4
    retry = ingest_source(warehouse, SOURCES["crm"], landing, now=NOW.replace(hour=1), retry_rejected=True,
                          limits=ReadLimits(encoding="latin-1"))
    assert [f.file for f in retry.files_loaded] == ["crm/1-latin1.csv"] and retry.rows_loaded == 1
    with warehouse.connect() as conn:
        assert conn.scalar("SELECT first_name FROM raw.crm_contacts WHERE contact_id = '1'") == "José"
    assert outstanding_rejections(warehouse, SOURCES["crm"], landing) == []


def test_a_line_or_field_over_the_configured_limit_is_quarantined_alone(warehouse, tmp_path):
    landing = tmp_path / "landing"
    (landing / "crm").mkdir(parents=True)
    (landing / "cdp").mkdir(parents=True)
    limits = ReadLimits(max_line_bytes=4096)
    # A quoted field that spans lines grows past the limit without any one line doing so.
    spanning = '7,a@example.com,"' + "z\n" * 3000 + '",2026-01-01T00:00:00,2026-01-02T00:00:00\n'
    (landing / "crm" / "wide.csv").write_text(CRM_HEADER + crm_row(6) + "8,b@example.com," + "w" * 5000
                                              + ",2026-01-01,2026-01-02\n" + spanning + crm_row(9))
    (landing / "cdp" / "long.jsonl").write_bytes(jsonl(cdp_event("a"), cdp_event("b", pad="p" * 5000), cdp_event("c")))

    crm = ingest_source(warehouse, SOURCES["crm"], landing, now=NOW, limits=limits)
    cdp = ingest_source(warehouse, SOURCES["cdp"], landing, now=NOW, limits=limits)

    assert cdp.rows_read == 3 and cdp.rows_loaded == 2 and cdp.reasons == {"line too long": 1}
    assert not crm.files_rejected
    assert crm.rows_read == crm.rows_loaded + crm.rows_quarantined
    with warehouse.connect() as conn:
        loaded = {c for (c,) in conn.fetchall("SELECT contact_id FROM raw.crm_contacts")}
    assert {"6", "9"} <= loaded and "8" not in loaded and "7" not in loaded


def test_unchanged_files_are_not_hashed_again(warehouse, tmp_path, monkeypatch):
    from dagster_project.ingest import loader

    landing = tmp_path / "landing"
    (landing / "consent").mkdir(parents=True)
    (landing / "consent" / "a.jsonl").write_bytes(jsonl(consent_event("a")))
    ingest_source(warehouse, SOURCES["consent"], landing, now=NOW)
    hashed = []
    monkeypatch.setattr(loader, "file_sha256", lambda path: hashed.append(path.name) or "not-the-digest")
    assert ingest_source(warehouse, SOURCES["consent"], landing, now=NOW).files_skipped == 1
    assert hashed == []


def test_loaded_files_are_archived_when_asked(warehouse, tmp_path):
    landing, archive = tmp_path / "landing", tmp_path / "archive"
    (landing / "consent").mkdir(parents=True)
    (landing / "consent" / "a.jsonl").write_bytes(jsonl(consent_event("a")))
    (landing / "consent" / "b.jsonl.gz").write_bytes(b"not gzip at all")
    report = ingest_source(warehouse, SOURCES["consent"], landing, now=NOW, archive_dir=archive)
    assert report.files_archived == 1
    assert (archive / "consent" / "a.jsonl").exists() and not (landing / "consent" / "a.jsonl").exists()
    # A rejected file stays where the operator will look for it.
    assert (landing / "consent" / "b.jsonl.gz").exists()
    # The same name delivered again with new content loads, and its archive copy keeps both.
    (landing / "consent" / "a.jsonl").write_bytes(jsonl(consent_event("a2")))
    assert ingest_source(warehouse, SOURCES["consent"], landing, now=NOW, archive_dir=archive).rows_loaded == 1
    assert len(list((archive / "consent").iterdir())) == 2


@pytest.mark.parametrize("severity", ["warn", "error"])
def test_the_ingest_asset_succeeds_and_its_check_reports_a_rejected_file(settings, tmp_path, severity):
    import dagster as dg

    from dagster_project.defs.ingest.assets import FILES_CHECK, ingest_assets
    from dagster_project.defs.ingest.resource import IngestResource
    from dagster_project.resources import WarehouseResource

    (settings.landing_dir / "consent").mkdir(parents=True)
    (settings.landing_dir / "consent" / "1-cut.jsonl.gz").write_bytes(gzip.compress(jsonl(consent_event("a")))[:20])
    (settings.landing_dir / "consent" / "2-good.jsonl").write_bytes(jsonl(consent_event("b")))
    consent_asset = next(a for a in ingest_assets if a.key == dg.AssetKey(["raw", "consent_events"]))

    result = dg.materialize(
        [consent_asset],
        resources={"warehouse": WarehouseResource.from_settings(settings),
                   "ingest": IngestResource(rejected_file_severity=severity)},
        raise_on_error=False,
    )

    # warn: the run succeeds; error: the blocking check stops the run (and what depends on the asset),
    # though the good file is loaded and recorded either way.
    assert result.success == (severity == "warn")
    metadata = result.asset_materializations_for_node(consent_asset.op.name)[0].metadata
    assert metadata["files_rejected"].value == 1 and metadata["rows_loaded"].value == 1
    assert metadata["table_rows"].value == 1
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == FILES_CHECK and not check.passed
    assert check.severity == (dg.AssetCheckSeverity.ERROR if severity == "error" else dg.AssetCheckSeverity.WARN)
    assert "consent/1-cut.jsonl.gz" in check.metadata["rejected_files"].value


def test_memory_stays_bounded_whatever_the_line_length(tmp_path):
    import tracemalloc

    from dagster_project.ingest.reader import read_jsonl

    path = tmp_path / "long.jsonl"
    with open(path, "wb") as handle:
        handle.write(jsonl(cdp_event("before")))
        handle.write(b'{"messageId": "' + b"m" * (40 << 20) + b'"}\n')
        handle.write(jsonl(cdp_event("after")))
    limits = ReadLimits(max_line_bytes=1 << 20)
    tracemalloc.start()
    try:
        records = [(r.line, r.problem, len(r.payload)) for r in read_jsonl(path, limits)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(line, problem is None) for line, problem, _ in records] == [(1, True), (2, False), (3, True)]
    assert records[1][1].startswith("line too long: 41,943,0")
    assert peak < 8 * limits.max_line_bytes  # the 40 MiB line was never held whole


def test_a_refused_value_is_named_by_column_never_quoted(warehouse):
    """The warehouse's own error quotes the refused value (maybe an address); the file's rejection
    reason, logged and shown in the UI, keeps only the kind of error and the column."""
    from dagster_project.ingest.loader import _refusal

    with warehouse.connect() as conn:
        conn.execute("CREATE TEMPORARY TABLE refusing (amount INTEGER)")
        with pytest.raises(Exception) as refused:
            conn.execute("INSERT INTO refusing SELECT CAST('jane@example.com' AS INTEGER)")
    assert "jane@example.com" in str(refused.value)
    assert "jane@example.com" not in _refusal(refused.value)
    assert type(refused.value).__name__ in _refusal(refused.value)


def test_a_system_error_fails_the_run_instead_of_rejecting_the_file(warehouse, tmp_path, monkeypatch):
    import errno

    from dagster_project.ingest import loader

    landing = tmp_path / "landing"
    (landing / "consent").mkdir(parents=True)
    (landing / "consent" / "a.jsonl").write_bytes(jsonl(consent_event("a")))

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(loader, "_spool", disk_full)
    with pytest.raises(OSError, match="No space left"):
        ingest_source(warehouse, SOURCES["consent"], landing, now=NOW)
    monkeypatch.undo()
    # Nothing was recorded against the file: once there is room, it loads.
    assert ingest_source(warehouse, SOURCES["consent"], landing, now=NOW).rows_loaded == 1


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "UTF-16LE"])
def test_an_encoding_that_is_not_ascii_compatible_is_refused_at_start(encoding):
    from dagster_project.settings import SettingsError, load_ingest_settings

    with pytest.raises(SettingsError, match="iconv"):
        load_ingest_settings({"MAILROOM_INGEST_ENCODING_CRM": encoding})
    assert load_ingest_settings({"MAILROOM_INGEST_ENCODING_CRM": "Latin-1"}).encodings == {"crm": "iso8859-1"}
