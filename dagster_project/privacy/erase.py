"""Erasing a person from the warehouse's tables (docs/design/privacy.md, section 3.3, steps 2, 5 and 6).

`write_proofs` records, before anything is deleted, one keyed hash per identifier in ops.erasure_proofs:
the minimal row that lets a later import be recognised as this person's without keeping who they were.

`erase_rows` deletes every row of every table Mailroom owns that holds one of the person's identifiers,
matched precisely: emails (in any case), phones, phone spellings and message ids as whole tokens anywhere
in a value (JSON traits, quarantined lines, headers); user, anonymous, CRM contact and customer ids as the
whole value of a column, and as tokens only in quarantined lines, where a record is kept whole. Model
tables lose the rows now; the next dbt build rebuilds them from what is left.
Never touched: the audit chain and the privacy tables (they hold keyed hashes and counts, no identifiers).
A ledger row a live send holds is left for the next attempt (`waiting`), never deleted under its sender.

The verification is subjects.scan: afterwards it must find nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dagster_project.privacy.audit import SEAL_LOCK
from dagster_project.privacy.keys import IDENTIFIER_TYPES, SubjectKeys
from dagster_project.privacy.subjects import (
    SCANNED_SCHEMAS,
    SHORT_ID,
    WorkingSet,
    regex_sql,
    text_columns,
    token_pattern,
)
from dagster_project.warehouse import Connection, columns, ensure_table

PROOFS = "ops.erasure_proofs"
PROOF_COLUMNS = columns("subject_key:VARCHAR identifier_type:VARCHAR request_id:VARCHAR erased_at:TIMESTAMP")
KEPT_TABLES = {"ops.audit_log", "ops.audit_pending", "ops.privacy_requests", "ops.privacy_request_rejections",
               PROOFS, "ops.model_registry", "ops.model_decisions", "ops.experiment_decisions",
               "ops.privacy_request_steps",  # counts and masked errors
               "ops.privacy_subjects"}  # the working set itself, while the request is open (steps.forget empties it)
TOKEN_TYPES = ("email", "phone", "phone_spelling", "message_id")  # distinctive enough to find inside any text
QUARANTINE = "raw.quarantine"


@dataclass
class Erasure:
    deleted: dict[str, int] = field(default_factory=dict)  # schema.table -> rows
    waiting: int = 0  # ledger rows a live send holds: erase again once it settled


def write_proofs(conn: Connection, working: WorkingSet, keys: SubjectKeys, request_id: str, now: datetime) -> int:
    ensure_table(conn, PROOFS, PROOF_COLUMNS, [("subject_key",)], SEAL_LOCK)
    written = 0
    for kind, value in sorted(working.identifiers):
        if kind not in IDENTIFIER_TYPES:
            continue  # phone spellings and message ids are found through the person's other identifiers
        written += conn.execute(f"INSERT INTO {PROOFS} (subject_key, identifier_type, request_id, erased_at) "
                                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                [keys.subject_key(kind, value), kind, request_id, now])
    return written


def erase_rows(conn: Connection, working: WorkingSet, now: datetime) -> Erasure:
    erasure = Erasure()
    by_table: dict[str, list[str]] = {}
    for schema, table, column in text_columns(conn, SCANNED_SCHEMAS, base_tables_only=True):
        if f"{schema}.{table}" not in KEPT_TABLES:
            by_table.setdefault(f"{schema}.{table}", []).append(column)
    for table, table_columns in by_table.items():
        conditions, parameters = _conditions(conn, working, table, table_columns)
        if not conditions:
            continue
        where = " OR ".join(conditions)
        if table == "ops.send_ledger":
            held = "state = 'sending' AND lease_expires_at > ?"
            erasure.waiting = int(conn.scalar(f"SELECT count(*) FROM {table} WHERE ({where}) AND {held}",
                                              [*parameters, now]))
            where, parameters = f"({where}) AND NOT ({held})", [*parameters, now]
        deleted = conn.execute(f"DELETE FROM {table} WHERE {where}", parameters)
        if deleted:
            erasure.deleted[table] = deleted
    return erasure


def _conditions(conn: Connection, working: WorkingSet, table: str, table_columns: list[str]) -> tuple[list, list]:
    matches = regex_sql(conn)
    conditions, parameters = [], []
    for column in table_columns:
        text = f'cast("{column}" as varchar)'
        for kind, values in sorted(working.values().items()):
            for value in sorted(values):
                if kind == "email":  # any spelling: ' Ann@Example.com' is ann@example.com
                    conditions.append(matches.format(f"lower({text})"))
                    parameters.append(token_pattern(value.lower()))
                elif len(value) >= SHORT_ID and (kind in TOKEN_TYPES or table == QUARANTINE):
                    conditions.append(matches.format(text))
                    parameters.append(token_pattern(value))
                else:
                    conditions.append(f"{text} = ?")
                    parameters.append(value)
    return conditions, parameters
