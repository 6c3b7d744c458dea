"""Who a privacy request is about, and where in the warehouse they still are (docs/design/privacy.md,
sections 3.3 step 1 and 3.7).

`resolve` turns the identifiers a request names into the person's whole working set: every identifier
identity resolution linked to the same customers (user ids, anonymous ids, emails, phones in E.164 and the
raw spellings that normalize to them, CRM contact ids), the customer ids, and the ids of the messages sent
to them. A requested identifier that resolution refused as shared by several people (identity_resolution_audit)
makes the request ambiguous: an operator must decide, since erasing it would erase someone else too.

`scan` looks for every value of a working set in every text column of every table Mailroom owns and
reports where it found which kind of identifier, never the value.
"""

from __future__ import annotations

import string
from collections import defaultdict
from dataclasses import dataclass, field

from dagster_project.addresses import normalized_address
from dagster_project.warehouse import Connection

SCANNED_SCHEMAS = ("raw", "staging", "intermediate", "marts", "campaigns", "journeys", "ops")
SHORT_ID = 6  # shorter ids match whole values only: user id "42" would otherwise match every number
_TEXT_TYPES = ("character varying", "varchar", "text", "json", "jsonb", "character")


@dataclass
class WorkingSet:
    requested: list[tuple[str, str]]
    customer_ids: set[str] = field(default_factory=set)
    identifiers: set[tuple[str, str]] = field(default_factory=set)  # (type, value), the requested ones included
    ambiguous: list[tuple[str, str]] = field(default_factory=list)  # requested identifiers shared by others

    def values(self) -> dict[str, set[str]]:
        by_type: dict[str, set[str]] = defaultdict(set)
        for kind, value in self.identifiers:
            by_type[kind].add(value)
        return by_type


@dataclass(frozen=True)
class Hit:
    table: str  # schema.table
    column: str
    identifier_type: str
    rows: int


def resolve(conn: Connection, requested: list[tuple[str, str]]) -> WorkingSet:
    """`requested` is [(email | user_id, value)]; emails are compared normalized."""
    requested = [(kind, normalized_address(value) if kind == "email" else value) for kind, value in requested]
    working = WorkingSet(requested, identifiers=set(requested))
    if conn.table_exists("marts", "identity_resolution_audit"):
        for kind, value in requested:
            if conn.scalar("SELECT count(*) FROM marts.identity_resolution_audit WHERE identifier_type = ? AND "
                           "identifier_value = ? AND reason IN ('shared_by_user_ids', 'would_merge_user_ids')",
                           [kind, value]):
                working.ambiguous.append((kind, value))
    if conn.table_exists("marts", "customer_identities"):
        for kind, value in requested:
            working.customer_ids |= {row[0] for row in conn.fetchall(
                "SELECT DISTINCT customer_id FROM marts.customer_identities WHERE identifier_type = ? AND "
                "identifier_value = ?", [kind, value])}
        for customer_id in sorted(working.customer_ids):
            working.identifiers |= {(kind, value) for kind, value in conn.fetchall(
                "SELECT identifier_type, identifier_value FROM marts.customer_identities WHERE customer_id = ?",
                [customer_id])}
    working.identifiers |= {("customer_id", customer_id) for customer_id in working.customer_ids}
    phones = [value for kind, value in working.identifiers if kind == "phone"]
    if phones and conn.table_exists("ops", "phone_numbers"):
        marks = ", ".join("?" for _ in phones)
        working.identifiers |= {("phone_spelling", row[0]) for row in conn.fetchall(
            f"SELECT raw_phone FROM ops.phone_numbers WHERE phone_e164 IN ({marks})", phones)}
    if working.customer_ids:
        marks = ", ".join("?" for _ in working.customer_ids)
        for table in ("send_ledger", "campaign_messages"):
            if conn.table_exists("ops", table):
                working.identifiers |= {("message_id", row[0]) for row in conn.fetchall(
                    f"SELECT message_id FROM ops.{table} WHERE customer_id IN ({marks})", sorted(working.customer_ids))}
    return working


