"""The diff, set-based in the warehouse: hash every row of the model, compare with the acknowledged
snapshot, and keep the rows that are due in a temporary table (numbered, so batches are read by range).

Kinds of due rows: new (no snapshot), changed (a different hash), retrying (the destination refused an
earlier version; it is sent again until accepted). Unchanged rows are skipped; rows that left the model
are reported and left alone in the CRM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dagster_project.warehouse import Connection
from reverse_etl.sync.errors import SyncError
from reverse_etl.sync.relation import Relation, literal, quote

PENDING = "sync_pending"
KINDS = ("new", "changed", "retrying")
SAMPLE_SIZE = 5


@dataclass
class SyncPlan:
    model: str
    destination: str
    total: int = 0  # rows in the model
    due: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    samples: dict[str, list[str]] = field(default_factory=dict)  # kind -> a few keys
    unchanged: int = 0
    removed_from_model: int = 0  # acknowledged once, no longer in the model: left alone in the CRM

    @property
    def planned(self) -> int:
        return sum(self.due.values())


def build_plan(conn: Connection, relation: Relation, destination: str) -> SyncPlan:
    """Fill the temporary table of due rows and count what the run will do."""
    plan = SyncPlan(model=relation.name, destination=destination)
    key = relation.key_sql("m")
    state = f"destination = {literal(destination)} AND model = {literal(relation.name)}"
    duplicates = conn.fetchall(f"SELECT {key} FROM {relation.sql} AS m GROUP BY 1 HAVING count(*) > 1 LIMIT 5")
    if duplicates:
        raise SyncError(f"{relation.name} has more than one row per key {list(relation.key)} (e.g. "
                        f"{', '.join(str(d[0]) for d in duplicates)}); the sync needs one row per contact")
    null_keys = int(conn.scalar(f"SELECT count(*) FROM {relation.sql} AS m WHERE {key} IS NULL"))
    if null_keys:
        raise SyncError(f"{relation.name} has {null_keys} row(s) with a NULL key {list(relation.key)}; "
                        "every row needs its key to be synced")
    conn.execute(f"DROP TABLE IF EXISTS {PENDING}")
    columns = ", ".join(f"c.{quote(c.name)}" for c in relation.columns)
    conn.execute(
        f"CREATE TEMPORARY TABLE {PENDING} AS "
        f"SELECT row_number() OVER (ORDER BY c._sync_key) AS _sync_n, c._sync_key, c._sync_hash, "
        "CASE WHEN r.sync_key IS NOT NULL THEN 'retrying' WHEN s.row_hash IS NULL THEN 'new' ELSE 'changed' END "
        f"AS _sync_kind, {columns} "
        f"FROM (SELECT m.*, {key} AS _sync_key, {relation.hash_sql(conn.kind, 'm')} AS _sync_hash "
        f"      FROM {relation.sql} AS m) AS c "
        f"LEFT JOIN (SELECT sync_key, row_hash FROM ops.sync_snapshots WHERE {state}) AS s ON s.sync_key = c._sync_key "
        f"LEFT JOIN (SELECT sync_key FROM ops.sync_rejections WHERE {state}) AS r ON r.sync_key = c._sync_key "
        "WHERE s.row_hash IS NULL OR s.row_hash <> c._sync_hash"
    )
    conn.execute(f"CREATE INDEX {PENDING}__n ON {PENDING} (_sync_n)")
    plan.total = int(conn.scalar(f"SELECT count(*) FROM {relation.sql}"))
    for kind, count in conn.fetchall(f"SELECT _sync_kind, count(*) FROM {PENDING} GROUP BY 1"):
        plan.due[kind] = int(count)
    for kind in KINDS:
        if plan.due[kind]:
            plan.samples[kind] = [row[0] for row in conn.fetchall(
                f"SELECT _sync_key FROM {PENDING} WHERE _sync_kind = ? ORDER BY _sync_n LIMIT {SAMPLE_SIZE}", [kind])]
    plan.unchanged = plan.total - plan.planned
    # EXCEPT, not NOT EXISTS: PostgreSQL planned the anti-join on fresh, unanalyzed tables as a nested
    # loop and took over ten minutes at 100K contacts.
    plan.removed_from_model = int(conn.scalar(
        f"SELECT count(*) FROM (SELECT sync_key FROM ops.sync_snapshots WHERE {state} "
        f"EXCEPT SELECT {key} FROM {relation.sql} AS m) AS removed"))
    return plan


def clear_stale_rejections(conn: Connection, relation: Relation, destination: str) -> int:
    """Rejections of rows that are back to the version the destination acknowledged: nothing to retry."""
    key = relation.key_sql("m")
    return conn.execute(
        "DELETE FROM ops.sync_rejections WHERE destination = ? AND model = ? "
        f"AND sync_key NOT IN (SELECT _sync_key FROM {PENDING}) "
        f"AND sync_key IN (SELECT {key} FROM {relation.sql} AS m)",
        [destination, relation.name],
    )


def due_rows(conn: Connection, relation: Relation, after: int, limit: int) -> list[tuple[int, str, str, dict]]:
    """(n, key, hash, {column: value}) of the due rows numbered after..after+limit."""
    names = [c.name for c in relation.columns]
    rows = conn.fetchall(
        f"SELECT _sync_n, _sync_key, _sync_hash, {', '.join(quote(n) for n in names)} FROM {PENDING} "
        "WHERE _sync_n > ? AND _sync_n <= ? ORDER BY _sync_n", [after, after + limit])
    return [(int(r[0]), r[1], r[2], dict(zip(names, r[3:]))) for r in rows]


def drop_pending(conn: Connection) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {PENDING}")
