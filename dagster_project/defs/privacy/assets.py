"""The privacy assets (docs/design/privacy.md):

    privacy/privacy_requests  (daily run) takes in landing privacy/*.jsonl; its check privacy_requests_on_time
                              warns a week before an open request's deadline and fails once one has passed
    ops/audit_log             (daily run) the audit chain, sealed and verified
    privacy/request_work      (job privacy_requests, its own schedule) every open request worked through:
                              erasures step by step (privacy/steps.py), access exports written


Sealing records the send ledger's new outcomes and chains every entry waiting (consent and provider files
recorded them when they loaded); the check `audit_chain_verified` walks the whole chain and fails at the
first broken link. With MAILROOM_AUDIT_ANCHOR_FILE set, the chain must also reach every anchor in it, and
a verified head is appended to it."""

from datetime import datetime, timedelta, timezone

import dagster as dg

from dagster_project.defs.kinds import warehouse_kind
from dagster_project.privacy.audit import read_anchors, verify, write_anchor
from dagster_project.privacy.audit_sources import seal_all
from dagster_project.privacy.keys import SubjectKeys
from dagster_project.privacy.state import open_requests, take_in_requests
from dagster_project.resources import WarehouseResource
from dagster_project.settings import privacy_cron, privacy_deadline_days, privacy_key

AUDIT_LOG = dg.AssetKey(["ops", "audit_log"])
PRIVACY_GROUP = "privacy"


PRIVACY_REQUESTS = dg.AssetKey(["privacy", "privacy_requests"])
WARN_BEFORE_DUE = timedelta(days=7)