def scan(conn: Connection, working: WorkingSet, schemas=SCANNED_SCHEMAS, skip_tables=()) -> list[Hit]:
    """Every (table, column, identifier type) where a value of the working set still appears in a table (views
    store nothing), with the number of rows. An identifier of SHORT_ID characters or more matches as a whole
    token anywhere in a value (JSON, headers, bodies: not preceded or followed by a letter, digit or
    . _ @ + -, so ann@example.com is not found in joann@example.com, nor u_1234567 in u_12345678), emails
    case-insensitively; a shorter one only as the whole value (user id 42 is not every 42)."""
    conditions: list[tuple[str, str, list]] = []  # (identifier type, SQL over `col`, parameters)
    matches = regex_sql(conn)
    for kind, values in sorted(working.values().items()):
        for value in sorted(values):
            if len(value) < SHORT_ID:
                conditions.append((kind, "col = ?", [value]))
            elif kind == "email":
                conditions.append((kind, matches.format("lower(col)"), [token_pattern(value.lower())]))
            else:
                conditions.append((kind, matches.format("col"), [token_pattern(value)]))
    if not conditions:
        return []
    by_table: dict[tuple[str, str], list[str]] = defaultdict(list)
    # Base tables only: a view stores nothing, and reading one recomputes the tables it reads.
    for schema, table, column in text_columns(conn, schemas, base_tables_only=True):
        if f"{schema}.{table}" not in skip_tables:
            by_table[(schema, table)].append(column)
    hits = []
    for (schema, table), table_columns in by_table.items():  # one pass over each table, all its columns at once
        sums, parameters, labels = [], [], []
        for column in table_columns:
            cast = f'cast("{column}" as varchar)'
            by_type: dict[str, list[str]] = defaultdict(list)
            for kind, sql, params in conditions:
                by_type[kind].append(sql.replace("col", cast))
                parameters.extend(params)
            sums += [f"sum(case when {' or '.join(sqls)} then 1 else 0 end)" for sqls in by_type.values()]
            labels += [(column, kind) for kind in by_type]
        row = conn.fetchall(f'SELECT {", ".join(sums)} FROM "{schema}"."{table}"', parameters)[0]
        hits += [Hit(f"{schema}.{table}", column, kind, int(n))
                 for (column, kind), n in zip(labels, row, strict=True) if n]
    return hits


_TOKEN_EDGE = "[^A-Za-z0-9._@+-]"


def regex_sql(conn: Connection) -> str:
    """SQL for "{} matches the pattern parameter", on this engine."""
    return "regexp_matches({}, ?)" if conn.kind == "duckdb" else "{} ~ ?"


def token_pattern(value: str) -> str:
    """A regular expression (the same on DuckDB's RE2 and PostgreSQL's AREs) for `value` as a whole token."""
    literal = "".join(f"\\{c}" if c in string.punctuation else c for c in value)
    return f"(^|{_TOKEN_EDGE}){literal}($|{_TOKEN_EDGE})"


def text_columns(conn: Connection, schemas, base_tables_only: bool = False) -> list[tuple[str, str, str]]:
    """(schema, table, column) of every text column of the tables (and views) in `schemas`."""
    marks = ", ".join("?" for _ in schemas)
    kinds = "('BASE TABLE')" if base_tables_only else "('BASE TABLE', 'VIEW')"
    rows = conn.fetchall(
        "SELECT c.table_schema, c.table_name, c.column_name, lower(c.data_type) FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
        f"WHERE c.table_schema IN ({marks}) AND t.table_type IN {kinds} "
        "ORDER BY 1, 2, c.ordinal_position", list(schemas))
    return [(schema, table, column) for schema, table, column, data_type in rows
            if data_type in _TEXT_TYPES or data_type.startswith(("varchar", "character"))]
