"""ops.send_ledger: one row per (campaign, run, customer) message and the state it is in.

    planned ──> suppressed                      (consent, suppression, sunset, duplicate address, frequency cap, expiry)
       │  ^      (over the frequency cap with on_frequency_cap 'delay': stays planned, deliver_at moved to
       │  │       when the cap clears; see presend.py)
       v  │ (not accepted: retry, or the next destination)
    sending ──> accepted                        (with the provider's id)
       │
       └──> failed                              (refused for good, or retries exhausted: retryable)

Ownership. Several send runs may start at once (the Dagster job, the delivery schedule, cron), so a
run owns the rows it works on through a lease: `lease_owner` (the run's id) and `lease_expires_at`.
A run leases a page of planned rows before it looks at them, renews the lease while it works, and
expires it when the page is done. Every later move of an owned row is guarded by state AND owner,
so a run can only move rows it holds, forward from the state it saw. A row left in `sending` has an
unknown outcome; reconcile.py takes over such rows only once their lease has expired (the owner is
gone) and settles them before any resend. Rows written before leases existed have none: their
owner is gone too. The unique keys make a second row - a second send - impossible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from dagster_project.addresses import normalized_address_sql
from dagster_project.warehouse import Connection, columns

PLANNED, SUPPRESSED, SENDING, ACCEPTED, FAILED = "planned", "suppressed", "sending", "accepted", "failed"
STATES = (PLANNED, SUPPRESSED, SENDING, ACCEPTED, FAILED)
FINISHED = (ACCEPTED, FAILED, SUPPRESSED)
OUTCOME_UNKNOWN = "outcome_unknown"  # the reason of a message held for an operator (see resolve_unknown)
DUPLICATE_ADDRESS = "duplicate_address"

SEND_LEDGER = columns(
    "message_id:VARCHAR campaign_id:VARCHAR run_key:VARCHAR customer_id:VARCHAR variant_id:VARCHAR "
    "timezone:VARCHAR state:VARCHAR reason:VARCHAR destination:VARCHAR attempts:INTEGER last_error:VARCHAR "
    "is_retryable:BOOLEAN provider_message_id:VARCHAR send_at:TIMESTAMP deliver_at:TIMESTAMP "
    "planned_at:TIMESTAMP sending_at:TIMESTAMP finished_at:TIMESTAMP "
    "lease_owner:VARCHAR lease_expires_at:TIMESTAMP provider_batch_id:VARCHAR address_key:VARCHAR "
    "on_frequency_cap:VARCHAR audited_state:VARCHAR"
)
# One message per address per campaign run: the md5 of the normalized address (no address in the ledger).
ADDRESS_KEY = f"md5({normalized_address_sql('m.to_email')})"
UNIQUE_KEYS = (("message_id",), ("campaign_id", "run_key", "customer_id"))
_CHUNK = 5000  # ids per statement
_FREE = "(lease_expires_at IS NULL OR lease_expires_at <= ?)"  # no live owner: never leased, or expired
_DDL_LOCK = 7_362_001  # PostgreSQL advisory lock key: one ensure_ledger at a time
_CUSTOMER_INDEX = "send_ledger__customer"


class LeaseLost(RuntimeError):
    """Rows this run meant to move were no longer its own in the state it saw: its lease ran out and
    another run took them over. Stop working on them."""


def ensure_ledger(conn: Connection) -> None:
    """Create the ledger, or add the columns a newer version needs, and commit at once. Two runs
    starting together would race on CREATE ... IF NOT EXISTS in PostgreSQL's catalog, so the DDL runs
    under a transaction-scoped advisory lock there - and only when there is something to create."""
    present = ledger_columns(conn)
    if present and {c.name for c in SEND_LEDGER} <= present and not _missing_postgres_index(conn):
        return
    if conn.kind == "postgres":
        conn.execute(f"SELECT pg_advisory_xact_lock({_DDL_LOCK})")
    conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
    conn.create_table("ops.send_ledger", SEND_LEDGER)
    present = ledger_columns(conn)
    for column in SEND_LEDGER:
        if column.name not in present:  # checked first: ALTER TABLE locks the whole table even when it changes nothing
            conn.execute(f"ALTER TABLE ops.send_ledger ADD COLUMN IF NOT EXISTS {column.name} {column.sql_type}")
    for key in UNIQUE_KEYS:
        conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS send_ledger__{'__'.join(key)} "
                     f"ON ops.send_ledger ({', '.join(key)})")
    if conn.kind == "postgres":
        conn.execute("CREATE INDEX IF NOT EXISTS send_ledger__state ON ops.send_ledger (state, campaign_id)")
        # The frequency cap counts each page's customers' recent hand-overs (presend.py).
        conn.execute(f"CREATE INDEX IF NOT EXISTS {_CUSTOMER_INDEX} ON ops.send_ledger (customer_id, deliver_at)")
    else:
        # Not on DuckDB: an UPDATE of an indexed column is a delete and insert in every index of the
        # table, and replaying such updates from the WAL after a killed process corrupts the unique
        # indexes ("Failed to delete all rows from index", duckdb/duckdb#23645). DuckDB scans the
        # columns anyway; the ledger's state changes constantly.
        conn.execute("DROP INDEX IF EXISTS ops.send_ledger__state")
    conn.commit()


def _missing_postgres_index(conn: Connection) -> bool:
    """A ledger created by an older version lacks the customer index (PostgreSQL only)."""
    return conn.kind == "postgres" and not conn.scalar(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'ops' AND indexname = ?", [_CUSTOMER_INDEX])


def ledger_columns(conn: Connection) -> set[str]:
    """The columns ops.send_ledger has (none: there is no ledger yet)."""
    return _columns(conn, "send_ledger")


def _columns(conn: Connection, table: str) -> set[str]:
    return {row[0] for row in conn.fetchall(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'ops' AND table_name = ?", [table])}


def plan(conn: Connection, campaign_id: str, now: datetime) -> int:
    """Add every rendered message of the campaign the ledger does not hold yet, as planned, with what
    the message says to do over the frequency cap (on_frequency_cap: 'skip', 'delay' or NULL, see
    presend.py). ON CONFLICT: a run planning at the same moment may insert the same rows first."""
    has_customers = conn.table_exists("marts", "dim_customers")  # for each customer's timezone
    # Messages rendered by a version before on_frequency_cap have none (a table the render step has
    # not upgraded yet): NULL, suppressed over the cap as before.
    on_cap = "m.on_frequency_cap" if "on_frequency_cap" in _columns(conn, "campaign_messages") else "NULL"
    return conn.execute(
        "INSERT INTO ops.send_ledger (message_id, campaign_id, run_key, customer_id, variant_id, timezone, state, "
        "attempts, send_at, deliver_at, planned_at, address_key, on_frequency_cap) "
        f"SELECT m.message_id, m.campaign_id, m.run_key, m.customer_id, m.variant_id, "
        f"{'c.timezone' if has_customers else 'NULL'}, '{PLANNED}', 0, m.send_at, m.send_at, ?, {ADDRESS_KEY}, "
        f"{on_cap} "
        "FROM ops.campaign_messages AS m "
        + ("LEFT JOIN marts.dim_customers AS c ON c.customer_id = m.customer_id " if has_customers else "")
        + "WHERE m.campaign_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM ops.send_ledger AS l WHERE l.message_id = m.message_id "
        " OR (l.campaign_id = m.campaign_id AND l.run_key = m.run_key AND l.customer_id = m.customer_id)) "
        "ON CONFLICT DO NOTHING",
        [now, campaign_id],
    )


def suppress_duplicate_addresses(conn: Connection, campaign_id: str, owner: str, now: datetime) -> int:
    """One message per address per campaign run: of the messages of one run whose addresses are the
    same once normalized ('A@x.com' and ' a@x.com'), the one already on its way (sending, accepted,
    or failed but retryable) or else the first planned keeps going; the others are suppressed with
    reason duplicate_address. Rows another live run holds are left to it. Rows planned before the
    ledger had address keys are not compared."""
    # The duplicates first, then one UPDATE by id: as one UPDATE ... IN (window query), PostgreSQL
    # without statistics on fresh rows re-ran the window for every row (9 s for 3,000 messages).
    duplicates = [row[0] for row in conn.fetchall(
        "SELECT message_id FROM ("
        "  SELECT message_id, state, row_number() OVER (PARTITION BY run_key, address_key ORDER BY "
        f"   CASE WHEN state = '{PLANNED}' THEN 1 ELSE 0 END, planned_at, message_id) AS position "
        "  FROM ops.send_ledger WHERE campaign_id = ? AND address_key IS NOT NULL "
        f"   AND (state IN ('{PLANNED}', '{SENDING}', '{ACCEPTED}') OR (state = '{FAILED}' AND is_retryable))"
        f") AS ranked WHERE position > 1 AND state = '{PLANNED}'", [campaign_id])]
    suppressed = 0
    for chunk in chunks(duplicates):
        suppressed += conn.execute(
            f"UPDATE ops.send_ledger SET state = '{SUPPRESSED}', reason = '{DUPLICATE_ADDRESS}', finished_at = ?, "
            f"lease_expires_at = ? WHERE message_id = ANY(?) AND state = '{PLANNED}' AND ({_FREE} OR lease_owner = ?)",
            [now, now, chunk, now, owner])
    return suppressed


def requeue_retryable(conn: Connection, campaign_id: str) -> int:
    """Failed-but-retryable rows (every destination was down) go back to planned for this run."""
    return conn.execute(
        f"UPDATE ops.send_ledger SET state = '{PLANNED}', is_retryable = NULL "
        f"WHERE campaign_id = ? AND state = '{FAILED}' AND is_retryable",
        [campaign_id],
    )


def lease_page(conn: Connection, campaign_id: str, owner: str, after: str, limit: int, now: datetime,
               until: datetime) -> tuple[list[tuple], str | None]:
    """Lease the next planned rows after `after` that no live run holds. Returns the rows this run
    now holds, as (message_id, send_at, timezone, on_frequency_cap), and where the next page starts
    (None: no more).
    A row another run leased between the look and the lease stays with it (the UPDATE re-checks)."""
    candidates = [row[0] for row in conn.fetchall(
        f"SELECT message_id FROM ops.send_ledger WHERE campaign_id = ? AND state = '{PLANNED}' AND message_id > ? "
        f"AND ({_FREE} OR lease_owner = ?) ORDER BY message_id LIMIT ?",
        [campaign_id, after, now, owner, limit])]
    if not candidates:
        return [], None
    conn.execute(
        f"UPDATE ops.send_ledger SET lease_owner = ?, lease_expires_at = ? WHERE message_id = ANY(?) "
        f"AND state = '{PLANNED}' AND ({_FREE} OR lease_owner = ?)",
        [owner, until, candidates, now, owner])
    held = conn.fetchall(
        "SELECT message_id, send_at, timezone, on_frequency_cap FROM ops.send_ledger WHERE message_id = ANY(?) "
        f"AND state = '{PLANNED}' "
        "AND lease_owner = ? ORDER BY message_id", [candidates, owner])
    return held, candidates[-1]


def renew(conn: Connection, message_ids: Sequence[str], owner: str, until: datetime) -> int:
    """Push this run's lease on these rows (still planned or sending) out to `until`."""
    return _for_owned(conn, message_ids, owner, "lease_expires_at = ?", [until])


