"""A thin connection layer over the two supported warehouses: embedded DuckDB and PostgreSQL.

Only what differs between the engines lives here (connecting, bulk-loading a CSV file, listing
tables); every other statement Mailroom runs is plain SQL that both engines accept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dagster_project.settings import Settings

SCHEMAS = ("raw", "staging", "intermediate", "marts", "ops")


class WarehouseError(RuntimeError):
    pass


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str  # portable type name accepted by DuckDB and PostgreSQL


def columns(spec: str) -> tuple[Column, ...]:
    """Columns from "name:TYPE name:TYPE ..." (types portable across DuckDB and PostgreSQL)."""
    return tuple(Column(*item.split(":")) for item in spec.split())


class Connection:
    """One open connection inside `Warehouse.connect()`. Parameters are written as `?` in both
    engines' SQL (translated to psycopg's %s), so callers write each statement once."""

    def __init__(self, kind: str, raw, commits: bool = True):
        self.kind = kind
        self.raw = raw
        self._commits = commits

    def begin(self) -> None:
        # psycopg opens a transaction with the first statement; DuckDB autocommits unless told.
        if self.kind == "duckdb":
            self.raw.execute("BEGIN TRANSACTION")

    def commit(self) -> None:
        """Make the work so far durable and go on in a new transaction (a no-op in a dry run)."""
        if not self._commits:
            return
        self.raw.commit() if self.kind == "postgres" else self.raw.execute("COMMIT")
        self.begin()

    def rollback(self) -> None:
        self.raw.rollback() if self.kind == "postgres" else self.raw.execute("ROLLBACK")
        self.begin()

    def execute(self, sql: str, params: Sequence | None = None) -> int:
        """Run one statement; returns the number of rows it inserted, updated or deleted."""
        if self.kind == "postgres":
            with self.raw.cursor() as cur:
                cur.execute(sql.replace("?", "%s") if params else sql, params)
                return max(cur.rowcount, 0)
        result = self.raw.execute(sql, params or [])
        is_dml = sql.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE")
        return int(result.fetchone()[0]) if is_dml else 0

    def fetchall(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        if self.kind == "postgres":
            with self.raw.cursor() as cur:
                cur.execute(sql.replace("?", "%s") if params else sql, params)
                return cur.fetchall()
        return self.raw.execute(sql, params or []).fetchall()

    def scalar(self, sql: str, params: Sequence | None = None):
        rows = self.fetchall(sql, params)
        return rows[0][0] if rows else None

    def load_csv(self, table: str, columns: Sequence[Column], csv_path: Path, max_line_bytes: int = 16 << 20) -> None:
        """Bulk-load a CSV file with a header row (empty unquoted field = NULL) into `table`; DuckDB
        needs to know how long a row may be (PostgreSQL's COPY has no such limit)."""
        names = ", ".join(c.name for c in columns)
        if self.kind == "postgres":
            copy_sql = f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv, HEADER true)"
            with self.raw.cursor() as cur, cur.copy(copy_sql) as copy, open(csv_path, "rb") as source:
                while chunk := source.read(1 << 20):
                    copy.write(chunk)
            return
        types = ", ".join(f"'{c.name}': '{c.sql_type}'" for c in columns)
        self.raw.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM read_csv(?, header = true, "
            f"columns = {{{types}}}, quote = '\"', escape = '\"', nullstr = '', "
            f"max_line_size = {max(max_line_bytes, 16 << 20)}, buffer_size = {4 * max(max_line_bytes, 16 << 20)}, "
            "auto_detect = false)",
            [str(csv_path)],
        )

    def create_table(self, table: str, columns: Sequence[Column], temporary: bool = False) -> None:
        """CREATE TABLE (IF NOT EXISTS, for permanent tables) from portable column types."""
        body = ", ".join(f"{c.name} {c.sql_type}" for c in columns)
        kind = "TEMPORARY TABLE" if temporary else "TABLE IF NOT EXISTS"
        self.execute(f"CREATE {kind} {table} ({body})")

    def add_missing_columns(self, table: str, columns: Sequence[Column]) -> None:
        """Columns a later release added appear in an existing table too. Checked first: on PostgreSQL
        ALTER TABLE takes an exclusive lock on the table even when it changes nothing."""
        schema, name = table.split(".")
        present = {row[0] for row in self.fetchall(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [schema, name])}
        for column in columns:
            if column.name not in present:
                self.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column.name} {column.sql_type}")

    def json_text(self, column: str, key: str) -> str:
        """SQL for the text value of a top-level key in a JSON text column."""
        if self.kind == "postgres":
            return f"(cast({column} as jsonb) ->> '{key}')"
        return f"json_extract_string({column}, '$.{key}')"

    def table_exists(self, schema: str, table: str) -> bool:
        return bool(
            self.scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [schema, table],
            )
        )

    def tables(self, schemas: Sequence[str] = SCHEMAS) -> list[tuple[str, str]]:
        marks = ", ".join("?" for _ in schemas)
        return [
            (s, t)
            for s, t in self.fetchall(
                "SELECT table_schema, table_name FROM information_schema.tables "
                f"WHERE table_schema IN ({marks}) ORDER BY 1, 2",
                list(schemas),
            )
        ]


