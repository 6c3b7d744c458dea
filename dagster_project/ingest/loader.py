"""Loads new landing files into raw.* tables.

Per file: parse and validate every record in Python (the same rules on both engines, files in
parallel worker processes), spool good rows and rejects to CSV, then in one transaction bulk-load
them (DuckDB read_csv, PostgreSQL COPY), move rows whose key was already loaded to raw.quarantine,
and record the file in raw.ingested_files. A crash mid-file leaves nothing behind, and a file
already in the ledger is skipped, so re-running is always safe.
"""

from __future__ import annotations

import csv
import hashlib
import multiprocessing
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
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


def raw_table_columns(source: Source) -> tuple[Column, ...]:
    return source.columns + LINEAGE_COLUMNS + (Column("loaded_at", "TIMESTAMP"),)


def ensure_raw_tables(warehouse: Warehouse) -> None:
    warehouse.ensure_schemas()
    with warehouse.connect() as conn:
        conn.create_table("raw.quarantine", QUARANTINE_COLUMNS)
        conn.create_table("raw.ingested_files", LEDGER_COLUMNS)
        for source in SOURCES.values():
            conn.create_table(source.qualified_table, raw_table_columns(source))
            # A column added to a source in a later release appears in existing warehouses too.
            for column in raw_table_columns(source):
                conn.execute(
                    f"ALTER TABLE {source.qualified_table} ADD COLUMN IF NOT EXISTS {column.name} {column.sql_type}"
                )


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


DUPLICATE_REASON = "duplicate key: {key} seen before"
PARALLEL_PARSE_BYTES = 32 << 20


@dataclass
class SpooledFile:
    """One parsed landing file, waiting to be loaded."""

    path: Path
    digest: str
    report: FileReport
    rows_csv: Path
    rejects_csv: Path


def _spool(path: Path, source: Source, relative: str, loaded_at: str, clock: Clock,
           rows_csv: Path, rejects_csv: Path) -> FileReport:
    """Parse the file once, writing loadable rows and rejects to two CSV files. A key repeated
    within the file is rejected here; keys loaded by earlier files are caught in the warehouse."""
    report = FileReport(relative)
    key_positions = [i for i, column in enumerate(source.columns) if column.name in source.key]
    duplicate = DUPLICATE_REASON.format(key=source.key_label)
    seen_keys: set = set()
    with open(rows_csv, "w", newline="", encoding="utf-8") as rows_handle, \
            open(rejects_csv, "w", newline="", encoding="utf-8") as rejects_handle:
        rows, rejects = csv.writer(rows_handle), csv.writer(rejects_handle)
        rows.writerow([c.name for c in source.columns] + ["source_file", "source_line"])
        rejects.writerow([c.name for c in QUARANTINE_COLUMNS])
        for raw in read_records(path, source):
            report.rows_read += 1
            reason = raw.problem
            if reason is None:
                try:
                    values = source.parse(raw.record, clock)
                    key = tuple(values[i] for i in key_positions)
                    if key in seen_keys:
                        reason = duplicate
                    seen_keys.add(key)
                except Rejected as rejected:
                    reason = str(rejected)
            if reason is not None:
                report.reasons[reason.split(":")[0]] += 1
                rejects.writerow([source.name, relative, raw.line, raw.payload, reason, loaded_at])
                continue
            rows.writerow([_csv_value(v) for v in values] + [relative, raw.line])
    return report


def _spool_in_worker(args) -> FileReport:
    path, source_name, relative, loaded_at, now, rows_csv, rejects_csv = args
    return _spool(path, SOURCES[source_name], relative, loaded_at, Clock(now), rows_csv, rejects_csv)