def release(conn: Connection, message_ids: Sequence[str], owner: str, now: datetime) -> int:
    """Done with these rows: the lease ends now. The owner stays recorded; a row still in `sending`
    (an unknown outcome) is then reconciled by the next run."""
    return _for_owned(conn, message_ids, owner, "lease_expires_at = ?", [now])


def _for_owned(conn: Connection, message_ids: Sequence[str], owner: str, assignment: str, params: list) -> int:
    changed = 0
    for chunk in chunks(list(message_ids)):
        changed += conn.execute(
            f"UPDATE ops.send_ledger SET {assignment} WHERE message_id = ANY(?) AND lease_owner = ? "
            f"AND state IN ('{PLANNED}', '{SENDING}')", [*params, chunk, owner])
    return changed


def take_over_expired(conn: Connection, campaign_id: str, owner: str, now: datetime, until: datetime) -> int:
    """Lease to `owner` the campaign's rows left in `sending` by runs that are gone (lease expired or
    none). Rows a live run holds are not touched: their outcome is that run's to record."""
    return conn.execute(
        f"UPDATE ops.send_ledger SET lease_owner = ?, lease_expires_at = ? WHERE campaign_id = ? "
        f"AND state = '{SENDING}' AND {_FREE}",
        [owner, until, campaign_id, now])


