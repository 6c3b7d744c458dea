"""The model being synced: its columns (read from the warehouse) and the SQL that renders each row as
canonical text and hashes it, identically on DuckDB and PostgreSQL.

Every value becomes `name=` + (`N` for NULL, else `V<length>:<text>`), so no two different rows share a
text. Types are rendered explicitly because the engines print them differently by default: timestamps
as ISO 8601 with microseconds (timestamps with a time zone in UTC), non-integer numbers rounded to six
decimals, booleans as true/false.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dagster_project.warehouse import Connection
from reverse_etl.sync.errors import SyncError

KEY_SEPARATOR = "chr(31)"  # between the values of a composite key

TEXT, INTEGER, DECIMAL, BOOLEAN, TIMESTAMP, TIMESTAMPTZ, DATE, OTHER = (
    "text", "integer", "decimal", "boolean", "timestamp", "timestamptz", "date", "other")


@dataclass(frozen=True)
class ModelColumn:
    name: str
    kind: str  # one of the kinds above
    sql_type: str  # as the warehouse reports it


@dataclass(frozen=True)
class Relation:
    schema: str
    table: str
    columns: tuple[ModelColumn, ...]
    key: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def sql(self) -> str:
        return f"{quote(self.schema)}.{quote(self.table)}"

    def key_sql(self, alias: str = "") -> str:
        """SQL for the row's key as text (composite keys joined by the unit separator)."""
        prefix = f"{alias}." if alias else ""
        parts = [f"cast({prefix}{quote(k)} as varchar)" for k in self.key]
        return parts[0] if len(parts) == 1 else f" || {KEY_SEPARATOR} || ".join(parts)

    def hash_sql(self, kind: str, alias: str = "") -> str:
        """SQL for md5 of the row's canonical text."""
        prefix = f"{alias}." if alias else ""
        parts = []
        for column in self.columns:
            value = f"{prefix}{quote(column.name)}"
            text = canonical_text(kind, column.kind, value)
            parts.append(f"'{column.name}=' || (CASE WHEN {value} IS NULL THEN 'N' "
                         f"ELSE 'V' || cast(length({text}) as varchar) || ':' || {text} END)")
        return "md5(" + " || chr(30) || ".join(parts) + ")"


def describe(conn: Connection, relation: str, key: Sequence[str]) -> Relation:
    schema, _, table = relation.rpartition(".")
    if not schema:
        raise SyncError(f"model {relation!r} must be written schema.table, e.g. marts.sync_crm__contacts")
    rows = conn.fetchall(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position", [schema, table])
    if not rows:
        raise SyncError(f"model {relation} does not exist in the warehouse (or has no columns); build it first "
                        "(dbt build --select " + table + ")")
    columns = tuple(ModelColumn(name, kind_of(sql_type), sql_type) for name, sql_type in rows)
    missing = [k for k in key if k not in {c.name for c in columns}]
    if not key or missing:
        raise SyncError(f"key column(s) {missing or list(key)} not in {relation}; its columns are "
                        f"{', '.join(c.name for c in columns)}")
    return Relation(schema, table, columns, tuple(key))


def kind_of(sql_type: str) -> str:
    t = sql_type.lower()
    if t.startswith(("timestamp with time zone", "timestamptz", "timestamp_tz")):
        return TIMESTAMPTZ
    if t.startswith(("timestamp", "datetime")):
        return TIMESTAMP
    if t == "date":
        return DATE
    if t in ("boolean", "bool"):
        return BOOLEAN
    if t in ("tinyint", "smallint", "integer", "int", "bigint", "hugeint", "utinyint", "usmallint", "uinteger",
             "ubigint", "int2", "int4", "int8"):
        return INTEGER
    if t.startswith(("double", "float", "real", "decimal", "numeric")):
        return DECIMAL
    if t.startswith(("varchar", "character", "text", "char", "uuid")):
        return TEXT
    return OTHER


def canonical_text(kind: str, column_kind: str, value: str) -> str:
    """SQL rendering `value` (a non-NULL column) as text both engines agree on."""
    if column_kind == TIMESTAMPTZ:
        value, column_kind = f"({value} AT TIME ZONE 'UTC')", TIMESTAMP
    if column_kind == TIMESTAMP:
        return (f"strftime(cast({value} as timestamp), '%Y-%m-%dT%H:%M:%S.%f')" if kind == "duckdb"
                else f"to_char({value}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')")
    if column_kind == DATE:
        return f"strftime({value}, '%Y-%m-%d')" if kind == "duckdb" else f"to_char({value}, 'YYYY-MM-DD')"
    if column_kind == BOOLEAN:
        return f"(CASE WHEN {value} THEN 'true' ELSE 'false' END)"
    if column_kind == DECIMAL:
        return f"cast(cast({value} as decimal(38, 6)) as varchar)"
    return f"cast({value} as varchar)"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
