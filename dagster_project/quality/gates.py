"""Runs a quality suite against the warehouse and summarises the outcome for a Dagster asset check.

PostgreSQL is validated through GX's SQL datasource, so the work is pushed down and failing rows
come with an `unexpected_index_query`. DuckDB has no working GX SQL datasource, so its batch is a
pandas frame holding only the columns the suite reads.
"""

from __future__ import annotations

import re
import time
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import great_expectations as gx
import pandas
from great_expectations.data_context.types.base import ProgressBarsConfig

from dagster_project.quality.descriptions import ExpectationText
from dagster_project.quality.masking import shown
from dagster_project.quality.suites import QualitySuite
from dagster_project.quality.volume import VolumeResult, measure_volume
from dagster_project.warehouse import Warehouse

FAILING_KEYS_SHOWN = 5
# Matches ingest's clock-skew tolerance (ingest/values.py Clock).
FUTURE_TOLERANCE = timedelta(days=1)


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str | None
    severity: str  # critical | warning | info
    success: bool
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    failing_keys: tuple[str, ...] = ()
    unexpected_index_query: str | None = None
    error: str | None = None
    # For people (suites.ExpectationText): unique within the suite, the rows it applies to, the note.
    display_label: str = ""
    condition: str | None = None
    note: str | None = None

    @property
    def label(self) -> str:
        """The stable identifier logs, tests and alerts match on; not unique within a suite
        (two checks on one column share it): show `display_label` to people."""
        return f"{self.expectation}({self.column})" if self.column else self.expectation


@dataclass
class GateResult:
    suite: QualitySuite
    rows: int
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    volume: VolumeResult | None = None
    seconds: float = 0.0
    gx_result: object = None

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.success]

    @property
    def blocking_failures(self) -> list[str]:
        """Labels of failed critical expectations (and the volume band when it is critical)."""
        failed = [o.label for o in self.failures if o.severity == "critical"]
        if self.volume and not self.volume.passed and self.volume.band.severity == "critical":
            failed.append("volume_within_band")
        return failed

    @property
    def warnings(self) -> list[str]:
        failed = [o.label for o in self.failures if o.severity != "critical"]
        if self.volume and not self.volume.passed and self.volume.band.severity != "critical":
            failed.append("volume_within_band")
        return failed

    @property
    def passed(self) -> bool:
        return not self.blocking_failures and not self.warnings


def expectation_parameters(now: datetime) -> dict:
    """Values suites may reference as {"$PARAMETER": name}; documented in expectations/README.md."""
    return {
        "now": now,
        "latest_allowed_timestamp": now + FUTURE_TOLERANCE,
        "iana_timezones": sorted(zoneinfo.available_timezones()),
    }


def ephemeral_context():
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def run_gate(
    warehouse: Warehouse,
    suite: QualitySuite,
    reference_time: datetime | None = None,
    context=None,
    parameters: dict | None = None,
) -> GateResult:
    """Validate `suite` against its table. `reference_time` anchors the volume band (as_of or now)."""
    started = time.perf_counter()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    reference_time = reference_time or now
    context = context or ephemeral_context()

    with warehouse.connect() as conn:
        batch_sql = _batch_sql(conn, suite)
    snapshot = _snapshot(warehouse, suite, batch_sql)
    try:
        with warehouse.connect() as conn:
            volume = measure_volume(conn, suite.table, suite.volume, reference_time) if suite.volume else None
            rows = int(conn.scalar(f"select count(*) from ({batch_sql}) as batch"))
            gx_result, positions = None, {}
            if suite.expectations:
                batch, index_queries = _batch(context, warehouse, suite, conn, batch_sql, snapshot)
                gx_suite = context.suites.add(suite.gx_suite())
                positions = {expectation.id: position for position, expectation in enumerate(gx_suite.expectations)}
                validation = context.validation_definitions.add(
                    gx.ValidationDefinition(name=suite.name, data=batch["definition"], suite=gx_suite)
                )
                gx_result = validation.run(
                    batch_parameters=batch["parameters"],
                    expectation_parameters={**expectation_parameters(now), **(parameters or {})},
                    result_format={
                        "result_format": "COMPLETE",
                        "unexpected_index_column_names": list(suite.key_columns),
                        "partial_unexpected_count": FAILING_KEYS_SHOWN,
                        "return_unexpected_index_query": index_queries,
                    },
                )
    finally:
        if snapshot:
            with warehouse.connect() as conn:
                conn.execute(f"drop table if exists {snapshot}")
    results = gx_result.results if gx_result else []
    # GX returns results in its own order (expectations that raised first); people read the suite's.
    placed = sorted(
        ((positions.get(result.expectation_config.id, i), result) for i, result in enumerate(results)),
        key=lambda pair: pair[0],
    )
    texts = suite.described()
    outcomes = [_outcome(result, suite, texts[position]) for position, result in placed]
    return GateResult(suite, rows, outcomes, volume, time.perf_counter() - started, gx_result)