def _load_spooled(conn: Connection, source: Source, spooled: SpooledFile, loaded_at: str) -> None:
    report = spooled.report
    incoming = f"incoming_{source.table}"
    incoming_columns = source.columns + LINEAGE_COLUMNS
    conn.execute(f"DROP TABLE IF EXISTS {incoming}")
    conn.create_table(incoming, incoming_columns, temporary=True)
    conn.load_csv(incoming, incoming_columns, spooled.rows_csv)

    matches = " AND ".join(f"loaded.{k} = incoming.{k}" for k in source.key)
    already_loaded = f"EXISTS (SELECT 1 FROM {source.qualified_table} AS loaded WHERE {matches})"
    repeated_lines = {
        int(line) for (line,) in conn.fetchall(f"SELECT source_line FROM {incoming} AS incoming WHERE {already_loaded}")
    }
    names = ", ".join(c.name for c in incoming_columns)
    report.rows_loaded = conn.execute(
        f"INSERT INTO {source.qualified_table} ({names}, loaded_at) "
        f"SELECT {names}, CAST(? AS TIMESTAMP) FROM {incoming} AS incoming WHERE NOT {already_loaded}",
        [loaded_at],
    )
    conn.execute(f"DROP TABLE {incoming}")
    if repeated_lines:
        # Rare (a re-delivered file): read those lines again to keep their raw payload.
        _append_rejects(spooled, source, repeated_lines, DUPLICATE_REASON.format(key=source.key_label), loaded_at)
        report.reasons["duplicate key"] += len(repeated_lines)
    conn.load_csv("raw.quarantine", QUARANTINE_COLUMNS, spooled.rejects_csv)
    report.rows_quarantined = sum(report.reasons.values())


def _append_rejects(spooled: SpooledFile, source: Source, lines: set[int], reason: str, loaded_at: str) -> None:
    with open(spooled.rejects_csv, "a", newline="", encoding="utf-8") as handle:
        rejects = csv.writer(handle)
        for raw in read_records(spooled.path, source):
            if raw.line in lines:
                rejects.writerow([source.name, spooled.report.file, raw.line, raw.payload, reason, loaded_at])


def ingest_source(
    warehouse: Warehouse,
    source: Source,
    landing_dir: Path,
    now: datetime | None = None,
    progress: Callable[[str], None] = lambda message: None,
    workers: int | None = None,
) -> IngestReport:
    """Load every file of `source` not yet in raw.ingested_files; return what happened.

    Files are parsed in parallel worker processes and loaded one by one, in name order, each in its
    own transaction (DuckDB allows one writer)."""
    started = time.perf_counter()
    now = now or datetime.now(timezone.utc)
    loaded_at = now.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    report = IngestReport(source.name)
    ensure_raw_tables(warehouse)

    with warehouse.connect() as conn:
        seen = set(conn.fetchall("SELECT file, sha256 FROM raw.ingested_files WHERE source = ?", [source.name]))
    pending = []
    for path in landing_files(landing_dir, source):
        relative = path.relative_to(landing_dir).as_posix()
        digest = _sha256(path)
        if (relative, digest) in seen:
            report.files_skipped += 1
        else:
            pending.append((path, relative, digest))
    if not pending:
        report.seconds = time.perf_counter() - started
        return report

    with tempfile.TemporaryDirectory(prefix="mailroom-ingest-") as scratch:
        jobs = [
            (path, source.name, relative, loaded_at, now,
             Path(scratch) / f"{number}-rows.csv", Path(scratch) / f"{number}-rejects.csv")
            for number, (path, relative, _) in enumerate(pending)
        ]
        for (path, relative, digest), job, file_report in zip(pending, jobs, _spool_all(jobs, workers)):
            spooled = SpooledFile(path, digest, file_report, job[5], job[6])
            with warehouse.connect() as conn:
                _load_spooled(conn, source, spooled, loaded_at)
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


def _spool_all(jobs: list[tuple], workers: int | None):
    """Parse files in worker processes when there is enough to parse (CPU-bound Python); a worker
    costs about a second to start, so small batches stay in this process."""
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if workers <= 1 or sum(job[0].stat().st_size for job in jobs) < PARALLEL_PARSE_BYTES:
        yield from map(_spool_in_worker, jobs)
        return
    context = multiprocessing.get_context("spawn")  # fork is unsafe in a process with threads (Dagster)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(_spool_in_worker, jobs)
