"""ops.send_ledger: one row per (campaign, run, customer) message and the state it is in.

    planned ──> suppressed                      (consent, suppression, frequency cap, expiry)
       │  ^
       v  │ (not accepted: retry, or the next destination)
    sending ──> accepted                        (with the provider's id)
       │
       └──> failed                              (refused for good, or retries exhausted: retryable)

Every move is a guarded UPDATE (`... WHERE state = <from>`), so a message can only move forward
from the state the sender saw, and the unique keys make a second row - a second send - impossible.
A row left in `sending` by a crash has an unknown outcome: reconcile.py settles it before any resend.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from dagster_project.warehouse import Connection, columns

PLANNED, SUPPRESSED, SENDING, ACCEPTED, FAILED = "planned", "suppressed", "sending", "accepted", "failed"
STATES = (PLANNED, SUPPRESSED, SENDING, ACCEPTED, FAILED)

SEND_LEDGER = columns(
    "message_id:VARCHAR campaign_id:VARCHAR run_key:VARCHAR customer_id:VARCHAR variant_id:VARCHAR "
    "timezone:VARCHAR state:VARCHAR reason:VARCHAR destination:VARCHAR attempts:INTEGER last_error:VARCHAR "
    "is_retryable:BOOLEAN provider_message_id:VARCHAR send_at:TIMESTAMP deliver_at:TIMESTAMP "
    "planned_at:TIMESTAMP sending_at:TIMESTAMP finished_at:TIMESTAMP"
)
UNIQUE_KEYS = (("message_id",), ("campaign_id", "run_key", "customer_id"))
_CHUNK = 5000  # ids per statement


class LedgerConflict(RuntimeError):
    """A row was not in the state the sender expected: another sender is running on this ledger."""


def ensure_ledger(conn: Connection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
    conn.create_table("ops.send_ledger", SEND_LEDGER)
    for key in UNIQUE_KEYS:
        conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS send_ledger__{'__'.join(key)} ON ops.send_ledger ({', '.join(key)})")
    conn.execute("CREATE INDEX IF NOT EXISTS send_ledger__state ON ops.send_ledger (state, campaign_id)")


def plan(conn: Connection, campaign_id: str, now: datetime) -> int:
    """Add every rendered message of the campaign the ledger does not hold yet, as planned."""
    has_customers = conn.table_exists("marts", "dim_customers")  # for each customer's timezone
    return conn.execute(
        "INSERT INTO ops.send_ledger (message_id, campaign_id, run_key, customer_id, variant_id, timezone, state, "
        "attempts, send_at, deliver_at, planned_at) "
        f"SELECT m.message_id, m.campaign_id, m.run_key, m.customer_id, m.variant_id, "
        f"{'c.timezone' if has_customers else 'NULL'}, '{PLANNED}', 0, m.send_at, m.send_at, ? "
        "FROM ops.campaign_messages AS m "
        + ("LEFT JOIN marts.dim_customers AS c ON c.customer_id = m.customer_id " if has_customers else "")
        + "WHERE m.campaign_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM ops.send_ledger AS l WHERE l.message_id = m.message_id "
        " OR (l.campaign_id = m.campaign_id AND l.run_key = m.run_key AND l.customer_id = m.customer_id))",
        [now, campaign_id],
    )


def requeue_retryable(conn: Connection, campaign_id: str) -> int:
    """Failed-but-retryable rows (every destination was down) go back to planned for this run."""
    return conn.execute(
        f"UPDATE ops.send_ledger SET state = '{PLANNED}', is_retryable = NULL "
        f"WHERE campaign_id = ? AND state = '{FAILED}' AND is_retryable",
        [campaign_id],
    )


def move(conn: Connection, message_ids: Sequence[str], from_state: str, to_state: str, *,
         now: datetime, strict: bool = True, **values) -> int:
    """Move rows from one state to the next, setting `values` (column=value; attempts=+1 counts up).
    strict: every row must have been in `from_state`, else LedgerConflict."""
    moved = 0
    assignments, params = [f"state = '{to_state}'"], []
    for column, value in values.items():
        if column == "attempts":
            assignments.append("attempts = coalesce(attempts, 0) + 1")
            continue
        assignments.append(f"{column} = ?")
        params.append(value)
    if to_state == SENDING:
        assignments.append("sending_at = ?")
        params.append(now)
    if to_state in (ACCEPTED, FAILED, SUPPRESSED):
        assignments.append("finished_at = ?")
        params.append(now)
    for chunk in _chunks(list(message_ids)):
        # "= ANY(list)" rather than "IN (?, ?, ...)": one array parameter, and DuckDB updates ~8x faster.
        moved += conn.execute(
            f"UPDATE ops.send_ledger SET {', '.join(assignments)} WHERE state = '{from_state}' AND message_id = ANY(?)",
            [*params, chunk],
        )
    if strict and moved != len(message_ids):
        raise LedgerConflict(
            f"expected {len(message_ids)} ledger rows in state {from_state!r}, found {moved}: is another send "
            "running on this warehouse? Runs must not overlap (dagster.yaml limits them to one)."
        )
    return moved


def move_each(conn: Connection, per_row: dict[str, object], from_state: str, to_state: str, *, now: datetime,
              column: str = "reason", **values) -> int:
    """Like move, with a value per row (a suppression reason, a provider id, a delivery time) in `column`:
    one UPDATE per value when there are few, else one UPDATE ... FROM (VALUES ...) per chunk."""
    by_value: dict[object, list[str]] = {}
    for message_id, value in per_row.items():
        by_value.setdefault(value, []).append(message_id)
    if len(by_value) <= 8:
        return sum(move(conn, ids, from_state, to_state, now=now, **{column: value}, **values)
                   for value, ids in by_value.items())
    sql_type = next(c.sql_type for c in SEND_LEDGER if c.name == column)
    assignments, params = [f"state = '{to_state}'", f"{column} = CAST(v.value AS {sql_type})"], []
    for name, value in values.items():
        assignments.append(f"{name} = ?")
        params.append(value)
    if to_state in (ACCEPTED, FAILED, SUPPRESSED):
        assignments.append("finished_at = ?")
        params.append(now)
    items, moved = list(per_row.items()), 0
    for chunk in _chunks(items):
        rows = ", ".join("(?, ?)" for _ in chunk)
        moved += conn.execute(
            f"UPDATE ops.send_ledger SET {', '.join(assignments)} FROM (VALUES {rows}) AS v(message_id, value) "
            f"WHERE ops.send_ledger.message_id = v.message_id AND ops.send_ledger.state = '{from_state}'",
            [*params, *(v for pair in chunk for v in (pair[0], _text(pair[1])))],
        )
    if moved != len(items):
        raise LedgerConflict(
            f"expected {len(items)} ledger rows in state {from_state!r}, found {moved}: is another send running on "
            "this warehouse? Runs must not overlap (dagster.yaml limits them to one)."
        )
    return moved


def _text(value) -> str:
    return value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)


def counts(conn: Connection, campaign_id: str | None = None) -> dict[str, int]:
    if not conn.table_exists("ops", "send_ledger"):
        return {}
    where, params = ("WHERE campaign_id = ?", [campaign_id]) if campaign_id else ("", [])
    return {state: int(n) for state, n in conn.fetchall(
        f"SELECT state, count(*) FROM ops.send_ledger {where} GROUP BY state", params)}


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
