"""Loads new landing files into raw.* tables.

Per file: parse and validate every record in Python (the same rules on both engines, files in
parallel worker processes), spool good rows and rejects to CSV, then in one transaction bulk-load
them (DuckDB read_csv, PostgreSQL COPY), move rows whose key was already loaded to raw.quarantine,
and record the file in raw.ingested_files. A crash mid-file leaves nothing behind, and a file
already in the ledger is skipped, so re-running is always safe.

One file never stops its source: whatever goes wrong inside a file (it cannot be decompressed, it
is not in its encoding, the warehouse refuses a value) is recorded in the ledger as that file's
rejection with the error, the file is not tried again until its content changes or a run asks for
`retry_rejected`, and the next file loads. Only the warehouse itself being unreachable fails the run.
"""

from __future__ import annotations

import csv
import hashlib
import multiprocessing
import os
import re
import shutil
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from dagster_project.ingest.lookup_indexes import analyze_after_load, ensure_lookup_indexes
from dagster_project.ingest.reader import LandingFileError, ReadLimits, landing_files, read_records
from dagster_project.ingest.sources import SOURCES, Source
from dagster_project.ingest.values import Clock, Rejected
from dagster_project.privacy.audit_sources import incoming_counts, record_ingest
from dagster_project.privacy.ingest_guard import ErasureGuard
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
    Column("status", "VARCHAR"),  # loaded | rejected (NULL: loaded, before rejections were recorded)
    Column("error", "VARCHAR"),  # why a rejected file was rejected, and what to do
    Column("modified_ns", "BIGINT"),  # the file's mtime: name + size + mtime unchanged -> not hashed again
)
LOADED, REJECTED = "loaded", "rejected"


@dataclass
class FileReport:
    file: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0  # duplicates included: they are quarantined with their own reason
    reasons: Counter = field(default_factory=Counter)
    error: str | None = None  # set when the file as a whole was rejected
    erased_subject: int = 0  # records of erased people from before their erasure: dropped, never kept

    @property
    def duplicates(self) -> int:
        return self.reasons.get("duplicate key", 0)


@dataclass
class IngestReport:
    source: str
    files_loaded: list[FileReport] = field(default_factory=list)
    files_rejected: list[FileReport] = field(default_factory=list)
    files_skipped: int = 0
    files_archived: int = 0
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
        conn.add_missing_columns("raw.ingested_files", LEDGER_COLUMNS)
        for source in SOURCES.values():
            conn.create_table(source.qualified_table, raw_table_columns(source))
            conn.add_missing_columns(source.qualified_table, raw_table_columns(source))
            ensure_lookup_indexes(conn, source.qualified_table)


def file_sha256(path: Path) -> str:
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
           rows_csv: Path, rejects_csv: Path, limits: ReadLimits, guard: ErasureGuard | None = None) -> FileReport:
    """Parse the file once, writing loadable rows and rejects to two CSV files. A key repeated
    within the file is rejected here; keys loaded by earlier files are caught in the warehouse. Records
    of erased people from before their erasure (`guard`) are dropped and only counted."""
    column_names = [c.name for c in source.columns]
    report = FileReport(relative)
    key_positions = [i for i, column in enumerate(source.columns) if column.name in source.key]
    duplicate = DUPLICATE_REASON.format(key=source.key_label)
    seen_keys: set = set()
    with open(rows_csv, "w", newline="", encoding="utf-8") as rows_handle, \
            open(rejects_csv, "w", newline="", encoding="utf-8") as rejects_handle:
        rows, rejects = csv.writer(rows_handle), csv.writer(rejects_handle)
        rows.writerow([c.name for c in source.columns] + ["source_file", "source_line"])
        rejects.writerow([c.name for c in QUARANTINE_COLUMNS])
        for raw in read_records(path, source, limits):
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
            if reason is None and guard is not None and guard.erased(source.name, column_names, values):
                report.erased_subject += 1
                continue
            if reason is not None:
                report.reasons[reason.split(":")[0]] += 1
                rejects.writerow([source.name, relative, raw.line, raw.payload, reason, loaded_at])
                continue
            rows.writerow([_csv_value(v) for v in values] + [relative, raw.line])
    return report