def ensure_table(conn: Connection, table: str, table_columns: Sequence[Column],
                 unique_keys: Sequence[tuple[str, ...]], lock_key: int) -> None:
    """Create `table` with its unique keys unless it exists. Two runs creating a table at once collide in
    PostgreSQL's catalog (pg_type's unique index, even with IF NOT EXISTS), so creators take turns, each
    holding the advisory lock `lock_key` until its transaction ends."""
    schema, name = table.split(".")
    if conn.table_exists(schema, name):
        return
    if conn.kind == "postgres":
        conn.execute(f"SELECT pg_advisory_xact_lock({lock_key})")
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    conn.create_table(table, table_columns)
    for key in unique_keys:
        conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {name}__{'__'.join(key)} ON {table} ({', '.join(key)})")


class Warehouse:
    """Opens short-lived connections: DuckDB allows one writing process, and dbt runs in another."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.kind = settings.warehouse

    @property
    def description(self) -> str:
        if self.kind == "duckdb":
            return f"DuckDB at {self.settings.duckdb_path}"
        pg = self.settings.postgres
        return f"PostgreSQL database {pg.dbname} on {pg.host}:{pg.port}"

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        with self.session() as conn:
            yield conn

    @contextmanager
    def session(self, commit: bool = True) -> Iterator[Connection]:
        """A connection for long work that commits as it goes (`conn.commit()`) and at a normal end;
        an error rolls back what was not committed. With commit=False nothing is ever committed
        (a dry run walks the same code and leaves the warehouse as it was)."""
        raw = self._open()
        conn = Connection(self.kind, raw, commits=commit)
        try:
            conn.begin()
            yield conn
            conn.commit()
            if not commit:
                conn.rollback()
        except BaseException:
            conn.rollback()
            raise
        finally:
            raw.close()

    def _open(self):
        if self.kind == "duckdb":
            import duckdb

            path = Path(self.settings.duckdb_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                return duckdb.connect(str(path))
            except duckdb.IOException as error:
                raise WarehouseError(
                    f"Cannot open the DuckDB warehouse {path}: {error}. DuckDB allows one writing "
                    "process; stop the other process (a dbt run, a notebook, a second Dagster run) "
                    "or point MAILROOM_DUCKDB_PATH elsewhere."
                ) from error
        import psycopg

        pg = self.settings.postgres
        try:
            return psycopg.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname=pg.dbname)
        except psycopg.OperationalError as error:
            raise WarehouseError(
                f"Cannot connect to {self.description}: {error}. Check MAILROOM_PG_URL (or the PG* "
                "variables) and that the database exists (createdb "
                f"{pg.dbname})."
            ) from error

    def ensure_schemas(self) -> None:
        with self.connect() as conn:
            for schema in SCHEMAS:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