def claim_for_sending(conn: Connection, message_ids: Sequence[str], owner: str, now: datetime,
                      destination: str) -> set[str]:
    """planned -> sending for the rows this run holds; returns the ids actually claimed (a row
    another run took over, or suppressed meanwhile, is not)."""
    moved = move(conn, message_ids, PLANNED, SENDING, now=now, owner=owner, strict=False,
                 destination=destination, attempts=1)
    if moved == len(message_ids):
        return set(message_ids)
    return {row[0] for row in conn.fetchall(
        f"SELECT message_id FROM ops.send_ledger WHERE message_id = ANY(?) AND state = '{SENDING}' AND lease_owner = ?",
        [list(message_ids), owner])}


def move(conn: Connection, message_ids: Sequence[str], from_state: str, to_state: str, *,
         now: datetime, owner: str, strict: bool = True, **values) -> int:
    """Move rows this run (`owner`) holds from one state to the next, setting `values` (column=value;
    attempts=+1 counts up). strict: every row must have moved, else LeaseLost (the lease ran out and
    another run has the rows)."""
    moved = 0
    assignments, params = [f"state = '{to_state}'"], []
    for column, value in values.items():
        if column == "attempts":
            assignments.append("attempts = coalesce(attempts, 0) + 1")
            continue
        assignments.append(f"{column} = ?")
        params.append(value)
    if to_state == SENDING and from_state != SENDING:
        assignments.append("sending_at = ?")
        params.append(now)
    if to_state in FINISHED:  # finished: the lease has nothing left to guard
        assignments.append("finished_at = ?, lease_expires_at = ?")
        params += [now, now]
    guard, guard_params = _guard(from_state, owner)
    for chunk in chunks(list(message_ids)):
        # "= ANY(list)" rather than "IN (?, ?, ...)": one array parameter, and DuckDB updates ~8x faster.
        moved += conn.execute(
            f"UPDATE ops.send_ledger SET {', '.join(assignments)} WHERE {guard} AND message_id = ANY(?)",
            [*params, *guard_params, chunk],
        )
    if strict:
        _check(moved, len(message_ids), from_state, owner)
    return moved