def _spool_in_worker(args) -> FileReport:
    path, source_name, relative, loaded_at, now, rows_csv, rejects_csv, limits, guard = args
    try:
        return _spool(path, SOURCES[source_name], relative, loaded_at, Clock(now), rows_csv, rejects_csv, limits,
                      guard)
    except Exception as error:
        if _is_infrastructure_error(error):
            raise  # a full disk or a permission problem is not the file's fault: the run fails, the file waits
        return FileReport(relative, error=_file_error(error))


def _is_infrastructure_error(error: Exception) -> bool:
    # OSErrors with an errno come from the system (ENOSPC, EACCES, EIO); a corrupt gzip stream raises
    # BadGzipFile, an OSError without one.
    return isinstance(error, MemoryError) or (isinstance(error, OSError) and error.errno is not None)


def _file_error(error: Exception) -> str:
    if isinstance(error, LandingFileError):
        return str(error)
    if isinstance(error, (EOFError, OSError, zlib.error)):
        return (f"cannot be read ({type(error).__name__}: {error}): the file is truncated, corrupt or still "
                "being copied. Drop the complete file again (write it under a .tmp name and rename it when "
                "it is complete)")
    # Anything else the content provoked in the parser: the type and the message, never the content.
    return f"{type(error).__name__} while parsing: {str(error)[:200]}"


def _is_content_error(error: Exception) -> bool:
    """The warehouse refused a value of this file (not: the warehouse is unreachable)."""
    import duckdb
    import psycopg

    refused = (psycopg.errors.DataError, psycopg.errors.ProgramLimitExceeded, duckdb.ConversionException,
               duckdb.InvalidInputException, duckdb.OutOfRangeException)
    return isinstance(error, refused)


def _load_spooled(conn: Connection, source: Source, spooled: SpooledFile, loaded_at: str, limits: ReadLimits) -> None:
    report = spooled.report
    incoming = f"incoming_{source.table}"
    incoming_columns = source.columns + LINEAGE_COLUMNS
    conn.execute(f"DROP TABLE IF EXISTS {incoming}")
    conn.create_table(incoming, incoming_columns, temporary=True)
    # A spooled row holds at most one landing line, each quote doubled by CSV escaping.
    conn.load_csv(incoming, incoming_columns, spooled.rows_csv, max_line_bytes=2 * limits.max_line_bytes + (1 << 20))

    matches = " AND ".join(f"loaded.{k} = incoming.{k}" for k in source.key)
    already_loaded = f"EXISTS (SELECT 1 FROM {source.qualified_table} AS loaded WHERE {matches})"
    repeated_lines = {
        int(line) for (line,) in conn.fetchall(f"SELECT source_line FROM {incoming} AS incoming WHERE {already_loaded}")
    }
    names = ", ".join(c.name for c in incoming_columns)
    audited = incoming_counts(conn, source.name, incoming, f"NOT {already_loaded}")
    report.rows_loaded = conn.execute(
        f"INSERT INTO {source.qualified_table} ({names}, loaded_at) "
        f"SELECT {names}, CAST(? AS TIMESTAMP) FROM {incoming} AS incoming WHERE NOT {already_loaded}",
        [loaded_at],
    )
    record_ingest(conn, source.name, audited, report.file, spooled.digest, report.rows_loaded,
                  _naive_utc(loaded_at))
    conn.execute(f"DROP TABLE {incoming}")
    if repeated_lines:
        # Rare (a re-delivered file): read those lines again to keep their raw payload.
        _append_rejects(spooled, source, repeated_lines, DUPLICATE_REASON.format(key=source.key_label),
                        loaded_at, limits)
        report.reasons["duplicate key"] += len(repeated_lines)
    conn.load_csv("raw.quarantine", QUARANTINE_COLUMNS, spooled.rejects_csv)
    report.rows_quarantined = sum(report.reasons.values())


def _naive_utc(timestamp: str) -> datetime:
    moment = datetime.fromisoformat(timestamp)
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def _append_rejects(spooled: SpooledFile, source: Source, lines: set[int], reason: str, loaded_at: str,
                    limits: ReadLimits) -> None:
    with open(spooled.rejects_csv, "a", newline="", encoding="utf-8") as handle:
        rejects = csv.writer(handle)
        for raw in read_records(spooled.path, source, limits):
            if raw.line in lines:
                rejects.writerow([source.name, spooled.report.file, raw.line, raw.payload, reason, loaded_at])


