"""Reading the metrics marts: small query results as rows of named values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from dagster_project.warehouse import Connection


@dataclass(frozen=True)
class Rows:
    columns: tuple[str, ...]
    values: list[tuple]

    def __len__(self) -> int:
        return len(self.values)

    def column(self, name: str) -> list:
        index = self.columns.index(name)
        return [_plain(row[index]) for row in self.values]

    def dicts(self) -> list[dict]:
        return [dict(zip(self.columns, map(_plain, row))) for row in self.values]

    def where(self, **equal) -> Rows:
        indexes = {self.columns.index(name): value for name, value in equal.items()}
        return Rows(self.columns, [row for row in self.values if all(row[i] == v for i, v in indexes.items())])


def read(conn: Connection, sql: str, columns: Sequence[str], params: Sequence | None = None) -> Rows:
    """`sql` selects exactly `columns`, in that order. A mart not built yet reads as no rows."""
    table = sql.split(" FROM ", 1)[1].split()[0] if " FROM " in sql else ""
    if "." in table and not conn.table_exists(*table.split(".", 1)):
        return Rows(tuple(columns), [])
    return Rows(tuple(columns), conn.fetchall(sql, params))


def _plain(value):
    """Decimals (revenue, USD) as floats for charts and JSON."""
    return float(value) if isinstance(value, Decimal) else value
