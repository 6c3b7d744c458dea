"""The experiment readout in the warehouse: 10M units in marts.experiment_units, summed per arm by one
GROUP BY and read by the same statistics as the CSV command.

    python -m benchmarks.experiment_warehouse [--rows 10000000] [--warehouses duckdb,postgres]

Per warehouse, a scratch database (a DuckDB file, or a PostgreSQL database created and dropped) gets
`--rows` synthetic units generated in SQL (3 arms, clicks and revenue); then the readout runs in its own
process (benchmarks.run.measure: wall seconds and peak resident memory of that process; the PostgreSQL
server's memory is not included). Prints JSON and writes benchmarks/results/experiments-<warehouse>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.machine import describe
from benchmarks.report import write_report
from benchmarks.run import RESULTS, ROOT, environment, measure, scratch_warehouse
from dagster_project.settings import Settings, load_settings
from dagster_project.warehouse import Warehouse

CAMPAIGN = "bench"
# arm, click rate, mean revenue of a click: variant_a clicks 3% more, variant_b spends 3% more
ARMS = (("control", 0.100, 20.0), ("variant_a", 0.103, 20.0), ("variant_b", 0.100, 20.6))


def _unit_sql(kind: str, rows: int) -> str:
    """SELECT of `rows` units: arm by row number, a click by a hash-uniform draw, revenue on clicks."""
    series = f"range({rows}) AS t(n)" if kind == "duckdb" else f"generate_series(0, {rows - 1}) AS t(n)"
    uniform = ("(hash(n) % 1000000) / 1000000.0" if kind == "duckdb"
               else "(('x' || substr(md5(n::text), 1, 8))::bit(32)::bigint % 1000000) / 1000000.0")
    arm = "CASE n % 3 " + " ".join(f"WHEN {i} THEN '{name}'" for i, (name, _, _) in enumerate(ARMS)) + " END"
    rate = "CASE n % 3 " + " ".join(f"WHEN {i} THEN {r}" for i, (_, r, _) in enumerate(ARMS)) + " END"
    spend = "CASE n % 3 " + " ".join(f"WHEN {i} THEN {s}" for i, (_, _, s) in enumerate(ARMS)) + " END"
    return (f"SELECT '{CAMPAIGN}' AS campaign_id, '2026-11-01' AS run_key, {arm} AS arm, 'full' AS phase, "
            f"true AS is_delivered, false AS is_opened, {uniform} < {rate} AS is_clicked, false AS is_converted, "
            f"CAST(CASE WHEN {uniform} < {rate} THEN {spend} * (0.5 + {uniform} / {rate}) ELSE 0 END "
            f"AS decimal(14, 2)) AS revenue FROM {series}")


def load_units(settings: Settings, rows: int) -> None:
    with Warehouse(settings).connect() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS marts")
        conn.execute("DROP TABLE IF EXISTS marts.experiment_units")
        conn.execute(f"CREATE TABLE marts.experiment_units AS {_unit_sql(settings.warehouse, rows)}")
        if settings.warehouse == "postgres":
            conn.execute("ANALYZE marts.experiment_units")


def readout() -> dict:
    """The stage measured in its own process: sums per arm in the warehouse, statistics in Python."""
    from dagster_project.experiments.readout import ReadoutOptions, compute_readout
    from dagster_project.experiments.warehouse_readout import arm_totals, metric_specs

    with Warehouse(load_settings()).connect() as conn:
        arms = arm_totals(conn, CAMPAIGN, None, None, metric_specs())
    result = compute_readout(arms, "control", metric_specs(), ReadoutOptions(sequential=True))
    return {"units": sum(a.units for a in result.arms), "has_srm": result.has_srm,
            "significant": [f"{r.variant}:{r.metric}" for r in result.rows if r.is_significant]}


def run(kind: str, rows: int, scratch: Path) -> dict:
    with scratch_warehouse(kind, scratch / kind, "mailroom_bench_experiments") as settings:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        print(f"[{kind}] loading {rows:,} units ...", flush=True)
        load_units(settings, rows)
        figures = measure([sys.executable, "-m", "benchmarks.experiment_warehouse", "--stage"], environment(settings))
        figures.update(json.loads(figures.pop("stdout").strip().splitlines()[-1]))
        if figures["units"] != rows:
            raise SystemExit(f"[{kind}] the readout counted {figures['units']:,} units of {rows:,}")
        print(f"[{kind}] readout of {rows:,} units: {figures['seconds']}s, {figures['peak_memory_mib']} MiB",
              flush=True)
        return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--warehouses", default="duckdb,postgres")
    parser.add_argument("--stage", action="store_true", help=argparse.SUPPRESS)  # the measured child process
    args = parser.parse_args(argv)
    if args.stage:
        print(json.dumps(readout()))
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mailroom-bench-experiments-") as scratch:
        for kind in args.warehouses.split(","):
            figures = run(kind, args.rows, Path(scratch))
            result = {"rows": args.rows, "warehouse": kind, "machine": describe(),
                      "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "readout": figures}
            (RESULTS / f"experiments-{kind}.json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(RESULTS, ROOT / "BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
