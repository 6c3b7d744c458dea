"""Per-customer journey state in ops, moved only by guarded transitions.

    (none) ──enter──> waiting(step, next_due_at) ──advance──> waiting(next step)
                          │                                      │
                          └──────────── finish ──────────────────┴──> completed | exited(reason)
    completed | exited ──enter again (re-entry rule allows)──> waiting(first step), entry_no + 1

ops.journey_state holds one row per (journey, customer): where the customer is now. ops.journey_entries
holds one row per entry (its key: an event's id, a cart, a milestone), so the same key never enters a
customer twice. ops.journey_steps is an append-only log with one row per (journey, customer, entry,
step): a step whose row exists is done, whatever happened to the run that did it.

Ownership, as in the send ledger: a run leases the due rows it works on (`lease_owner`,
`lease_expires_at`), and every move is a compare-and-set on the status, step and version it read and
on its own lease, adding one to the version. A move that finds the row changed raises TransitionLost:
another run has it. A crash leaves the lease to run out; the next run finds the step's log row (done:
move on) or not (do it), so a step is neither repeated nor skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dagster_project.warehouse import Connection, columns

WAITING, COMPLETED, EXITED = "waiting", "completed", "exited"
FINISHED = (COMPLETED, EXITED)

JOURNEY_STATE = columns(
    "journey_id:VARCHAR customer_id:VARCHAR entry_no:INTEGER entry_key:VARCHAR entered_at:TIMESTAMP "
    "status:VARCHAR step_id:VARCHAR next_due_at:TIMESTAMP version:INTEGER lease_owner:VARCHAR "
    "lease_expires_at:TIMESTAMP exit_reason:VARCHAR ended_at:TIMESTAMP context_json:VARCHAR updated_at:TIMESTAMP"
)
JOURNEY_ENTRIES = columns(
    "journey_id:VARCHAR customer_id:VARCHAR entry_no:INTEGER entry_key:VARCHAR entered_at:TIMESTAMP "
    "ended_at:TIMESTAMP end_reason:VARCHAR goal_met_at:TIMESTAMP"
)
JOURNEY_STEPS = columns(
    "journey_id:VARCHAR customer_id:VARCHAR entry_no:INTEGER step_id:VARCHAR outcome:VARCHAR "
    "message_id:VARCHAR done_at:TIMESTAMP owner:VARCHAR"
)
# Unique keys over columns that never change once written (DuckDB: an updated indexed column is a
# delete and insert in the index, which a WAL replay after a killed process can corrupt; see ledger.py).
UNIQUE_KEYS = {
    "journey_state": (("journey_id", "customer_id"),),
    "journey_entries": (("journey_id", "customer_id", "entry_no"), ("journey_id", "customer_id", "entry_key")),
    "journey_steps": (("journey_id", "customer_id", "entry_no", "step_id"),),
}
_DDL_LOCK = 7_362_004  # PostgreSQL advisory lock key: one ensure_journey_tables at a time
_FREE = "(lease_expires_at IS NULL OR lease_expires_at <= ?)"


class TransitionLost(RuntimeError):
    """The row was no longer in the state this run read (another run moved it, or this run's lease ran
    out and another run took it over). Leave it to that run."""


@dataclass(frozen=True)
class Candidate:
    """A customer an entry model admits now."""

    customer_id: str
    entry_key: str
    entry_at: datetime
    context: dict | None = None  # the entry row's columns that exits and branches compare with


@dataclass(frozen=True)
class Held:
    """A journey_state row this run holds under its lease, as it read it."""

    journey_id: str
    customer_id: str
    entry_no: int
    step_id: str
    version: int
    entered_at: datetime
    context: dict


def ensure_journey_tables(conn: Connection) -> None:
    if all(conn.table_exists("ops", table) for table in UNIQUE_KEYS):
        return
    if conn.kind == "postgres":
        conn.execute(f"SELECT pg_advisory_xact_lock({_DDL_LOCK})")
    conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
    for table, table_columns in (("journey_state", JOURNEY_STATE), ("journey_entries", JOURNEY_ENTRIES),
                                 ("journey_steps", JOURNEY_STEPS)):
        conn.create_table(f"ops.{table}", table_columns)
        for key in UNIQUE_KEYS[table]:
            conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {table}__{'__'.join(key)} "
                         f"ON ops.{table} ({', '.join(key)})")
    if conn.kind == "postgres":  # the minute tick looks for due rows
        conn.execute("CREATE INDEX IF NOT EXISTS journey_state__due "
                     "ON ops.journey_state (journey_id, status, next_due_at)")
    conn.commit()


def may_reenter(reentry: str | int, ended_at: datetime | None, now: datetime) -> bool:
    """After an entry ended: never again, with any new key (per_key), or after so many days."""
    if reentry == "never" or ended_at is None:
        return False
    if reentry == "per_key":
        return True
    return ended_at + timedelta(days=int(reentry)) <= now


def enter(conn: Connection, journey_id: str, first_step: str, reentry: str | int,
          candidates: Iterable[Candidate], now: datetime) -> list[str]:
    """Enter the candidates the rules admit, at `first_step`, due now; returns their customer ids.

    Nobody enters twice with one key, nobody is in a journey twice at once, and a customer whose entry
    ended enters again only as `reentry` allows. Another run entering the same customer at the same
    moment wins or loses on the unique key or the version, never both."""
    entered = []
    for candidate in candidates:
        if conn.scalar("SELECT count(*) FROM ops.journey_entries WHERE journey_id = ? AND customer_id = ? "
                       "AND entry_key = ?", [journey_id, candidate.customer_id, candidate.entry_key]):
            continue
        seen = conn.fetchall("SELECT status, entry_no, version, ended_at FROM ops.journey_state "
                             "WHERE journey_id = ? AND customer_id = ?", [journey_id, candidate.customer_id])
        context = json.dumps(candidate.context or {}, sort_keys=True, default=str)
        # Entered when the entry happened (the event's time): exits and goals count from there, and a
        # purchase between the event and this tick still ends the entry.
        entered_at = min(candidate.entry_at, now) if candidate.entry_at else now
        if not seen:
            entry_no = 1
            moved = conn.execute(
                "INSERT INTO ops.journey_state (journey_id, customer_id, entry_no, entry_key, entered_at, status, "
                "step_id, next_due_at, version, context_json, updated_at) VALUES (?, ?, 1, ?, ?, ?, ?, ?, 1, ?, ?) "
                "ON CONFLICT DO NOTHING",
                [journey_id, candidate.customer_id, candidate.entry_key, entered_at, WAITING, first_step, now, context,
                 now])
        else:
            status, previous_no, version, ended_at = seen[0]
            if status not in FINISHED or not may_reenter(reentry, ended_at, now):
                continue
            entry_no = previous_no + 1
            moved = conn.execute(
                "UPDATE ops.journey_state SET entry_no = ?, entry_key = ?, entered_at = ?, status = ?, step_id = ?, "
                "next_due_at = ?, version = version + 1, lease_owner = NULL, lease_expires_at = NULL, "
                "exit_reason = NULL, ended_at = NULL, context_json = ?, updated_at = ? "
                "WHERE journey_id = ? AND customer_id = ? AND status = ? AND version = ?",
                [entry_no, candidate.entry_key, entered_at, WAITING, first_step, now, context, now,
                 journey_id, candidate.customer_id, status, version])
        if not moved:
            continue  # another run entered them first
        conn.execute(
            "INSERT INTO ops.journey_entries (journey_id, customer_id, entry_no, entry_key, entered_at) "
            "VALUES (?, ?, ?, ?, ?)", [journey_id, candidate.customer_id, entry_no, candidate.entry_key, entered_at])
        entered.append(candidate.customer_id)
    return entered


def lease_due(conn: Connection, journey_id: str, owner: str, now: datetime, until: datetime, limit: int = 1000,
              customers: Sequence[str] | None = None) -> list[Held]:
    """Lease up to `limit` waiting rows due by `now` (of `customers` only, when given) that no live run
    holds; returns the rows this run now holds."""
    return _lease(conn, journey_id, owner, now, until, limit, customers, due_only=True)


def lease(conn: Connection, journey_id: str, owner: str, now: datetime, until: datetime,
          customers: Sequence[str]) -> list[Held]:
    """Lease the waiting rows of `customers`, due or not (to end their entries); returns those held."""
    held = []
    for start in range(0, len(customers), 1000):
        held += _lease(conn, journey_id, owner, now, until, 1000, customers[start:start + 1000], due_only=False)
    return held


def _lease(conn: Connection, journey_id: str, owner: str, now: datetime, until: datetime, limit: int,
           customers: Sequence[str] | None, due_only: bool) -> list[Held]:
    only = "AND customer_id = ANY(?) " if customers is not None else ""
    due = "AND next_due_at <= ? " if due_only else ""
    params = [journey_id, WAITING, *([now] if due_only else []), now, owner,
              *([list(customers)] if customers is not None else []), limit]
    candidates = [row[0] for row in conn.fetchall(
        f"SELECT customer_id FROM ops.journey_state WHERE journey_id = ? AND status = ? {due}"
        f"AND ({_FREE} OR lease_owner = ?) {only}ORDER BY next_due_at, customer_id LIMIT ?", params)]
    if not candidates:
        return []
    conn.execute(
        f"UPDATE ops.journey_state SET lease_owner = ?, lease_expires_at = ? WHERE journey_id = ? "
        f"AND customer_id = ANY(?) AND status = ? AND ({_FREE} OR lease_owner = ?)",
        [owner, until, journey_id, candidates, WAITING, now, owner])
    rows = conn.fetchall(
        "SELECT journey_id, customer_id, entry_no, step_id, version, entered_at, context_json FROM ops.journey_state "
        "WHERE journey_id = ? AND customer_id = ANY(?) AND status = ? AND lease_owner = ? ORDER BY customer_id",
        [journey_id, candidates, WAITING, owner])
    return [Held(*row[:6], json.loads(row[6] or "{}")) for row in rows]


def advance(conn: Connection, row: Held, owner: str, to_step: str, next_due_at: datetime, now: datetime) -> Held:
    """Move a held row to its next step, due at `next_due_at`; returns the row as it is now."""
    _compare_and_set(conn, row, owner, "step_id = ?, next_due_at = ?", [to_step, next_due_at], now)
    return Held(row.journey_id, row.customer_id, row.entry_no, to_step, row.version + 1, row.entered_at, row.context)


def finish(conn: Connection, row: Held, owner: str, status: str, reason: str, now: datetime) -> None:
    """End a held row's entry: completed (the last step is done) or exited (with the reason)."""
    if status not in FINISHED:
        raise ValueError(f"a journey entry finishes as {' or '.join(FINISHED)}, not {status!r}")
    _compare_and_set(conn, row, owner, "status = ?, exit_reason = ?, ended_at = ?, lease_expires_at = ?",
                     [status, reason, now, now], now)
    conn.execute("UPDATE ops.journey_entries SET ended_at = ?, end_reason = ? "
                 "WHERE journey_id = ? AND customer_id = ? AND entry_no = ?",
                 [now, reason, row.journey_id, row.customer_id, row.entry_no])


