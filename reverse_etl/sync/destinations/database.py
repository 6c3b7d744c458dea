"""The embedded CRM: a contacts table in any SQLAlchemy database (a SQLite file by default).

The table is created on first use with the model's columns, `synced_at`, the key as primary key and the
required columns (email) NOT NULL. Upserts use the dialect's ON CONFLICT on SQLite and PostgreSQL and
select-then-update/insert elsewhere; update_only updates rows the table already holds. A batch runs in
one transaction; when the database refuses it (a constraint), it is split in halves, each in its own
transaction, down to single rows: the good rows are kept and the bad ones rejected with the database's
reason.

The target's identity is the database and table (backend, host, port, database, table; never the user
or password). The password is added to the URL only when connecting (`password`), so a URL without it
can sit in Dagster resource config, and every URL in a message is redacted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc

from dagster_project.redaction import redact_url
from dagster_project.settings import CRM_BATCH_LIMITS
from reverse_etl.sync.destinations.base import UPSERT, BatchResult, SyncRow
from reverse_etl.sync.errors import SyncError, TransientFailure
from reverse_etl.sync.pacing import Pacer
from reverse_etl.sync.relation import (
    BOOLEAN,
    DATE,
    DECIMAL,
    INTEGER,
    TEXT,
    TIMESTAMP,
    TIMESTAMPTZ,
    ModelColumn,
    Relation,
)

SYNCED_AT = "synced_at"
_TYPES = {TEXT: sa.String, INTEGER: sa.BigInteger, DECIMAL: sa.Float, BOOLEAN: sa.Boolean,
          TIMESTAMP: sa.DateTime, TIMESTAMPTZ: sa.DateTime, DATE: sa.Date}


class DatabaseCrm:
    name = "database"
    max_batch = CRM_BATCH_LIMITS["database"]

    def __init__(self, url: str, table: str, pacer: Pacer, required: Sequence[str] = ("email",),
                 password: Callable[[], str] | None = None):
        self.url = url
        self.table_name = table
        self.pacer = pacer
        self.required = tuple(required)
        self._password = password  # read when connecting, for a URL given without its password
        self._engine: sa.Engine | None = None
        self.table: sa.Table | None = None
        self.key: tuple[str, ...] = ()

    def identity(self) -> str:
        """`database:<backend>://<host>:<port>/<database>#<table>`: which table in which database, whoever
        logs in; a SQLite file by its absolute path."""
        url = self._parsed_url()
        backend, database = url.get_backend_name(), url.database or ""
        if backend == "sqlite" and database not in ("", ":memory:"):
            database = str(Path(database).resolve())
        port = f":{url.port}" if url.port else ""
        return f"database:{backend}://{(url.host or '').lower()}{port}/{database}#{self.table_name}"

    def rows_held(self) -> int:
        """Rows in the CRM table now: 0 when the table, or the SQLite file, does not exist (which this
        does not create)."""
        url = self._parsed_url()
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
                and not Path(url.database).exists():
            return 0
        schema, _, name = self.table_name.rpartition(".")
        try:
            with self._connect().connect() as conn:
                if not sa.inspect(conn).has_table(name, schema=schema or None):
                    return 0
                count = sa.select(sa.func.count()).select_from(sa.table(name, schema=schema or None))
                return int(conn.execute(count).scalar_one())
        except exc.OperationalError as error:
            raise SyncError(f"cannot open the CRM database {redact_url(self.url)}: {error.orig}; check "
                            "MAILROOM_CRM_DATABASE_URL") from error

    def prepare(self, relation: Relation) -> None:
        self.key = relation.key
        schema, _, name = self.table_name.rpartition(".")
        metadata = sa.MetaData(schema=schema or None)
        try:
            with self._connect().begin() as conn:
                if sa.inspect(conn).has_table(name, schema=schema or None):
                    self.table = sa.Table(name, metadata, autoload_with=conn)
                else:
                    self.table = sa.Table(name, metadata, *self._columns(relation.columns))
                    self.table.create(conn)
        except exc.OperationalError as error:
            raise SyncError(f"cannot open the CRM database {redact_url(self.url)}: {error.orig}; check "
                            "MAILROOM_CRM_DATABASE_URL") from error
        missing = [c.name for c in relation.columns if c.name not in self.table.c] + (
            [SYNCED_AT] if SYNCED_AT not in self.table.c else [])
        if missing:
            raise SyncError(f"the CRM table {self.table_name} in {redact_url(self.url)} lacks column(s) {missing} that "
                            f"{relation.name} has; add them (or drop the table to have it created again)")

    def _parsed_url(self) -> sa.URL:
        try:
            return sa.engine.make_url(self.url)
        except (exc.ArgumentError, ValueError):
            raise SyncError(f"the CRM database URL {redact_url(self.url)!r} is not a database URL SQLAlchemy "
                            "understands; check MAILROOM_CRM_DATABASE_URL") from None

    def _connect(self) -> sa.Engine:
        if self._engine is None:
            url = self._parsed_url()
            if url.password is None and self._password is not None and (password := self._password()):
                url = url.set(password=password)
            self._engine = _engine(url)
        return self._engine

    def _columns(self, model_columns: Sequence[ModelColumn]) -> list[sa.Column]:
        return [sa.Column(c.name, _TYPES.get(c.kind, sa.String)(), primary_key=c.name in self.key,
                          nullable=c.name not in self.key and c.name not in self.required)
                for c in model_columns] + [sa.Column(SYNCED_AT, sa.DateTime(), nullable=False)]

    def existing(self, rows: list[SyncRow]) -> set[str]:
        by_key = {_key_tuple(row, self.key): row.key for row in rows}
        return {by_key[k] for k in self.pacer.call(lambda: self._existing_keys(list(by_key)), "CRM table lookup")}

    def write(self, rows: list[SyncRow], mode: str) -> BatchResult:
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        return self._write_or_split(rows, [{**row.values, SYNCED_AT: now} for row in rows], mode)

    def _write_or_split(self, rows: list[SyncRow], records: list[dict], mode: str) -> BatchResult:
        """The rows in one transaction; when the database refuses it, each half in its own, down to single
        rows, which are rejected with the database's reason (a few statements for a few bad rows)."""
        try:
            self.pacer.call(lambda: self._write(records, mode), f"write of {len(rows)} rows to {self.table_name}")
            return BatchResult(acknowledged={row.key for row in rows})
        except exc.DBAPIError as error:
            if len(rows) == 1:
                return BatchResult(rejected={rows[0].key: _reason(error)})
        middle = len(rows) // 2
        result = self._write_or_split(rows[:middle], records[:middle], mode)
        result.merge(self._write_or_split(rows[middle:], records[middle:], mode))
        return result

    def _write(self, records: list[dict], mode: str) -> None:
        """One transaction; a refused statement raises DBAPIError, a lost connection TransientFailure."""
        table = self.table
        updated = [c.name for c in table.c if c.name not in self.key]
        try:
            with self._engine.begin() as conn:
                if mode == UPSERT and conn.dialect.name in ("sqlite", "postgresql"):
                    insert = _dialect_insert(conn.dialect.name)(table)
                    statement = insert.on_conflict_do_update(
                        index_elements=list(self.key), set_={name: insert.excluded[name] for name in updated})
                    conn.execute(statement, records)
                    return
                present = set(self._existing_keys([tuple(r[k] for k in self.key) for r in records], conn))
                old = [r for r in records if tuple(r[k] for k in self.key) in present]
                if old:
                    match = sa.and_(*(table.c[k] == sa.bindparam(f"key_{k}") for k in self.key))
                    conn.execute(table.update().where(match).values({n: sa.bindparam(n) for n in updated}),
                                 [{**r, **{f"key_{k}": r[k] for k in self.key}} for r in old])
                new = [r for r in records if tuple(r[k] for k in self.key) not in present]
                if new and mode == UPSERT:
                    conn.execute(table.insert(), new)
        except exc.OperationalError as error:
            if _is_refusal(error):
                raise
            raise TransientFailure(f"CRM database {redact_url(self.url)}: {error.orig}") from error

    def _existing_keys(self, keys: list[tuple], conn: sa.Connection | None = None) -> set[tuple]:
        table, found = self.table, set()
        columns = [table.c[k] for k in self.key]
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            where = (columns[0].in_([k[0] for k in chunk]) if len(columns) == 1
                     else sa.tuple_(*columns).in_(chunk))
            query = sa.select(*columns).where(where)
            if conn is not None:
                found |= {tuple(r) for r in conn.execute(query)}
            else:
                try:
                    with self._engine.connect() as own:
                        found |= {tuple(r) for r in own.execute(query)}
                except exc.OperationalError as error:
                    raise TransientFailure(f"CRM database {redact_url(self.url)}: {error.orig}") from error
        return found

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _engine(parsed: sa.URL) -> sa.Engine:
    if parsed.drivername.startswith("postgresql") and "+" not in parsed.drivername:
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, which Mailroom installs
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(parsed)


def _dialect_insert(dialect: str):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _key_tuple(row: SyncRow, key: Sequence[str]) -> tuple:
    return tuple(row.values[k] for k in key)


def _is_refusal(error: exc.OperationalError) -> bool:
    """SQLite reports some refusals of the data (not of the connection) as OperationalError."""
    text = str(error.orig).lower()
    return "no such column" in text or "has no column" in text or "too many" in text


def _reason(error: exc.DBAPIError) -> str:
    return f"{type(error.orig).__name__}: {str(error.orig).splitlines()[0] if str(error.orig) else error}"[:500]