@dg.asset(
    key=PRIVACY_REQUESTS,
    group_name=PRIVACY_GROUP,
    owners=["team:data-platform"],
    kinds={"python", "table", warehouse_kind()},
    description="ops.privacy_requests: every erasure and access request received in landing privacy/*.jsonl (or "
    "through `python -m dagster_project.privacy request`), with its state and deadline "
    "(MAILROOM_PRIVACY_DEADLINE_DAYS, default 30). Lines that are not requests are kept with their reason in "
    "ops.privacy_request_rejections. Identifiers are held as keyed hashes only.",
    check_specs=[dg.AssetCheckSpec(
        "privacy_requests_on_time", asset=PRIVACY_REQUESTS,
        description="Warns when an open request is due within 7 days; fails once one is past its deadline.")],
)
def privacy_requests(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    store, settings = warehouse.warehouse(), warehouse.settings
    report = take_in_requests(store, settings.landing_dir, SubjectKeys(privacy_key(settings.data_dir)), now,
                              privacy_deadline_days())
    for rejection in report.rejected:
        context.log.warning(f"{rejection.source_file} line {rejection.source_line}: {rejection.reason}")
    with store.connect() as conn:
        pending = open_requests(conn)
    overdue = [r for r in pending if r.due_at < now]
    soon = [r for r in pending if now <= r.due_at < now + WARN_BEFORE_DUE]
    rows = [f"| {r.request_id} | {r.type} | {r.state} | {r.received_at:%Y-%m-%d} | {r.due_at:%Y-%m-%d} |"
            for r in pending]
    table = "\n".join(["| request | type | state | received | due |", "|---|---|---|---|---|", *rows]) \
        if rows else "No open requests."
    summary = (f"{len(overdue)} open request(s) past their deadline: {', '.join(r.request_id for r in overdue)}"
               if overdue else f"{len(soon)} open request(s) due within 7 days" if soon
               else f"{len(pending)} open request(s), none due within 7 days")
    return dg.MaterializeResult(
        metadata={"new_requests": dg.MetadataValue.int(len(report.new_requests)),
                  "open_requests": dg.MetadataValue.int(len(pending)),
                  "rejected_lines_this_run": dg.MetadataValue.int(len(report.rejected)),
                  "open": dg.MetadataValue.md(table)},
        check_results=[dg.AssetCheckResult(
            check_name="privacy_requests_on_time", asset_key=PRIVACY_REQUESTS, passed=not overdue and not soon,
            severity=dg.AssetCheckSeverity.ERROR if overdue else dg.AssetCheckSeverity.WARN,
            metadata={"summary": dg.MetadataValue.text(summary)})])


@dg.asset(
    key=AUDIT_LOG,
    deps=[*(dg.AssetKey(["raw", table]) for table in ("consent_events", "crm_contacts", "esp_events")),
          PRIVACY_REQUESTS],
    group_name=PRIVACY_GROUP,
    owners=["team:data-platform"],
    kinds={"python", "table", warehouse_kind()},
    description="ops.audit_log: an append-only, SHA-256 hash-chained record of consent files, provider "
    "suppressions, privacy requests and send outcomes (counts, file digests and keyed hashes, never a person's "
    "identifiers). Any edit, deletion or reordering breaks the chain; the check says where.",
    check_specs=[dg.AssetCheckSpec(
        "audit_chain_verified", asset=AUDIT_LOG,
        description="Walks the chain from its first entry: contiguous seq, each prev_hash the previous entry's "
        "hash, each hash recomputed; and it reaches every anchor of MAILROOM_AUDIT_ANCHOR_FILE.")],
)
def audit_log(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    store, anchors_file = warehouse.warehouse(), warehouse.settings.audit_anchor_file
    swept, sealed = seal_all(store, now)
    anchors = read_anchors(anchors_file) if anchors_file and anchors_file.exists() else []
    with store.connect() as conn:
        result = verify(conn, anchors)
        anchored = write_anchor(conn, anchors_file, now) if result.ok and anchors_file else None
        kinds = conn.fetchall("SELECT kind, count(*) FROM ops.audit_log GROUP BY kind ORDER BY kind")
    (context.log.info if result.ok else context.log.error)(result.describe())
    metadata = {
        "entries": dg.MetadataValue.int(result.entries),
        "sealed_this_run": dg.MetadataValue.int(sealed),
        "ledger_rows_audited_this_run": dg.MetadataValue.int(swept),
        "entries_by_kind": dg.MetadataValue.md("\n".join(["| kind | entries |", "|---|---|",
                                                          *(f"| {kind} | {n:,} |" for kind, n in kinds)])),
        "head": dg.MetadataValue.text(f"seq {result.head.seq} {result.head.entry_hash}" if result.head else "empty"),
        "anchors_checked": dg.MetadataValue.int(len(anchors)),
    }
    if anchored:
        metadata["anchored"] = dg.MetadataValue.text(f"seq {anchored.seq} in {anchors_file}")
    return dg.MaterializeResult(metadata=metadata, check_results=[dg.AssetCheckResult(
        check_name="audit_chain_verified", asset_key=AUDIT_LOG, passed=result.ok,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"result": dg.MetadataValue.text(result.describe()),
                  **({"broken_at_seq": dg.MetadataValue.int(result.broken_at)} if result.broken_at else {})})])


REQUEST_WORK = dg.AssetKey(["privacy", "request_work"])
PRIVACY_JOB = "privacy_requests"


@dg.asset(
    key=REQUEST_WORK,  # no upstream: it takes requests in itself, so the daily intake never makes it stale
    group_name=PRIVACY_GROUP,
    owners=["team:data-platform"],
    kinds={"python", "dbt", warehouse_kind()},
    description="Works through every open privacy request. An erasure resolves the person through identity "
    "resolution, writes keyed-hash proofs that keep them unmailable, deletes them at the CRM, HubSpot and SendGrid "
    "(where configured), rewrites the landing and archive files without their records, deletes their rows from "
    "every table, their .eml files and previews, rebuilds the dbt tables, and scans every table and file to prove "
    "they are gone. An access request writes one JSON and one HTML export (MAILROOM_PRIVACY_EXPORT_DIR). Each step is "
    "recorded in ops.privacy_request_steps; a failed one is retried with back-off, never skipped.",
)
def request_work(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    from dagster_project.privacy.process import privacy_context, process_requests

    report = process_requests(privacy_context(warehouse.settings))
    for line in report.lines():
        context.log.info(line)
    rows = [f"| {o.request_id} | {o.type} | {o.state} | {len(o.steps_done)} | "
            f"{'; '.join(f'{s}: {e}' for s, e in o.failed.items()) or ''} |" for o in report.outcomes]
    return dg.MaterializeResult(metadata={
        "requests_worked": dg.MetadataValue.int(len(report.outcomes)),
        "completed": dg.MetadataValue.int(sum(o.state == "completed" for o in report.outcomes)),
        "failing": dg.MetadataValue.int(sum(bool(o.failed) for o in report.outcomes)),
        "leased_by_another_run": dg.MetadataValue.int(report.leased_elsewhere),
        "requests": dg.MetadataValue.md("\n".join(["| request | type | state | steps done | failing |",
                                                   "|---|---|---|---|---|", *rows]) if rows else "No open requests."),
    })


@dg.definitions
def privacy() -> dg.Definitions:
    job = dg.define_asset_job(
        PRIVACY_JOB, selection=dg.AssetSelection.assets(PRIVACY_REQUESTS, REQUEST_WORK, AUDIT_LOG),
        description="Take in privacy requests, work through every open erasure and access request, seal and verify "
        "the audit chain.")
    schedule = dg.ScheduleDefinition(
        job=job, cron_schedule=privacy_cron(), execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Works through privacy requests daily (MAILROOM_PRIVACY_CRON, default 02:00 UTC; off until an "
        "operator turns it on).")
    return dg.Definitions(assets=[privacy_requests, request_work, audit_log], jobs=[job], schedules=[schedule])
