"""`make bench SCALE=100000`: generate (or reuse) sample data at that scale, run each pipeline stage
on DuckDB and on PostgreSQL in its own process, and record wall seconds and peak memory.

Results go to benchmarks/results/<scale>-<warehouse>.json; BENCHMARKS.md is rebuilt from them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path

import psycopg

from benchmarks.machine import describe
from benchmarks.report import write_report
from dagster_project.resources import dbt_executable
from dagster_project.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "cache"
RESULTS = ROOT / "benchmarks" / "results"
# A fixed as-of date keeps cached data sets valid across days.
AS_OF = date(2026, 11, 1)


def measure(command: list[str], env: dict[str, str], cwd: Path = ROOT) -> dict:
    """Run `command`; return wall seconds, peak resident memory (MiB) and its stdout."""
    started = time.perf_counter()
    # Both streams to files: a stage that logs much (Dagster does) would block on a full pipe nobody reads.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark stage failed: {' '.join(command)}\n{stdout[-4000:]}\n{stderr[-4000:]}")
    return {"seconds": round(seconds, 2), "peak_memory_mib": round(usage.ru_maxrss / 1024, 1), "stdout": stdout}


def sample_data(scale: int, seed: int) -> tuple[Path, dict | None]:
    landing = CACHE / f"customers-{scale}-seed-{seed}-asof-{AS_OF.isoformat()}"
    if (landing / "truth" / "summary.json").exists():
        print(f"reusing cached sample data {landing}")
        return landing, None
    print(f"generating {scale:,} customers into {landing} ...", flush=True)
    stage = measure(
        [sys.executable, "-m", "dagster_project.sample_data", "--customers", str(scale), "--seed", str(seed),
         "--out", str(landing), "--as-of", AS_OF.isoformat()],
        env=dict(os.environ),
    )
    stage.pop("stdout")
    return landing, stage


def environment(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(settings.dbt_environment())
    env.update({
        "MAILROOM_DATA_DIR": str(settings.data_dir),
        "MAILROOM_LANDING_DIR": str(settings.landing_dir),
        "MAILROOM_PG_URL": settings.postgres.url,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MAILROOM_AS_OF": AS_OF.isoformat(),
        "NO_COLOR": "1",
    })
    env["PATH"] = str(Path(dbt_executable()).parent) + os.pathsep + env.get("PATH", "")
    return env


SENDS_STAGE = "sends (synthetic messages to each destination)"
LOOP_STAGES = {
    "crm-sync": "CRM sync to the HubSpot double (synthetic contacts)",
    "receiver": "webhook receiver (signed SendGrid events over loopback)",
}


def run_sends(kind: str, env: dict[str, str]) -> dict:
    """Activation and the engagement loop: sends, then the CRM sync and the receiver."""
    print(f"[{kind}] sends ...", flush=True)
    sends = measure([sys.executable, "-m", "benchmarks.stage", "sends"], env)
    sends["destinations"] = json.loads(sends.pop("stdout").strip().splitlines()[-1])
    print(f"[{kind}] sends " + ", ".join(f"{name} {d['messages_per_second']:,}/s"
                                         for name, d in sends["destinations"].items()), flush=True)
    stages = {SENDS_STAGE: sends}
    for stage, label in LOOP_STAGES.items():
        figures = measure([sys.executable, "-m", "benchmarks.stage", stage], env)
        figures["parts"] = json.loads(figures.pop("stdout").strip().splitlines()[-1])
        print(f"[{kind}] {stage} {figures['seconds']}s", flush=True)
        stages[label] = figures
    return stages


@contextmanager
def scratch_warehouse(kind: str, data_dir: Path, name: str, **settings_fields) -> Iterator[Settings]:
    """Settings for a warehouse of `kind` that exists only inside the block: a DuckDB file under
    `data_dir`, or a PostgreSQL database `<name>_<pid>` created and dropped on the configured server."""
    settings = Settings(warehouse=kind, data_dir=data_dir, postgres=load_settings().postgres, **settings_fields)
    if kind != "postgres":
        yield settings
        return
    database = f"{name}_{os.getpid()}"
    _admin(settings, f'CREATE DATABASE "{database}"')
    try:
        yield replace(settings, postgres=replace(settings.postgres, dbname=database))
    finally:
        _admin(settings, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


END_TO_END_STAGE = "end to end (Dagster: daily job, then batch campaigns)"


def run_end_to_end(kind: str, env: dict[str, str]) -> dict:
    """What an operator's schedules run, in one process: each run's seconds and its slowest steps."""
    print(f"[{kind}] daily job end to end ...", flush=True)
    figures = measure([sys.executable, "-m", "benchmarks.stage", "daily-job"], env)
    runs = json.loads(figures.pop("stdout").strip().splitlines()[-1])
    figures["parts"] = {}
    for job, run in runs.items():
        figures["parts"][job] = {"seconds": run["seconds"], "rows_loaded": ""}
        for step, seconds in run["slowest_steps"].items():
            figures["parts"][f"{job} / {step}"] = {"seconds": seconds, "rows_loaded": ""}
        print(f"[{kind}] {job} {run['seconds']}s; slowest: "
              + ", ".join(f"{step} {s}s" for step, s in list(run["slowest_steps"].items())[:3]), flush=True)
    return {END_TO_END_STAGE: figures}


def linked_landing(landing: Path, target: Path) -> Path:
    """A landing directory of links to the cached sample's files, which the next day's files can join
    without changing the cache."""
    for path in landing.rglob("*"):
        if path.is_file():
            link = target / path.relative_to(landing)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    return target


def run_warehouse(kind: str, landing: Path, scratch: Path, only_sends: bool = False,
                  end_to_end: bool = False, next_day: bool = False) -> dict:
    if next_day:
        landing = linked_landing(landing, scratch / f"{kind}-landing")
    with scratch_warehouse(kind, scratch / kind, "mailroom_bench", landing_dir=landing) as settings:
        env = environment(settings)
        if next_day:
            env["MAILROOM_BENCH_NEXT_DAY"] = "1"
        if only_sends:
            return {**run_sends(kind, env), "server_version": _server_version(settings)}
        if end_to_end:
            return {**run_end_to_end(kind, env), "server_version": _server_version(settings)}
        print(f"[{kind}] ingest ...", flush=True)
        ingest = measure([sys.executable, "-m", "benchmarks.stage", "ingest"], env)
        ingest["sources"] = json.loads(ingest.pop("stdout").strip().splitlines()[-1])
        ingest["rows_loaded"] = sum(s["rows_loaded"] for s in ingest["sources"].values())
        print(f"[{kind}] ingest {ingest['seconds']}s, {ingest['rows_loaded']:,} rows", flush=True)
        phones = measure([sys.executable, "-m", "benchmarks.stage", "phone-numbers"], env)
        phones.update(json.loads(phones.pop("stdout").strip().splitlines()[-1]))
        print(f"[{kind}] dbt build ...", flush=True)
        build = measure([dbt_executable(), "build", "--target", kind], env, cwd=ROOT / "dbt")
        build["models"] = _model_seconds(build.pop("stdout"))
        print(f"[{kind}] dbt build {build['seconds']}s", flush=True)
        campaigns = measure([sys.executable, "-m", "benchmarks.stage", "campaigns"], env)
        campaigns["campaigns"] = json.loads(campaigns.pop("stdout").strip().splitlines()[-1])
        print(f"[{kind}] campaigns {campaigns['seconds']}s", flush=True)
        gates = measure([sys.executable, "-m", "benchmarks.stage", "quality-gates"], env)
        gates["suites"] = json.loads(gates.pop("stdout").strip().splitlines()[-1])
        print(f"[{kind}] quality gates {gates['seconds']}s", flush=True)
        return {
            "ingest": ingest,
            "phone numbers (Python)": phones,
            "dbt build (models and tests)": build,
            "quality gates (GX suites)": gates,
            "campaigns (content with the LLM double, rendering)": campaigns,
            **run_sends(kind, env),
            "server_version": _server_version(settings),
        }


def _model_seconds(dbt_output: str) -> dict[str, float]:
    """Seconds per model from dbt's log lines ('... OK created sql table model marts.x ... in 1.23s]')."""
    import re

    seconds = {}
    for match in re.finditer(r"OK created sql \w+ model (\S+) .*? in ([0-9.]+)s\]", dbt_output):
        seconds[match.group(1)] = float(match.group(2))
    return seconds


