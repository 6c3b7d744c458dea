"""Sync state in the warehouse, per (destination, model), where destination is the target's identity
(`database:postgresql://crm.internal:5432/crm#crm_contacts`, `hubspot:portal:62515`; see
destinations/base.py), so a new table, database or portal starts with a full sync:

    ops.sync_snapshots   the hash of each row as the destination last acknowledged it
    ops.sync_rejections  rows the destination refused, with its reason; sent again every run until accepted
    ops.sync_runs        one row per run: what was planned, sent, acknowledged, rejected and skipped

A row is due when its current hash differs from its snapshot. The snapshot moves only for rows the
destination acknowledged, in the same transaction that records the batch's rejections, committed after
each batch: a crash loses at most the acknowledgement of one batch, whose rows are simply sent again
(upserts keyed by the contact's id, so a repeat changes nothing).

Rows written before targets were identified carry the bare destination kind (`database`, `hubspot`).
They are left as they were: they describe a target that can no longer be told apart, so the first run
under an identity sends every row once, and deleting them loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from dagster_project.warehouse import Connection, columns

SNAPSHOTS = columns("destination:VARCHAR model:VARCHAR sync_key:VARCHAR row_hash:VARCHAR acknowledged_at:TIMESTAMP")
REJECTIONS = columns("destination:VARCHAR model:VARCHAR sync_key:VARCHAR row_hash:VARCHAR reason:VARCHAR "
                     "rejected_at:TIMESTAMP attempts:INTEGER")
RUNS = columns(
    "run_id:VARCHAR destination:VARCHAR model:VARCHAR mode:VARCHAR dry_run:BOOLEAN started_at:TIMESTAMP "
    "finished_at:TIMESTAMP rows_planned:INTEGER rows_sent:INTEGER rows_acknowledged:INTEGER rows_rejected:INTEGER "
    "rows_skipped:INTEGER rows_not_in_destination:INTEGER rows_failed:INTEGER rows_removed_from_model:INTEGER "
    "batches:INTEGER batches_failed:INTEGER seconds:FLOAT8 error:VARCHAR"
)
_STATE_KEY = ("destination", "model", "sync_key")


def ensure_state(conn: Connection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
    conn.create_table("ops.sync_snapshots", SNAPSHOTS)
    conn.create_table("ops.sync_rejections", REJECTIONS)
    conn.create_table("ops.sync_runs", RUNS)
    for table in ("sync_snapshots", "sync_rejections"):
        conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {table}__key ON ops.{table} ({', '.join(_STATE_KEY)})")
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS sync_runs__run_id ON ops.sync_runs (run_id)")


def acknowledge(conn: Connection, destination: str, model: str, hashes: Mapping[str, str], now: datetime) -> None:
    """The destination holds these rows as hashed: move their snapshot and clear their rejections."""
    if not hashes:
        return
    values = ", ".join("(?, ?, ?, ?, ?)" for _ in hashes)
    conn.execute(
        f"INSERT INTO ops.sync_snapshots AS s ({', '.join(c.name for c in SNAPSHOTS)}) VALUES {values} "
        "ON CONFLICT (destination, model, sync_key) DO UPDATE SET row_hash = excluded.row_hash, "
        "acknowledged_at = excluded.acknowledged_at",
        [v for key, row_hash in hashes.items() for v in (destination, model, key, row_hash, now)],
    )
    conn.execute("DELETE FROM ops.sync_rejections WHERE destination = ? AND model = ? AND sync_key = ANY(?)",
                 [destination, model, list(hashes)])


def reject(conn: Connection, destination: str, model: str, rejected: Mapping[str, tuple[str, str]],
           now: datetime) -> None:
    """rejected: key -> (row_hash, reason). attempts counts the runs that sent the row and were refused."""
    if not rejected:
        return
    values = ", ".join("(?, ?, ?, ?, ?, ?, 1)" for _ in rejected)
    conn.execute(
        f"INSERT INTO ops.sync_rejections AS r ({', '.join(c.name for c in REJECTIONS)}) VALUES {values} "
        "ON CONFLICT (destination, model, sync_key) DO UPDATE SET row_hash = excluded.row_hash, "
        "reason = excluded.reason, rejected_at = excluded.rejected_at, attempts = r.attempts + 1",
        [v for key, (row_hash, reason) in rejected.items()
         for v in (destination, model, key, row_hash, reason[:2000], now)],
    )


def acknowledged_count(conn: Connection, destination: str, model: str) -> int:
    return int(conn.scalar("SELECT count(*) FROM ops.sync_snapshots WHERE destination = ? AND model = ?",
                           [destination, model]))


def forget(conn: Connection, destination: str, model: str) -> int:
    """Drop the snapshot of a target that lost its rows: every row is due again. Rejections stay, so
    refused rows keep their reason and attempt count."""
    return conn.execute("DELETE FROM ops.sync_snapshots WHERE destination = ? AND model = ?", [destination, model])


def start_run(conn: Connection, run_id: str, destination: str, model: str, mode: str, dry_run: bool,
              started_at: datetime) -> None:
    conn.execute("INSERT INTO ops.sync_runs (run_id, destination, model, mode, dry_run, started_at) "
                 "VALUES (?, ?, ?, ?, ?, ?)", [run_id, destination, model, mode, dry_run, started_at])


def finish_run(conn: Connection, run_id: str, values: Mapping[str, object]) -> None:
    assignments = ", ".join(f"{name} = ?" for name in values)
    conn.execute(f"UPDATE ops.sync_runs SET {assignments} WHERE run_id = ?", [*values.values(), run_id])
