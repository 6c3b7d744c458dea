"""Reading the metrics marts: small query results as dicts of plain values."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from dagster_project.warehouse import Connection


def read(conn: Connection, table: str, columns: Sequence[str], rest: str = "") -> list[dict]:
    """`SELECT columns FROM table rest` as one dict per row. A mart not built yet reads as no rows."""
    if not conn.table_exists(*table.split(".", 1)):
        return []
    rows = conn.fetchall(f"SELECT {', '.join(columns)} FROM {table} {rest}")
    return [dict(zip(columns, map(_plain, row))) for row in rows]


def _plain(value):
    """Decimals (revenue, USD) as floats for charts and JSON."""
    return float(value) if isinstance(value, Decimal) else value