def move_each(conn: Connection, per_row: dict[str, object], from_state: str, to_state: str, *, now: datetime,
              owner: str, column: str = "reason", **values) -> int:
    """Like move, with a value per row (a suppression reason, a provider id, a delivery time) in `column`:
    one UPDATE per value when there are few, else one UPDATE ... FROM (VALUES ...) per chunk."""
    by_value: dict[object, list[str]] = {}
    for message_id, value in per_row.items():
        by_value.setdefault(value, []).append(message_id)
    if len(by_value) <= 8:
        return sum(move(conn, ids, from_state, to_state, now=now, owner=owner, **{column: value}, **values)
                   for value, ids in by_value.items())
    sql_type = next(c.sql_type for c in SEND_LEDGER if c.name == column)
    assignments, params = [f"state = '{to_state}'", f"{column} = CAST(v.value AS {sql_type})"], []
    for name, value in values.items():
        assignments.append(f"{name} = ?")
        params.append(value)
    if to_state in FINISHED:
        assignments.append("finished_at = ?, lease_expires_at = ?")
        params += [now, now]
    guard, guard_params = _guard(from_state, owner, table="ops.send_ledger.")
    items, moved = list(per_row.items()), 0
    for chunk in chunks(items):
        rows = ", ".join("(?, ?)" for _ in chunk)
        pairs = [v for pair in chunk for v in (pair[0], _text(pair[1]))]
        # DuckDB binds the parameters of UPDATE ... FROM (VALUES ...) before those of SET; PostgreSQL in
        # the order they are written.
        ordered = [*pairs, *params] if conn.kind == "duckdb" else [*params, *pairs]
        moved += conn.execute(
            f"UPDATE ops.send_ledger SET {', '.join(assignments)} FROM (VALUES {rows}) AS v(message_id, value) "
            f"WHERE ops.send_ledger.message_id = v.message_id AND {guard}",
            [*ordered, *guard_params],
        )
    _check(moved, len(items), from_state, owner)
    return moved


