"""PostgreSQL indexes for the lookups that run row by row against large raw tables.

The last look before sending (reverse_etl/presend.py) matches each page's addresses against every
consent change and provider event by the normalized address. Without an index on that very
expression PostgreSQL scans both tables for every page: at 100K customers (a million events) 65K
messages took over half an hour instead of half a minute. The expressions come from the one address
rule (dagster_project.addresses), so the planner sees the same expression the query uses.

DuckDB needs none of this (its hash joins scan columnar data quickly), so nothing is created there.
After a load the table is ANALYZEd: a nested loop planned over a table the planner thinks is empty
is the other way a page query degenerates."""

from __future__ import annotations

from dagster_project.addresses import normalized_address_sql
from dagster_project.warehouse import Connection

_DDL_LOCK = 7_362_003  # PostgreSQL advisory lock key (ledger.py 7_362_001, pauses.py 7_362_002)
# table -> (index name, indexed expression or columns)
LOOKUP_INDEXES = {
    "raw.consent_events": (
        ("consent_events_normalized_email", f"({normalized_address_sql('email')})"),
        ("consent_events_user_id", "user_id"),
    ),
    "raw.esp_events": (
        ("esp_events_normalized_email", f"({normalized_address_sql('email')})"),
    ),
}


def ensure_lookup_indexes(conn: Connection, table: str) -> None:
    """Create the table's lookup indexes that are missing (PostgreSQL only). Checked first: CREATE
    INDEX IF NOT EXISTS still takes a lock that waits for every open writer of the table."""
    if conn.kind != "postgres" or table not in LOOKUP_INDEXES:
        return
    if not _missing(conn, table):
        return
    # Two ingest runs starting together would race on the catalog: one creates, the other waits.
    conn.execute(f"SELECT pg_advisory_xact_lock({_DDL_LOCK})")
    for index, expression in _missing(conn, table):
        conn.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {table} ({expression})")


def _missing(conn: Connection, table: str) -> list[tuple[str, str]]:
    schema, name = table.split(".")
    present = {row[0] for row in conn.fetchall(
        "SELECT indexname FROM pg_indexes WHERE schemaname = ? AND tablename = ?", [schema, name])}
    return [(index, expression) for index, expression in LOOKUP_INDEXES[table] if index not in present]


def analyze_after_load(conn: Connection, table: str) -> None:
    """Fresh statistics for the planner after rows were added (PostgreSQL only)."""
    if conn.kind == "postgres":
        conn.execute(f"ANALYZE {table}")
