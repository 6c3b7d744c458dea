"""Loads new landing files into raw.* tables.

Per file, in one transaction: parse and validate every record in Python (the same rules on both
engines), spool good rows and rejects to CSV, bulk-load them (DuckDB read_csv, PostgreSQL COPY),
move rows whose key was already loaded to raw.quarantine, and record the file in
raw.ingested_files. A crash mid-file leaves nothing behind, and a file already in the ledger is
skipped, so re-running is always safe.
"""

from __future__ import annotations

import csv
import hashlib
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from dagster_project.ingest.reader import landing_files, read_records
from dagster_project.ingest.sources import SOURCES, Source
from dagster_project.ingest.values import Clock, Rejected
from dagster_project.warehouse import Column, Connection, Warehouse

LINEAGE_COLUMNS = (Column("source_file", "VARCHAR"), Column("source_line", "BIGINT"))
QUARANTINE_COLUMNS = (
    Column("source", "VARCHAR"),
    Column("file", "VARCHAR"),
    Column("line", "BIGINT"),
    Column("payload", "VARCHAR"),
    Column("reason", "VARCHAR"),
    Column("loaded_at", "TIMESTAMP"),
)
LEDGER_COLUMNS = (
    Column("source", "VARCHAR"),
    Column("file", "VARCHAR"),
    Column("sha256", "VARCHAR"),
    Column("size_bytes", "BIGINT"),
    Column("rows_read", "BIGINT"),
    Column("rows_loaded", "BIGINT"),
    Column("rows_quarantined", "BIGINT"),
    Column("loaded_at", "TIMESTAMP"),
)


@dataclass
class FileReport:
    file: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)


@dataclass
class IngestReport:
    source: str
    files_loaded: list[FileReport] = field(default_factory=list)
    files_skipped: int = 0
    seconds: float = 0.0

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files_loaded)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files_loaded)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files_loaded)

    @property
    def reasons(self) -> Counter:
        total: Counter = Counter()
        for report in self.files_loaded:
            total.update(report.reasons)
        return total


def _ddl(table: str, columns: tuple[Column, ...], temporary: bool = False) -> str:
    body = ", ".join(f"{c.name} {c.sql_type}" for c in columns)
    return f"CREATE {'TEMPORARY ' if temporary else ''}TABLE {'' if temporary else 'IF NOT EXISTS '}{table} ({body})"


def raw_table_columns(source: Source) -> tuple[Column, ...]:
    return source.columns + LINEAGE_COLUMNS + (Column("loaded_at", "TIMESTAMP"),)