def _record_file(conn: Connection, source: Source, spooled: SpooledFile, status: str, loaded_at: str) -> None:
    report, stat = spooled.report, spooled.path.stat()
    conn.execute(
        "INSERT INTO raw.ingested_files (source, file, sha256, size_bytes, rows_read, rows_loaded, rows_quarantined, "
        "loaded_at, status, error, modified_ns) VALUES (?, ?, ?, ?, ?, ?, ?, CAST(? AS TIMESTAMP), ?, ?, ?)",
        [source.name, report.file, spooled.digest, stat.st_size, report.rows_read, report.rows_loaded,
         report.rows_quarantined, loaded_at, status, report.error, stat.st_mtime_ns],
    )


@dataclass(frozen=True)
class LandingFile:
    path: Path
    relative: str
    digest: str


def _new_files(warehouse: Warehouse, source: Source, landing_dir: Path, retry_rejected: bool,
               report: IngestReport) -> list[LandingFile]:
    """Files not in the ledger yet. A file whose name, size and mtime match a ledger row is not read
    again; one whose content matches (copied anew) is not loaded again. Rejected files count as
    seen unless `retry_rejected`."""
    with warehouse.connect() as conn:
        ledger = conn.fetchall(
            "SELECT file, sha256, size_bytes, modified_ns, coalesce(status, ?) FROM raw.ingested_files "
            "WHERE source = ?",
            [LOADED, source.name])
    seen = [row for row in ledger if not (retry_rejected and row[4] == REJECTED)]
    by_stat = {(file, size, modified) for file, _, size, modified, _ in seen}
    by_digest = {(file, digest) for file, digest, *_ in seen}
    pending, touched = [], []
    for path in landing_files(landing_dir, source):
        relative, stat = path.relative_to(landing_dir).as_posix(), path.stat()
        if (relative, stat.st_size, stat.st_mtime_ns) in by_stat:
            report.files_skipped += 1
            continue
        digest = file_sha256(path)
        if (relative, digest) in by_digest:
            report.files_skipped += 1
            touched.append((stat.st_mtime_ns, source.name, relative, digest))
        else:
            pending.append(LandingFile(path, relative, digest))
    if touched:
        with warehouse.connect() as conn:
            for values in touched:
                conn.execute("UPDATE raw.ingested_files SET modified_ns = ? "
                             "WHERE source = ? AND file = ? AND sha256 = ?",
                             list(values))
    return pending