def _guard(from_state: str, owner: str, table: str = "") -> tuple[str, list]:
    return f"{table}state = '{from_state}' AND {table}lease_owner = ?", [owner]


def _check(moved: int, expected: int, from_state: str, owner: str) -> None:
    if moved != expected:
        raise LeaseLost(
            f"{expected - moved:,} of {expected:,} ledger rows in state {from_state!r} are no longer held by run "
            f"{owner}: its lease ran out (MAILROOM_SEND_LEASE_SECONDS) and another run took them over"
        )


def _text(value) -> str:
    return value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)


def resolve_unknown(conn: Connection, campaign_id: str, decision: str, now: datetime) -> int:
    """An operator's decision on the campaign's messages held with an unknown outcome (failed,
    outcome_unknown): 'accepted' (the provider took them: record them as sent) or 'resend' (back to
    planned: the next pass hands them over again)."""
    held = f"WHERE campaign_id = ? AND state = '{FAILED}' AND reason = '{OUTCOME_UNKNOWN}'"
    if decision == "accepted":
        return conn.execute(
            f"UPDATE ops.send_ledger SET state = '{ACCEPTED}', reason = NULL, last_error = NULL, is_retryable = NULL, "
            f"provider_message_id = coalesce(provider_message_id, 'resolved-by-operator'), finished_at = ? {held}",
            [now, campaign_id])
    if decision == "resend":
        return conn.execute(
            f"UPDATE ops.send_ledger SET state = '{PLANNED}', reason = NULL, is_retryable = NULL, finished_at = NULL, "
            "provider_batch_id = NULL, lease_owner = NULL, lease_expires_at = NULL, "
            f"last_error = 'held with an unknown outcome; an operator chose to send it again' {held}",
            [campaign_id])
    raise ValueError(f"unknown decision {decision!r}: use 'accepted' or 'resend'")


def counts(conn: Connection, campaign_id: str | None = None) -> dict[str, int]:
    if not conn.table_exists("ops", "send_ledger"):
        return {}
    where, params = ("WHERE campaign_id = ?", [campaign_id]) if campaign_id else ("", [])
    return {state: int(n) for state, n in conn.fetchall(
        f"SELECT state, count(*) FROM ops.send_ledger {where} GROUP BY state", params)}


def latest_run_counts(conn: Connection, campaign_id: str) -> tuple[str | None, dict[str, int]]:
    """The campaign's most recently planned run and its rows by state (what that run has come to). NULLS
    LAST: PostgreSQL would put a NULL planned_at first, DuckDB last."""
    if not conn.table_exists("ops", "send_ledger"):
        return None, {}
    run_key = conn.scalar("SELECT run_key FROM ops.send_ledger WHERE campaign_id = ? "
                          "ORDER BY planned_at DESC NULLS LAST, run_key DESC LIMIT 1", [campaign_id])
    if run_key is None:
        return None, {}
    return run_key, {state: int(n) for state, n in conn.fetchall(
        "SELECT state, count(*) FROM ops.send_ledger WHERE campaign_id = ? AND run_key = ? GROUP BY state",
        [campaign_id, run_key])}


def held_elsewhere(conn: Connection, campaign_id: str, owner: str, now: datetime) -> int:
    """Rows of the campaign another live run holds right now (planned or sending)."""
    return int(conn.scalar(
        f"SELECT count(*) FROM ops.send_ledger WHERE campaign_id = ? AND state IN ('{PLANNED}', '{SENDING}') "
        "AND lease_expires_at > ? AND lease_owner <> ?", [campaign_id, now, owner]) or 0)


def chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    """`items` in lists of at most `size` (ids per statement)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
