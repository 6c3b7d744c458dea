"""Property-based ingest: generated hostile landing files (any bytes, encodings, lengths, nesting, NULs,
truncated gzip), on both warehouses. Whatever arrives, ingest does not raise, and each file either
loads with rows read = rows loaded + rows quarantined (duplicates included), matching what the tables
hold, or is recorded as rejected with nothing of it loaded."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.reader import ReadLimits
from dagster_project.ingest.sources import SOURCES

from test_ingest import NOW

LIMITS = ReadLimits(max_line_bytes=2048, max_depth=16)
EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_names = itertools.count()

any_text = st.text(max_size=40)  # every code point Python can hold, NUL included
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def cdp_records(draw) -> bytes:
    record = {
        "messageId": draw(st.one_of(any_text, st.integers(), st.none())),
        "type": draw(st.sampled_from(["identify", "track", "page", "alias", "bogus"])),
        "event": draw(any_text),
        "userId": draw(st.one_of(any_text, st.none())),
        "anonymousId": draw(st.one_of(any_text, st.none())),
        "timestamp": draw(st.one_of(st.just("2026-10-30T10:00:00Z"), any_text, st.integers())),
        "traits": draw(st.one_of(st.dictionaries(any_text, json_values, max_size=4), json_values)),
        "properties": draw(st.dictionaries(any_text, json_values, max_size=3)),
    }
    return json.dumps(record).encode()


jsonl_lines = st.one_of(
    cdp_records(),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=120),  # not JSON, maybe not UTF-8, maybe NUL bytes
    st.integers(1, 200).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1000, 6000).map(lambda length: json.dumps({"messageId": "x" * length}).encode()),
)


@st.composite
def jsonl_files(draw) -> tuple[bytes, bool, bool]:
    """(file bytes, whether they are gzipped, whether the gzip stream is cut short)."""
    lines = draw(st.lists(jsonl_lines, max_size=12))
    body = b"".join(line + draw(st.sampled_from([b"\n", b"\r\n"])) for line in lines)
    if not draw(st.booleans()):
        return body, False, False
    packed = gzip.compress(body)
    cut = draw(st.booleans()) and len(packed) > 20
    return (packed[: len(packed) // 2] if cut else packed), True, cut


csv_fields = st.one_of(any_text, st.sampled_from(["a@example.com", "2026-01-01T00:00:00", "true", '"', "\n", ","]))


@st.composite
def csv_files(draw) -> bytes:
    header = ["hs_object_id", "email", "firstname", "createdate", "lastmodifieddate"]
    if draw(st.integers(0, 9)) == 0:
        header = header[1:]  # an export that lacks a required column
    rows = draw(st.lists(st.lists(csv_fields, min_size=len(header) - 1, max_size=len(header) + 1), max_size=8))
    text = ",".join(header) + "\n" + "".join(",".join(_quoted(field) for field in row) + "\n" for row in rows)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    return text.encode(encoding, "replace")


def _quoted(field: str) -> str:
    return '"' + field.replace('"', '""') + '"' if any(c in field for c in ',"\n\r') else field


def assert_conserved(warehouse, source, report, landing, expected_reads: dict[str, int]) -> None:
    assert report.files_skipped == 0
    with warehouse.connect() as conn:
        for file in report.files_loaded:
            assert file.error is None
            assert file.rows_read == file.rows_loaded + file.rows_quarantined
            assert conn.scalar(f"SELECT count(*) FROM {source.qualified_table} WHERE source_file = ?",
                               [file.file]) == file.rows_loaded
            assert conn.scalar("SELECT count(*) FROM raw.quarantine WHERE file = ?",
                               [file.file]) == file.rows_quarantined
            if expected_reads.get(file.file) is not None:
                assert file.rows_read == expected_reads[file.file]
        for file in report.files_rejected:
            assert file.error
            assert conn.scalar(f"SELECT count(*) FROM {source.qualified_table} WHERE source_file = ?", [file.file]) == 0
            assert conn.scalar("SELECT count(*) FROM raw.quarantine WHERE file = ?", [file.file]) == 0
            assert conn.scalar("SELECT status FROM raw.ingested_files WHERE file = ?", [file.file]) == "rejected"
        if warehouse.kind == "postgres" and source.name == "cdp":
            # What loaded is valid jsonb for the staging models (no \u0000, no lone surrogate).
            conn.scalar("SELECT count(cast(traits AS jsonb)) + count(cast(properties AS jsonb)) FROM raw.cdp_events")


@EXAMPLES
@given(files=st.lists(jsonl_files(), min_size=1, max_size=3))
def test_generated_jsonl_files_are_conserved(warehouse, tmp_path, files):
    landing = tmp_path / f"landing-{next(_names)}"
    (landing / "cdp").mkdir(parents=True)
    expected_reads, cut_short = {}, set()
    for number, (content, gzipped, cut) in enumerate(files):
        name = f"cdp/{next(_names)}-{number}.jsonl" + (".gz" if gzipped else "")
        (landing / name).write_bytes(content)
        if cut:
            cut_short.add(name)
        elif not name.endswith(".gz"):
            expected_reads[name] = sum(1 for line in content.split(b"\n") if line.strip())
    report = ingest_source(warehouse, SOURCES["cdp"], landing, now=NOW, limits=LIMITS)
    assert len(report.files_loaded) + len(report.files_rejected) == len(files)
    # Only a stream cut short spoils a whole JSONL file; everything else is row-level.
    assert {f.file for f in report.files_rejected} <= cut_short
    assert_conserved(warehouse, SOURCES["cdp"], report, landing, expected_reads)


@EXAMPLES
@given(files=st.lists(csv_files(), min_size=1, max_size=3))
def test_generated_csv_files_are_conserved(warehouse, tmp_path, files):
    landing = tmp_path / f"landing-{next(_names)}"
    (landing / "crm").mkdir(parents=True)
    expected_reads = {}
    for number, content in enumerate(files):
        name = f"crm/{next(_names)}-{number}.csv"
        (landing / name).write_bytes(content)
        expected_reads[name] = csv_records(content)
    report = ingest_source(warehouse, SOURCES["crm"], landing, now=NOW, limits=LIMITS)
    assert len(report.files_loaded) + len(report.files_rejected) == len(files)
    assert_conserved(warehouse, SOURCES["crm"], report, landing, expected_reads)


def csv_records(content: bytes) -> int | None:
    """Non-blank records after the header, as the standard csv module counts them in UTF-8 text
    (None when the file is not UTF-8: it is rejected whole)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    return sum(1 for row in rows if any(value.strip() for value in row))