def _archive(path: Path, archive_dir: Path, source: Source, digest: str) -> None:
    """Move a loaded file aside, so the landing directory holds only what is still to load."""
    target = archive_dir / source.name / path.name
    if target.exists():  # the same name delivered again with other content
        target = target.with_name(f"{digest[:12]}-{path.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, target)


def ingest_source(
    warehouse: Warehouse,
    source: Source,
    landing_dir: Path,
    now: datetime | None = None,
    progress: Callable[[str], None] = lambda message: None,
    workers: int | None = None,
    limits: ReadLimits = ReadLimits(),
    retry_rejected: bool = False,
    archive_dir: Path | None = None,
) -> IngestReport:
    """Load every file of `source` not yet in raw.ingested_files; return what happened.

    Files are parsed in parallel worker processes and loaded one by one, in name order, each in its
    own transaction (DuckDB allows one writer). A file that cannot be loaded is recorded as rejected
    and the next one loads."""
    started = time.perf_counter()
    now = now or datetime.now(timezone.utc)
    loaded_at = now.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    report = IngestReport(source.name)
    ensure_raw_tables(warehouse)
    pending = _new_files(warehouse, source, landing_dir, retry_rejected, report)
    if not pending:
        report.seconds = time.perf_counter() - started
        return report

    guard = _erasure_guard(warehouse)
    with tempfile.TemporaryDirectory(prefix="mailroom-ingest-") as scratch:
        jobs = [
            (file.path, source.name, file.relative, loaded_at, now,
             Path(scratch) / f"{number}-rows.csv", Path(scratch) / f"{number}-rejects.csv", limits, guard)
            for number, file in enumerate(pending)
        ]
        for file, job, file_report in zip(pending, jobs, _spool_all(jobs, workers)):
            spooled = SpooledFile(file.path, file.digest, file_report, job[5], job[6])
            if file_report.error is None:
                _load_or_reject(warehouse, source, spooled, loaded_at, limits)
            if file_report.error is not None:
                with warehouse.connect() as conn:
                    _record_file(conn, source, spooled, REJECTED, loaded_at)
                report.files_rejected.append(file_report)
                progress(f"{source.name}: {file.relative}: REJECTED, nothing loaded: {file_report.error}")
                continue
            report.files_loaded.append(file_report)
            progress(
                f"{source.name}: {file.relative}: {file_report.rows_loaded:,} loaded, "
                f"{file_report.rows_quarantined:,} quarantined of {file_report.rows_read:,} read"
                + (f", {file_report.erased_subject:,} of erased people dropped" if file_report.erased_subject else "")
            )
            if archive_dir is not None:
                _archive(file.path, archive_dir, source, file.digest)
                report.files_archived += 1
    if report.files_loaded:
        with warehouse.connect() as conn:
            analyze_after_load(conn, source.qualified_table)
    report.seconds = time.perf_counter() - started
    return report


def _erasure_guard(warehouse: Warehouse) -> ErasureGuard | None:
    """The erased subjects' keyed hashes, when there are any (the key is read only then)."""
    with warehouse.connect() as conn:
        if not conn.table_exists("ops", "erasure_proofs") or not conn.scalar(
                "SELECT count(*) FROM ops.erasure_proofs"):
            return None
        from dagster_project.settings import privacy_key

        return ErasureGuard.load(conn, privacy_key(warehouse.settings.data_dir))


def _load_or_reject(warehouse: Warehouse, source: Source, spooled: SpooledFile, loaded_at: str,
                    limits: ReadLimits) -> None:
    """Load one spooled file in one transaction; a value the warehouse refuses rejects the file
    (rolled back whole, so its counts start again from nothing loaded)."""
    try:
        with warehouse.connect() as conn:
            _load_spooled(conn, source, spooled, loaded_at, limits)
            _record_file(conn, source, spooled, LOADED, loaded_at)
    except Exception as error:
        if not _is_content_error(error):
            raise
        report = spooled.report
        report.rows_loaded = report.rows_quarantined = 0
        report.reasons.clear()
        report.error = _refusal(error)


def _refusal(error: Exception) -> str:
    """What the warehouse refused, without the value itself: both engines quote it in their messages,
    and it may be an address."""
    code = getattr(getattr(error, "diag", None), "sqlstate", None)
    column = re.search(r"column \"?(\w+)", str(error))
    where = f" in column {column.group(1)}" if column else ""
    return (f"the warehouse refused a value of this file{where} ({type(error).__name__}"
            f"{', SQLSTATE ' + code if code else ''}); fix the export and drop it again")


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


def outstanding_rejections(warehouse: Warehouse, source: Source, landing_dir: Path) -> list[tuple[str, str]]:
    """(file, error) of rejected files still waiting in the landing directory with no later load of
    the same name: what an operator has to fix (deleting the file also settles it)."""
    ensure_raw_tables(warehouse)
    with warehouse.connect() as conn:
        rows = conn.fetchall(
            "SELECT file, error FROM raw.ingested_files AS f WHERE source = ? AND status = ? AND NOT EXISTS ("
            "  SELECT 1 FROM raw.ingested_files AS later WHERE later.source = f.source AND later.file = f.file"
            "  AND later.loaded_at > f.loaded_at) ORDER BY file",
            [source.name, REJECTED])
    return [(file, error) for file, error in rows if (landing_dir / file).exists()]


def table_totals(warehouse: Warehouse, source: Source) -> tuple[int, int]:
    """Rows in the source's raw table and rows of the source in raw.quarantine, whatever run loaded them."""
    with warehouse.connect() as conn:
        return (int(conn.scalar(f"SELECT count(*) FROM {source.qualified_table}")),
                int(conn.scalar("SELECT count(*) FROM raw.quarantine WHERE source = ?", [source.name])))
