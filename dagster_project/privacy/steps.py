"""The steps of an erasure and of an access request, in order (docs/design/privacy.md, section 3.3), each
`step(context, request) -> counts`, idempotent, never naming an identifier in what it returns or raises.

Erasure:
    resolve         the request's line -> the person's whole working set, kept in ops.privacy_subjects while
                    the request is open (every later step destroys what resolution needs)
    suppress        erasure proofs (keyed hashes) first: from this commit on they cannot be mailed
    crm_database, hubspot, sendgrid
                    the CRM contact and the provider's contact deleted, the address suppressed at SendGrid
                    (early: they are the slowest to succeed; a destination never configured is recorded skipped)
    landing_files   landing and archive files rewritten without the person's records, line numbers kept
                    (before the rows: a concurrent ingest then never reloads the old content)
    warehouse_rows  every row of every table holding one of their identifiers (raw, models, ops)
    files           their .eml files, the previews that sampled them, their earlier access exports
    rebuild         the dbt tables rebuilt from what is left (once per run: every erasure of the run deletes
                    first, process.py)
    verify          every table and file Mailroom owns scanned: a hit sends the steps that own it round again
    forget          the working set and the request's own landing line removed; the erasure entry audited
Access: resolve, export (JSON and HTML), forget.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from dagster_project.ingest.sources import SOURCES
from dagster_project.privacy import audit
from dagster_project.privacy.access import build_export, write_export
from dagster_project.privacy.erase import KEPT_TABLES, erase_rows, write_proofs
from dagster_project.privacy.keys import SubjectKeys
from dagster_project.privacy.providers import ProviderEraseError
from dagster_project.privacy.requests import read_requests
from dagster_project.privacy.rewrite import (
    IdentifierMatcher,
    RewriteError,
    files_holding,
    record_rewrite,
    rewrite_file,
)
from dagster_project.privacy.runner import NeedsReview, OpenRequestRow, Skipped, Step, StepFailed
from dagster_project.privacy.state import LANDING_FOLDER
from dagster_project.privacy.subjects import WorkingSet, resolve, scan
from dagster_project.settings import Settings
from dagster_project.warehouse import Connection, Warehouse, columns, ensure_table
from reverse_etl.outgoing import message_file_stem

SUBJECTS = "ops.privacy_subjects"
SUBJECT_COLUMNS = columns("request_id:VARCHAR identifier_type:VARCHAR identifier_value:VARCHAR requested:BOOLEAN")
PROVIDER_STEPS = ("crm_database", "hubspot", "sendgrid")
REBUILD = "rebuild"


@dataclass
class PrivacyContext:
    warehouse: Warehouse
    settings: Settings
    keys: SubjectKeys
    outbox_dir: Path
    export_dir: Path
    erasers: dict[str, object | None]  # step name -> an eraser (privacy/providers.py), None: not configured
    clock: Callable[[], datetime]
    rebuild: Callable[[], dict] | None = None  # None: `dbt run` of the project's tables
    archive_dir: Path | None = None  # MAILROOM_INGEST_ARCHIVE_DIR: loaded landing files moved there
    audience_relations: dict[str, str] = field(default_factory=dict)  # campaign -> audience model, for previews


def erasure_steps() -> list[Step]:
    return [Step("resolve", resolve_step), Step("suppress", suppress_step),
            *(Step(name, _provider_step(name), blocking=False) for name in PROVIDER_STEPS),
            Step("landing_files", landing_files_step), Step("warehouse_rows", warehouse_rows_step),
            Step("files", files_step), Step(REBUILD, rebuild_step), Step("verify", verify_step),
            Step("forget", forget_step, final=True)]


def access_steps() -> list[Step]:
    return [Step("resolve", resolve_step), Step("export", export_step), Step("forget", forget_access_step, final=True)]


def resolve_step(context: PrivacyContext, request: OpenRequestRow) -> dict:
    requested = _requested_identifiers(context, request)
    with context.warehouse.connect() as conn:
        ensure_table(conn, SUBJECTS, SUBJECT_COLUMNS, [("request_id", "identifier_type", "identifier_value")],
                     audit.SEAL_LOCK)
        working = resolve(conn, requested)
        if working.ambiguous and request.type == "erase":
            kinds = ", ".join(sorted({kind for kind, _ in working.ambiguous}))
            raise NeedsReview(f"the requested {kinds} is shared by several people in identity resolution "
                              "(marts.identity_resolution_audit): erasing it would erase others too. Decide who the "
                              "request is about, then send a request naming their user_id")
        conn.execute(f"DELETE FROM {SUBJECTS} WHERE request_id = ?", [request.request_id])
        for kind, value in sorted(working.identifiers):
            conn.execute(f"INSERT INTO {SUBJECTS} VALUES (?, ?, ?, ?)",
                         [request.request_id, kind, value, (kind, value) in requested])
    return {"customers": len(working.customer_ids),
            "identifiers": dict(sorted(Counter(kind for kind, _ in working.identifiers).items()))}


def suppress_step(context: PrivacyContext, request: OpenRequestRow) -> dict:
    now = context.clock()
    with context.warehouse.connect() as conn:
        working = _working_set(conn, request)
        proofs = write_proofs(conn, working, context.keys, request.request_id, now)
        audit.record(conn, "erasure_started", {"request_id": request.request_id,
                                               "subject_keys": request.subject_keys, "proofs_written": proofs}, now)
    return {"proofs_written": proofs}


def _provider_step(name: str) -> Callable:
    def step(context: PrivacyContext, request: OpenRequestRow) -> dict:
        eraser = context.erasers.get(name)
        if eraser is None:
            raise Skipped(f"{name} is not configured")
        with context.warehouse.connect() as conn:
            values = _working_set(conn, request).values()
        try:
            return eraser.erase(sorted(values.get("email", ())), sorted(values.get("crm_contact_id", ())),
                                sorted(values.get("customer_id", ())))
        except ProviderEraseError as error:
            raise StepFailed(str(error)) from None
    step.__name__ = f"{name}_step"
    return step


def landing_files_step(context: PrivacyContext, request: OpenRequestRow) -> dict:
    """Every landing file but the privacy requests (`forget` rewrites those last), and the archive."""
    with context.warehouse.connect() as conn:
        matcher = IdentifierMatcher(_working_set(conn, request).identifiers)
    landing = Path(context.settings.landing_dir)
    files = records = 0
    for root in _data_roots(context, include_outputs=False):
        for path in _files_under(root):
            relative = path.relative_to(landing).as_posix() if landing in path.parents else ""
            source = relative.split("/")[0]
            if source == LANDING_FOLDER:
                continue

            def tell_ingest(outcome, source=source, relative=relative):
                with context.warehouse.connect() as conn:  # so ingest never loads the rewritten file again
                    record_rewrite(conn, source, relative, outcome, context.clock())

            try:
                outcome = rewrite_file(path, matcher, request.request_id,
                                       tell_ingest if source in SOURCES else None)
            except RewriteError as error:
                raise StepFailed(str(error).replace(str(path), _shown(context, path))) from None
            if outcome is not None:
                files, records = files + 1, records + outcome.records_dropped
    return {"files_rewritten": files, "records_dropped": records}


def warehouse_rows_step(context: PrivacyContext, request: OpenRequestRow) -> dict:
    with context.warehouse.connect() as conn:
        erasure = erase_rows(conn, _working_set(conn, request), context.clock())
    if erasure.waiting:
        raise StepFailed(f"{erasure.waiting} of the person's messages are being handed over right now; the rows "
                         "are deleted at the next attempt, once the hand-over settled")
    return {"rows_deleted": dict(sorted(erasure.deleted.items()))}


def files_step(context: PrivacyContext, request: OpenRequestRow) -> dict:
    """Outbox .eml files by message id, previews that sampled the person (written again without them),
    and earlier access exports about them."""
    from dagster_project.personalization.previews import write_campaign_previews

    with context.warehouse.connect() as conn:
        working = _working_set(conn, request)
        latest_runs = dict(conn.fetchall("SELECT campaign_id, max(run_key) FROM ops.campaign_messages "
                                         "GROUP BY campaign_id")) if conn.table_exists("ops", "campaign_messages") \
            else {}
    matcher = IdentifierMatcher(working.identifiers)
    counts = Counter()
    for path in _outbox_files(context, working):
        path.unlink()
        counts["outbox_files_deleted"] += 1
    previews = Path(context.settings.previews_dir)
    for folder in sorted(p for p in previews.iterdir() if p.is_dir()) if previews.is_dir() else []:
        if not files_holding([folder], matcher):
            continue
        campaign_id = folder.name
        if campaign_id in latest_runs:
            write_campaign_previews(context.warehouse, campaign_id, latest_runs[campaign_id], previews,
                                    context.audience_relations.get(campaign_id))
            counts["previews_rewritten"] += 1
        for hit in files_holding([folder], matcher):  # a campaign without messages left: nothing to sample
            Path(hit.path).unlink()
            counts["preview_files_deleted"] += 1
    exports = Path(context.export_dir)
    for folder in sorted(p for p in exports.iterdir() if p.is_dir()) if exports.is_dir() else []:
        if files_holding([folder], matcher):
            shutil.rmtree(folder)
            counts["access_exports_deleted"] += 1
    return dict(sorted(counts.items()))


def rebuild_step(context: PrivacyContext, request: OpenRequestRow) -> dict:
    return context.rebuild() if context.rebuild is not None else dbt_rebuild(context.settings)


def dbt_rebuild(settings: Settings) -> dict:
    """`dbt run` of every table model (views store nothing), in a subprocess like every dbt run."""
    from dagster_project.dbt_project import DBT_PROJECT_DIR
    from dagster_project.resources import dbt_executable

    target = Path(settings.data_dir) / "privacy" / "dbt-target"
    result = subprocess.run(
        [dbt_executable(), "run", "--exclude", "config.materialized:view", "--target", settings.dbt_target,
         "--target-path", str(target)],
        cwd=DBT_PROJECT_DIR, capture_output=True, text=True,
        env={**os.environ, **settings.dbt_environment(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
    if result.returncode != 0:
        tail = [line for line in result.stdout.splitlines() if "ERROR" in line or "Error" in line][-5:]
        raise StepFailed("dbt run failed (" + ("; ".join(tail) or f"exit {result.returncode}")[:800] +
                         "): fix the model and the next run rebuilds")
    return {"dbt": "run"}


def verify_step(context: PrivacyContext, request: OpenRequestRow) -> dict:
    with context.warehouse.connect() as conn:
        working = _working_set(conn, request)
        table_hits = scan(conn, working, skip_tables=KEPT_TABLES)
        tables = len({(schema_table) for schema_table, in conn.fetchall(
            "SELECT DISTINCT table_schema || '.' || table_name FROM information_schema.columns WHERE table_schema IN "
            "('raw', 'staging', 'intermediate', 'marts', 'campaigns', 'journeys', 'ops')")})
    matcher = IdentifierMatcher(working.identifiers)
    roots = _data_roots(context, include_outputs=True)
    landing = Path(context.settings.landing_dir)
    file_hits = [hit for hit in files_holding(roots, matcher)
                 if not (landing in Path(hit.path).parents
                         and Path(hit.path).relative_to(landing).parts[0] == LANDING_FOLDER)]
    file_hits += [_Found(str(path)) for path in _outbox_files(context, working)]
    if table_hits or file_hits:
        places = [f"{hit.table}.{hit.column} ({hit.identifier_type}, {hit.rows} rows)" for hit in table_hits[:10]]
        places += [f"{_shown(context, Path(hit.path))}" for hit in file_hits[:10]]
        raise StepFailed(f"the person is still in {len(table_hits)} columns and {len(file_hits)} files: "
                         f"{'; '.join(places)}. The steps that remove them run again",
                         redo=("landing_files", "warehouse_rows", "files", "rebuild"))
    return {"tables_scanned": tables, "roots_scanned": len([r for r in roots if r.exists()]), "hits": 0}


def forget_step(context: PrivacyContext, request: OpenRequestRow) -> dict:
    now = context.clock()
    with context.warehouse.connect() as conn:
        matcher = IdentifierMatcher(_working_set(conn, request).identifiers)
    lines = 0
    folder = Path(context.settings.landing_dir) / LANDING_FOLDER
    for path in _files_under(folder):
        try:
            outcome = rewrite_file(path, matcher, request.request_id)
        except RewriteError as error:
            raise StepFailed(str(error).replace(str(path), _shown(context, path))) from None
        lines += outcome.lines_blanked if outcome else 0
    with context.warehouse.connect() as conn:
        conn.execute(f"DELETE FROM {SUBJECTS} WHERE request_id = ?", [request.request_id])
        steps = {step: json.loads(detail) if detail else {} for step, detail in conn.fetchall(
            "SELECT step, detail_json FROM ops.privacy_request_steps WHERE request_id = ? AND step <> 'forget'",
            [request.request_id])}
        audit.record(conn, "erasure", {"request_id": request.request_id, "subject_keys": request.subject_keys,
                                       "steps": _audit_safe(steps)}, now)
    return {"request_lines_blanked": lines}


def export_step(context: PrivacyContext, request: OpenRequestRow) -> dict:
    now = context.clock()
    with context.warehouse.connect() as conn:
        document = build_export(conn, _working_set(conn, request), request.request_id, now)
        files = write_export(context.export_dir, document)
        sections = {name: len(section["rows"]) for name, section in document["sections"].items()}
        audit.record(conn, "access", {"request_id": request.request_id, "subject_keys": request.subject_keys,
                                      "sections": sections, "export_sha256": files.sha256}, now)
    return {"export": _shown(context, files.json_path), "rows": sum(sections.values())}


def forget_access_step(context: PrivacyContext, request: OpenRequestRow) -> dict:
    with context.warehouse.connect() as conn:
        forgotten = conn.execute(f"DELETE FROM {SUBJECTS} WHERE request_id = ?", [request.request_id])
    return {"working_set_rows_deleted": forgotten}


@dataclass(frozen=True)
class _Found:
    path: str


def _requested_identifiers(context: PrivacyContext, request: OpenRequestRow) -> list[tuple[str, str]]:
    """The identifiers the request names, from its landing line (the warehouse holds only their keyed hashes)."""
    path = Path(context.settings.landing_dir) / request.source_file
    if path.exists():
        for candidate in read_requests(path, request.source_file, context.clock())[0]:
            if candidate.request_id == request.request_id and candidate.content_sha256 == request.content_sha256:
                return candidate.identifiers()
    raise StepFailed(f"the request's line ({request.source_file} line {request.source_line}) is gone or changed: "
                     "put the file back, or send the request again under a new request_id")


def _working_set(conn: Connection, request: OpenRequestRow) -> WorkingSet:
    rows = conn.fetchall(f"SELECT identifier_type, identifier_value, requested FROM {SUBJECTS} WHERE request_id = ?",
                         [request.request_id]) if conn.table_exists("ops", "privacy_subjects") else []
    if not rows:
        raise StepFailed("the working set is missing: the resolve step runs again", redo=("resolve",))
    working = WorkingSet([(kind, value) for kind, value, requested in rows if requested],
                         identifiers={(kind, value) for kind, value, _ in rows})
    working.customer_ids = {value for kind, value, _ in rows if kind == "customer_id"}
    return working


def _data_roots(context: PrivacyContext, include_outputs: bool) -> list[Path]:
    """Where Mailroom keeps files about people. The outbox is not walked (millions of files after a few months):
    the person's .eml files are found by their message ids."""
    roots = [Path(context.settings.landing_dir)] + ([Path(context.archive_dir)] if context.archive_dir else [])
    if include_outputs:
        roots += [Path(context.settings.previews_dir), Path(context.export_dir)]
    return roots


def _outbox_files(context: PrivacyContext, working: WorkingSet) -> list[Path]:
    outbox = Path(context.outbox_dir)
    stems = sorted({message_file_stem(message_id) for message_id in working.values().get("message_id", ())})
    return [path for folder in (sorted(p for p in outbox.iterdir() if p.is_dir()) if outbox.is_dir() else [])
            for stem in stems for path in (folder / f"{stem}.eml", folder / f"{stem}.eml.partial")
            if path.exists()]


def _files_under(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def _shown(context: PrivacyContext, path: Path) -> str:
    try:
        return path.relative_to(context.settings.data_dir).as_posix()
    except ValueError:
        return str(path)


def _audit_safe(value):
    """Counts for the audit chain: its encoding takes no floats."""
    if isinstance(value, dict):
        return {str(k): _audit_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_audit_safe(v) for v in value]
    if isinstance(value, float):
        return str(value)
    return value
