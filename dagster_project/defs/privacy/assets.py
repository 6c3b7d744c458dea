"""ops/audit_log: the audit chain, sealed and verified by every daily run (docs/design/privacy.md, section 5).

Sealing records the send ledger's new outcomes and chains every entry waiting (consent and provider files
recorded them when they loaded); the check `audit_chain_verified` walks the whole chain and fails at the
first broken link. With MAILROOM_AUDIT_ANCHOR_FILE set, the chain must also reach every anchor in it, and
a verified head is appended to it."""

from datetime import datetime, timezone

import dagster as dg

from dagster_project.defs.kinds import warehouse_kind
from dagster_project.privacy.audit import read_anchors, verify, write_anchor
from dagster_project.privacy.audit_sources import seal_all
from dagster_project.resources import WarehouseResource

AUDIT_LOG = dg.AssetKey(["ops", "audit_log"])
PRIVACY_GROUP = "privacy"


@dg.asset(
    key=AUDIT_LOG,
    deps=[dg.AssetKey(["raw", table]) for table in ("consent_events", "crm_contacts", "esp_events")],
    group_name=PRIVACY_GROUP,
    owners=["team:data-platform"],
    kinds={"python", "table", warehouse_kind()},
    description="ops.audit_log: an append-only, SHA-256 hash-chained record of consent files, provider "
    "suppressions and send outcomes (counts and file digests, never a person's identifiers). Any edit, deletion "
    "or reordering breaks the chain; the check says where.",
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


@dg.definitions
def privacy() -> dg.Definitions:
    return dg.Definitions(assets=[audit_log])