def _batch_sql(conn, suite: QualitySuite) -> str:
    relation = f"({suite.query}) as source" if suite.query else suite.table
    derived = {name: conn.json_text(*spec) for name, spec in suite.json_columns.items()}
    plain = [c for c in suite.referenced_columns() if c not in derived]
    selected = [*plain, *(f"{sql} as {name}" for name, sql in derived.items())]
    return f"select {', '.join(selected) or '*'} from {relation}"


def _snapshot(warehouse: Warehouse, suite: QualitySuite, batch_sql: str) -> str | None:
    """On PostgreSQL, a suite whose batch is a query (joins, JSON) is validated on a snapshot table of
    that query: GX would otherwise re-run the whole query inside every metric, and the planner
    handles the nested joins badly (minutes instead of seconds at 100K customers)."""
    if warehouse.kind != "postgres" or not (suite.query or suite.json_columns) or not suite.expectations:
        return None
    snapshot = "ops.gx_batch__" + re.sub(r"\W", "_", suite.name)
    with warehouse.connect() as conn:
        conn.execute("create schema if not exists ops")
        conn.execute(f"drop table if exists {snapshot}")
        conn.execute(f"create table {snapshot} as {batch_sql}")
        conn.execute(f"analyze {snapshot}")
    return snapshot


def _batch(context, warehouse: Warehouse, suite: QualitySuite, conn, batch_sql: str, snapshot: str | None):
    """A GX batch definition for the suite and whether GX can print a runnable failing-rows query."""
    if warehouse.kind == "duckdb":
        frame = conn.raw.execute(batch_sql).df()
        asset = context.data_sources.add_pandas(f"duckdb {suite.name}").add_dataframe_asset(suite.name)
        definition = asset.add_batch_definition_whole_dataframe("all")
        return {"definition": definition, "parameters": {"dataframe": frame}}, False
    schema, table = (snapshot or suite.table).split(".")
    # GX wants the schema in the connection, not on the asset; one data source per suite allows that.
    url = warehouse.settings.postgres.url.replace("postgresql://", "postgresql+psycopg://", 1)
    source = context.data_sources.add_postgres(
        f"postgres {suite.name}", connection_string=f"{url}?options=-csearch_path%3D{schema}"
    )
    asset = source.add_table_asset(suite.name, table_name=table)
    # A failing-rows query on the snapshot would point at a table that is dropped after the run.
    return {"definition": asset.add_batch_definition_whole_table("all"), "parameters": {}}, snapshot is None


def _outcome(result, suite: QualitySuite, text: ExpectationText) -> ExpectationOutcome:
    config = result.expectation_config
    details = result.result or {}
    column = config.kwargs.get("column")
    error = None
    if result.exception_info and result.exception_info.get("raised_exception"):
        error = str(result.exception_info.get("exception_message"))[:300]
    failing = []
    for row in (details.get("unexpected_index_list") or [])[:FAILING_KEYS_SHOWN]:
        if isinstance(row, dict):
            # Key columns first, in the suite's order, so both engines print the same text.
            names = [*suite.key_columns, *sorted(set(row) - set(suite.key_columns))]
            failing.append(", ".join(f"{k}={shown(k, _plain(row[k]), suite.pii_columns)}" for k in names if k in row))
    return ExpectationOutcome(
        expectation=config.type,
        column=column,
        severity=getattr(config.severity, "value", str(config.severity)).lower(),
        success=bool(result.success),
        unexpected_count=_number(details.get("unexpected_count"), int),
        unexpected_percent=_number(details.get("unexpected_percent"), float),
        failing_keys=tuple(failing),
        unexpected_index_query=_in_schema(details.get("unexpected_index_query"), suite) if not result.success else None,
        error=error,
        display_label=text.label,
        condition=text.condition,
        note=text.note,
    )


def _plain(value):
    """A pandas batch reports a missing value as NaN or NaT; SQL as None. Both print as null."""
    try:
        return None if pandas.isna(value) else value
    except (TypeError, ValueError):  # a list or array: not a missing scalar
        return value


def _number(value, kind):
    """GX's counts as plain Python numbers (a pandas batch can give numpy ones)."""
    return None if value is None else kind(value)


def _in_schema(query: str | None, suite: QualitySuite) -> str | None:
    if not query or query.startswith("df."):  # pandas gives a DataFrame filter, not SQL
        return None
    return f"SET search_path TO {suite.table.split('.')[0]};\n{query}"
