"""What goes into the audit chain, and when (docs/design/privacy.md, section 5). One entry per batch, with
counts, never per row and never a person's identifiers:

    consent      a consent or CRM landing file loaded: its name and sha256 (the archived file holds the rows),
                 rows loaded, counts by channel and status (or by the CRM's email_opt_out)
    suppression  a provider events file with unsubscribes, spam reports, bounces or drops: counts by event
    send         messages that reached a final state (accepted, failed, suppressed) since the last sweep,
                 per campaign, run and state: counts by destination and reason

Ingest entries are recorded in the load's own transaction, so an entry exists exactly when its rows do.
Ledger outcomes are swept: each row carries the state it was last audited in (`audited_state`), and one
UPDATE ... RETURNING marks and reads the rows that moved, so a row that moves again (failed, retried,
accepted) gets a second entry and none is counted twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime

from dagster_project.privacy import audit
from dagster_project.warehouse import Connection, Warehouse
from reverse_etl.ledger import FINISHED, ensure_ledger

SUPPRESSING_EVENTS = ("unsubscribe", "group_unsubscribe", "spamreport", "bounce", "dropped")
# ingest source -> (entry kind, what a row counts as (SQL over the incoming rows), which rows count)
AUDITED_SOURCES = {
    "consent": ("consent", "channel || ':' || status", "1 = 1"),
    "crm": ("consent", "case when email_opt_out then 'crm:opted_out' else 'crm:not_opted_out' end", "1 = 1"),
    "esp": ("suppression", "event", f"event in ({', '.join(repr(e) for e in SUPPRESSING_EVENTS)})"),
}


def incoming_counts(conn: Connection, source_name: str, incoming: str, is_new: str) -> dict[str, int] | None:
    """What the rows of `incoming` that `is_new` (SQL) marks count as; None when the source is not audited.
    Read before the rows are loaded (afterwards they are no longer new)."""
    if source_name not in AUDITED_SOURCES:
        return None
    _, label, counted = AUDITED_SOURCES[source_name]
    return {str(value): int(n) for value, n in conn.fetchall(
        f"SELECT coalesce({label}, '(none)'), count(*) FROM {incoming} AS incoming WHERE {is_new} AND {counted} "
        "GROUP BY 1 ORDER BY 1")}


def record_ingest(conn: Connection, source_name: str, counts: dict[str, int] | None, file: str, sha256: str,
                  rows_loaded: int, recorded_at: datetime) -> None:
    """The entry for a loaded landing file, in the load's transaction."""
    if counts is None:
        return
    kind = AUDITED_SOURCES[source_name][0]
    if kind == "suppression" and not counts:
        return  # opens and clicks decide nobody's mail
    audit.record(conn, kind, {"source": source_name, "file": file, "file_sha256": sha256, "rows": rows_loaded,
                              "counts": counts}, recorded_at)


def sweep_ledger(conn: Connection, recorded_at: datetime) -> int:
    """Record the ledger rows that reached a final state since they were last audited; returns how many."""
    if not conn.table_exists("ops", "send_ledger"):
        return 0
    ensure_ledger(conn)  # a ledger of an older version gets its audited_state column
    finals = ", ".join(f"'{state}'" for state in FINISHED)
    moved = conn.fetchall(
        f"UPDATE ops.send_ledger SET audited_state = state WHERE state IN ({finals}) "
        "AND (audited_state IS NULL OR audited_state <> state) "
        "RETURNING campaign_id, run_key, state, coalesce(destination, '(none)'), coalesce(reason, '(none)')")
    batches: dict[tuple, dict[str, Counter]] = defaultdict(lambda: {"destinations": Counter(), "reasons": Counter()})
    for campaign_id, run_key, state, destination, reason in moved:
        batch = batches[(campaign_id, run_key, state)]
        batch["destinations"][destination] += 1
        batch["reasons"][reason] += 1
    for (campaign_id, run_key, state), batch in sorted(batches.items()):
        audit.record(conn, "send", {"campaign_id": campaign_id, "run_key": run_key, "state": state,
                                    "messages": sum(batch["destinations"].values()),
                                    "destinations": dict(sorted(batch["destinations"].items())),
                                    "reasons": dict(sorted(batch["reasons"].items()))}, recorded_at)
    return len(moved)


def seal_all(warehouse: Warehouse, now: datetime) -> tuple[int, int]:
    """Sweep the ledger, record the configuration if it changed, then chain everything pending: (ledger rows
    swept, entries appended)."""
    from dagster_project.privacy.audit_config import record_config_if_changed

    with warehouse.connect() as conn:
        swept = sweep_ledger(conn, now)
        record_config_if_changed(conn, now)
    return swept, audit.seal(warehouse, now)