def ensure_raw_tables(warehouse: Warehouse) -> None:
    warehouse.ensure_schemas()
    with warehouse.connect() as conn:
        conn.execute(_ddl("raw.quarantine", QUARANTINE_COLUMNS))
        conn.execute(_ddl("raw.ingested_files", LEDGER_COLUMNS))
        for source in SOURCES.values():
            conn.execute(_ddl(source.qualified_table, raw_table_columns(source)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _csv_value(value) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _spool(path: Path, source: Source, relative: str, loaded_at: str, clock: Clock,
           rows_csv: Path, rejects_csv: Path) -> FileReport:
    """Parse the file once, writing loadable rows and rejects to two CSV files."""
    report = FileReport(relative)
    row_header = [c.name for c in source.columns] + ["source_file", "source_line", "payload"]
    with open(rows_csv, "w", newline="", encoding="utf-8") as rows_handle, \
            open(rejects_csv, "w", newline="", encoding="utf-8") as rejects_handle:
        rows, rejects = csv.writer(rows_handle), csv.writer(rejects_handle)
        rows.writerow(row_header)
        rejects.writerow([c.name for c in QUARANTINE_COLUMNS])
        for raw in read_records(path, source):
            report.rows_read += 1
            reason = raw.problem
            if reason is None:
                try:
                    values = source.parse(raw.record, clock)
                except Rejected as rejected:
                    reason = str(rejected)
            if reason is not None:
                report.reasons[reason.split(":")[0]] += 1
                rejects.writerow([source.name, relative, raw.line, raw.payload, reason, loaded_at])
                continue
            rows.writerow([_csv_value(v) for v in values] + [relative, raw.line, raw.payload])
    return report


def _load_spooled(conn: Connection, source: Source, report: FileReport, loaded_at: str,
                  rows_csv: Path, rejects_csv: Path) -> None:
    incoming = f"incoming_{source.table}"
    incoming_columns = source.columns + LINEAGE_COLUMNS + (Column("payload", "VARCHAR"),)
    conn.execute(f"DROP TABLE IF EXISTS {incoming}")
    conn.execute(_ddl(incoming, incoming_columns, temporary=True))
    conn.load_csv(incoming, incoming_columns, rows_csv)

    key = ", ".join(source.key)
    matches = " AND ".join(f"loaded.{k} = ranked.{k}" for k in source.key)
    ranked = (
        f"SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY source_line) AS copy_number "
        f"FROM {incoming}"
    )
    already_loaded = f"EXISTS (SELECT 1 FROM {source.qualified_table} AS loaded WHERE {matches})"
    reason = f"duplicate key: {source.key_label} seen before"
    duplicates = conn.execute(
        "INSERT INTO raw.quarantine (source, file, line, payload, reason, loaded_at) "
        f"SELECT ?, source_file, source_line, payload, ?, CAST(? AS TIMESTAMP) FROM ({ranked}) AS ranked "
        f"WHERE copy_number > 1 OR {already_loaded}",
        [source.name, reason, loaded_at],
    )
    names = ", ".join(c.name for c in source.columns + LINEAGE_COLUMNS)
    report.rows_loaded = conn.execute(
        f"INSERT INTO {source.qualified_table} ({names}, loaded_at) "
        f"SELECT {names}, CAST(? AS TIMESTAMP) FROM ({ranked}) AS ranked "
        f"WHERE copy_number = 1 AND NOT {already_loaded}",
        [loaded_at],
    )
    conn.load_csv("raw.quarantine", QUARANTINE_COLUMNS, rejects_csv)
    conn.execute(f"DROP TABLE {incoming}")
    if duplicates:
        report.reasons["duplicate key"] += duplicates
    report.rows_quarantined = sum(report.reasons.values())


def ingest_source(
    warehouse: Warehouse,
    source: Source,
    landing_dir: Path,
    now: datetime | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> IngestReport:
    """Load every file of `source` not yet in raw.ingested_files; return what happened."""
    started = time.perf_counter()
    now = now or datetime.now(timezone.utc)
    clock = Clock(now)
    loaded_at = now.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    report = IngestReport(source.name)
    ensure_raw_tables(warehouse)

    with warehouse.connect() as conn:
        seen = set(conn.fetchall("SELECT file, sha256 FROM raw.ingested_files WHERE source = ?", [source.name]))
    for path in landing_files(landing_dir, source):
        relative = path.relative_to(landing_dir).as_posix()
        digest = _sha256(path)
        if (relative, digest) in seen:
            report.files_skipped += 1
            continue
        with tempfile.TemporaryDirectory(prefix="mailroom-ingest-") as scratch:
            rows_csv, rejects_csv = Path(scratch) / "rows.csv", Path(scratch) / "rejects.csv"
            file_report = _spool(path, source, relative, loaded_at, clock, rows_csv, rejects_csv)
            with warehouse.connect() as conn:
                _load_spooled(conn, source, file_report, loaded_at, rows_csv, rejects_csv)
                conn.execute(
                    "INSERT INTO raw.ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, CAST(? AS TIMESTAMP))",
                    [source.name, relative, digest, path.stat().st_size, file_report.rows_read,
                     file_report.rows_loaded, file_report.rows_quarantined, loaded_at],
                )
        report.files_loaded.append(file_report)
        progress(
            f"{source.name}: {relative}: {file_report.rows_loaded:,} loaded, "
            f"{file_report.rows_quarantined:,} quarantined of {file_report.rows_read:,} read"
        )
    report.seconds = time.perf_counter() - started
    return report