def _admin(settings: Settings, statement: str) -> None:
    pg = settings.postgres
    with psycopg.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password,
                         dbname="postgres", autocommit=True) as conn:
        conn.execute(statement)


def _server_version(settings: Settings) -> str | None:
    if settings.warehouse != "postgres":
        return None
    pg = settings.postgres
    with psycopg.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname=pg.dbname) as conn:
        return conn.execute("SHOW server_version").fetchone()[0].split()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=100_000, help="number of customers")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--warehouses", default="duckdb,postgres")
    parser.add_argument("--only-sends", action="store_true",
                        help="run only the sends, CRM sync and receiver stages (synthetic data; own results file)")
    parser.add_argument("--end-to-end", action="store_true",
                        help="run the daily job and the batch campaigns through Dagster (own results file)")
    parser.add_argument("--next-day", action="store_true",
                        help="with --end-to-end: then the daily job again a day later, after 1%% new events")
    args = parser.parse_args(argv)

    machine = describe()
    os.environ["MAILROOM_BENCH_MESSAGES"] = str(args.scale)  # the sends stage: one message per customer
    if args.only_sends:  # synthetic messages: no sample data needed
        landing, generate, summary = ROOT / "benchmarks" / "cache" / "empty-landing", None, {}
    else:
        landing, generate = sample_data(args.scale, args.seed)
        summary = json.loads((landing / "truth" / "summary.json").read_text())
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mailroom-bench-") as scratch:
        for kind in args.warehouses.split(","):
            stages = run_warehouse(kind, landing, Path(scratch), only_sends=args.only_sends,
                                   end_to_end=args.end_to_end or args.next_day, next_day=args.next_day)
            if stages.get("server_version"):
                machine["postgres"] = stages["server_version"]
            result = {
                "scale": args.scale,
                "seed": args.seed,
                "warehouse": kind,
                "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": machine,
                "data": {k: summary[k] for k in summary if isinstance(summary[k], (int, float))},
                "stages": {name: stage for name, stage in stages.items() if isinstance(stage, dict)},
            }
            if generate:
                result["stages"] = {"generate sample data": generate, **result["stages"]}
            # A sends-only run keeps its own file: it may run on another machine than the full run.
            suffix = "-sends" if args.only_sends else "-end-to-end" if args.end_to_end or args.next_day else ""
            path = RESULTS / f"{args.scale}-{kind}{suffix}.json"
            path.write_text(json.dumps(result, indent=2) + "\n")
    write_report(RESULTS, ROOT / "BENCHMARKS.md")
    print(f"wrote {RESULTS} and BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