def _compare_and_set(conn: Connection, row: Held, owner: str, assignments: str, params: list, now: datetime) -> None:
    moved = conn.execute(
        f"UPDATE ops.journey_state SET {assignments}, version = version + 1, updated_at = ? "
        "WHERE journey_id = ? AND customer_id = ? AND status = ? AND step_id = ? AND version = ? AND lease_owner = ? "
        "AND lease_expires_at > ?",
        [*params, now, row.journey_id, row.customer_id, WAITING, row.step_id, row.version, owner, now])
    if moved != 1:
        raise TransitionLost(f"journey {row.journey_id}: customer {row.customer_id} is no longer at step "
                             f"{row.step_id} (version {row.version}) under run {owner}'s lease; another run moved it")


def record_step(conn: Connection, row: Held, outcome: str, now: datetime, owner: str,
                message_id: str | None = None) -> bool:
    """Log the held row's current step as done with `outcome`; False when it was logged before (by this
    run or one that crashed), and then the earlier outcome stands."""
    return conn.execute(
        "INSERT INTO ops.journey_steps (journey_id, customer_id, entry_no, step_id, outcome, message_id, done_at, "
        "owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [row.journey_id, row.customer_id, row.entry_no, row.step_id, outcome, message_id, now, owner]) == 1


def step_done(conn: Connection, row: Held) -> tuple[str, str | None, datetime] | None:
    """(outcome, message_id, done_at) of the held row's current step when it is logged, else None."""
    rows = conn.fetchall("SELECT outcome, message_id, done_at FROM ops.journey_steps WHERE journey_id = ? "
                         "AND customer_id = ? AND entry_no = ? AND step_id = ?",
                         [row.journey_id, row.customer_id, row.entry_no, row.step_id])
    return rows[0] if rows else None


def record_goal(conn: Connection, journey_id: str, customer_id: str, entry_no: int, met_at: datetime) -> int:
    """Record that an entry reached its goal (once per entry); returns 1 when recorded now."""
    return conn.execute("UPDATE ops.journey_entries SET goal_met_at = ? WHERE journey_id = ? AND customer_id = ? "
                        "AND entry_no = ? AND goal_met_at IS NULL", [met_at, journey_id, customer_id, entry_no])
