"""A dry run's private copy of the send ledger, so that it never holds a lock a real send needs.

A dry run walks the same code as a send - reconcile, plan, lease pages, claim, record - with
destinations that send nothing. Run on ops.send_ledger inside one transaction that was never
committed, it held the row locks of everything it planned, leased and claimed (and, on a ledger
upgrade, the DDL's table lock) for as long as it ran: on PostgreSQL a real send of the same campaign
waited for it, or deadlocked with it. So a dry run works on a temporary table that only its own
connection sees, copied when it starts: the campaign's rows, and the other campaigns' recent
hand-overs that the frequency cap counts. It commits as a send does (its reads hold no lock from one
step to the next), and it may write nothing but its copy: any other write is refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from dagster_project.warehouse import Connection
from reverse_etl.ledger import ACCEPTED, SEND_LEDGER, SENDING, UNIQUE_KEYS, ledger_columns
from reverse_etl.presend import FREQUENCY_WINDOW

PRIVATE_LEDGER = "dry_run_send_ledger"  # a temporary table: the session's own, dropped when it closes
_LEDGER = re.compile(r"\bops\.send_ledger\b")
_READ = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)
_WRITE_TARGET = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+([\w.]+)", re.IGNORECASE)


def private_ledger(conn: Connection, campaign_id: str, now: datetime) -> PrivateLedger:
    """Copy what the dry run of `campaign_id` reads into its private ledger, commit (the copy's read of
    ops.send_ledger ends there), and return the connection the dry run works through."""
    conn.create_table(PRIVATE_LEDGER, SEND_LEDGER, temporary=True)
    for key in UNIQUE_KEYS:  # as on the real ledger: planning relies on them (ON CONFLICT)
        conn.execute(f"CREATE UNIQUE INDEX {PRIVATE_LEDGER}__{'__'.join(key)} ON {PRIVATE_LEDGER} ({', '.join(key)})")
    present = ledger_columns(conn)  # none: no ledger yet; an older one lacks the newest columns
    names = ", ".join(c.name for c in SEND_LEDGER if c.name in present)
    if names:
        conn.execute(
            f"INSERT INTO {PRIVATE_LEDGER} ({names}) SELECT {names} FROM ops.send_ledger WHERE campaign_id = ? "
            f"OR (state IN ('{SENDING}', '{ACCEPTED}') AND deliver_at >= ?)",
            [campaign_id, now - FREQUENCY_WINDOW])
    conn.commit()
    return PrivateLedger(conn)


class PrivateLedger:
    """The dry run's connection: every statement on ops.send_ledger goes to the private copy; reads
    of the other tables go to the warehouse; a write to anything but the copy raises."""

    def __init__(self, conn: Connection):
        self._conn = conn
        self.kind = conn.kind

    def execute(self, sql: str, params: Sequence | None = None) -> int:
        return self._conn.execute(self._private(sql), params)

    def fetchall(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        return self._conn.fetchall(self._private(sql), params)

    def scalar(self, sql: str, params: Sequence | None = None):
        rows = self.fetchall(sql, params)
        return rows[0][0] if rows else None

    def table_exists(self, schema: str, table: str) -> bool:
        return (schema, table) == ("ops", "send_ledger") or self._conn.table_exists(schema, table)

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()

    def _private(self, sql: str) -> str:
        sql = _LEDGER.sub(PRIVATE_LEDGER, sql)
        target = _WRITE_TARGET.match(sql)
        if not _READ.match(sql) and not (target and target.group(1) == PRIVATE_LEDGER):
            raise RuntimeError("a dry run writes nothing but its private copy of the send ledger; refused: "
                               f"{sql[:200]}")
        return sql
