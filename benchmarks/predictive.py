"""The predictive layer at scale: `make bench-predictive` (default SCALE=100000, DuckDB).

    python -m benchmarks.predictive [--scale 100000] [--seed 7]
    python -m benchmarks.predictive plan | train | score     (one stage, from the MAILROOM_* environment)

On a scratch DuckDB warehouse loaded with the (cached) sample data: dbt builds what the predictive
models read and the models themselves (seconds per model from dbt's log), then, each in its own
process so its peak memory is its own:
  plan    weekly_picks' send times for every eligible customer (send_time: optimized), as the messages
          step plans them: the marts read once, candidates per timezone, an argmax per customer
  train   both propensity models on intermediate.int_propensity_examples (2 threads), registered
  score   both serving models over every customer's latest cutoff, into ops.propensity_scores (and the two
          cutoffs before it, a backfill, so the online metrics have closed windows)
and then dbt's marts.customer_propensity and marts.propensity_online_metrics over those scores.

Writes benchmarks/results/predictive-<scale>-duckdb.json and rebuilds BENCHMARKS.md. No target is
asserted; the figures are for reading.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.machine import describe
from benchmarks.report import write_report
from benchmarks.run import RESULTS, ROOT, _model_seconds, environment, measure, sample_data, scratch_warehouse
from dagster_project.resources import dbt_executable

# What the predictive models read, and the models: dbt's graph operators select their parents too.
DBT_SELECTION = ["+customer_send_times", "+int_propensity_examples", "+campaign_weekly_picks"]
PREDICTIVE_MODELS = ("intermediate.int_send_time_exposures", "marts.send_time_curves", "marts.customer_send_times",
                     "intermediate.int_propensity_examples")
# Built after scoring, from ops.propensity_scores.
SCORE_MODELS = ("marts.customer_propensity", "marts.propensity_online_metrics")


def plan() -> dict:
    from dagster_project.dbt_project import mailroom_dbt
    from dagster_project.personalization.campaigns import campaigns_from_manifest
    from dagster_project.predictive.send_time_plan import SendTimePlanner
    from dagster_project.settings import load_settings
    from dagster_project.warehouse import Warehouse

    settings = load_settings()
    campaign = next(c for c in campaigns_from_manifest(json.loads(mailroom_dbt.manifest_path.read_text()))
                    if c.campaign_id == "weekly_picks")
    started = time.perf_counter()
    with Warehouse(settings).connect() as conn:
        audience = conn.fetchall(f"SELECT customer_id, timezone, segment_key FROM {campaign.relation} "
                                 "WHERE is_eligible ORDER BY customer_id")
        planner = SendTimePlanner(conn, campaign.send_time, campaign.salt, "bench", settings.reference_time(),
                                  campaign.send_window, (21, 8), campaign.relation)
    read = time.perf_counter() - started
    planned = [planner.plan(customer_id, tz, segment) for customer_id, tz, segment in audience]
    return {"customers": len(audience), "planned": sum(p is not None for p in planned),
            "read_seconds": round(read, 2), "plan_seconds": round(time.perf_counter() - started - read, 2)}


def train() -> dict:
    from dagster_project.predictive.training import train_and_register
    from dagster_project.settings import load_settings
    from dagster_project.warehouse import Warehouse

    settings = load_settings()
    outcomes = train_and_register(Warehouse(settings), settings.data_dir / "models",
                                  datetime.now(timezone.utc).replace(tzinfo=None), progress=lambda _: None)
    return {o.version.model_name: {"status": o.version.status, "test_rows": o.version.metrics["test_rows"],
                                   "auc": round(o.version.metrics["model"]["roc_auc"], 3),
                                   "baseline_auc": round(o.version.metrics["baseline"]["roc_auc"], 3)}
            for o in outcomes}


def score() -> dict:
    """The latest cutoff, timed on its own, then the two before it as a backfill, so the online metrics have
    closed windows to measure."""
    from dagster_project.predictive.scoring import score_latest_cutoff
    from dagster_project.settings import load_settings
    from dagster_project.warehouse import Warehouse

    warehouse, now = Warehouse(load_settings()), datetime.now(timezone.utc).replace(tzinfo=None)
    started = time.perf_counter()
    latest = score_latest_cutoff(warehouse, now, progress=lambda _: None)
    seconds = time.perf_counter() - started
    with warehouse.connect() as conn:
        earlier = [row[0] for row in conn.fetchall(
            "SELECT DISTINCT cutoff_at FROM intermediate.int_propensity_examples WHERE cutoff_at < ? "
            "ORDER BY cutoff_at DESC LIMIT 2", [latest.cutoff_at])]
    for cutoff in earlier:
        score_latest_cutoff(warehouse, now, progress=lambda _: None, cutoff_at=cutoff)
    return {"customers": latest.customers, "latest_cutoff_seconds": round(seconds, 2),
            "backfilled_cutoffs": len(earlier)}


STAGES = {"plan": plan, "train": train, "score": score}


def run(scale: int, seed: int) -> dict:
    landing, generated = sample_data(scale, seed)
    with tempfile.TemporaryDirectory(prefix="mailroom-bench-predictive-") as scratch, \
            scratch_warehouse("duckdb", Path(scratch) / "duckdb", "mailroom_bench", landing_dir=landing) as settings:
        env = {**environment(settings), "OMP_WAIT_POLICY": "PASSIVE"}
        figures = {}
        print("[duckdb] ingest ...", flush=True)
        ingest = figures["ingest"] = _stage(["benchmarks.stage", "ingest"], env)
        ingest["result"] = {"rows_loaded": sum(source["rows_loaded"] for source in ingest["result"].values())}
        figures["phone numbers"] = _stage(["benchmarks.stage", "phone-numbers"], env)
        print("[duckdb] dbt build of the predictive models and their parents ...", flush=True)
        measure([dbt_executable(), "seed", "--target", "duckdb"], env, cwd=ROOT / "dbt")
        build = measure([dbt_executable(), "run", "--target", "duckdb", "--select", *DBT_SELECTION], env,
                        cwd=ROOT / "dbt")
        models = _model_seconds(build.pop("stdout"))
        figures["dbt run (the predictive models and their parents)"] = build
        for model in PREDICTIVE_MODELS:
            figures[f"dbt model {model}"] = {"seconds": models.get(model)}
        with _connect(settings) as conn:
            rows = {model: int(conn.scalar(f"SELECT count(*) FROM {model}")) for model in PREDICTIVE_MODELS}
        for stage in STAGES:
            print(f"[duckdb] {stage} ...", flush=True)
            figures[stage] = _stage(["benchmarks.predictive", stage], env)
            print(f"[duckdb] {stage} {figures[stage]['seconds']}s", flush=True)
        print("[duckdb] dbt run of the score marts ...", flush=True)
        marts = measure([dbt_executable(), "run", "--target", "duckdb", "--select", "stg_ops__propensity_scores+"],
                        env, cwd=ROOT / "dbt")
        models = _model_seconds(marts.pop("stdout"))
        for model in SCORE_MODELS:
            figures[f"dbt model {model}"] = {"seconds": models.get(model)}
        with _connect(settings) as conn:
            rows |= {model: int(conn.scalar(f"SELECT count(*) FROM {model}")) for model in SCORE_MODELS}
    return {"recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": describe(),
            "scale": scale, "seed": seed, "warehouse": "duckdb", "rows": rows, "predictive": figures,
            "sample_data": generated}


def _stage(module_and_args: list[str], env: dict) -> dict:
    figures = measure([sys.executable, "-m", *module_and_args], env)
    figures["result"] = json.loads(figures.pop("stdout").strip().splitlines()[-1])
    return figures


def _connect(settings):
    from dagster_project.warehouse import Warehouse

    return Warehouse(settings).connect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.predictive")
    parser.add_argument("stage", nargs="?", choices=sorted(STAGES))
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.stage:
        print(json.dumps(STAGES[args.stage]()))
        return 0
    result = run(args.scale, args.seed)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"predictive-{args.scale}-duckdb.json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(RESULTS, ROOT / "BENCHMARKS.md")
    print(json.dumps({k: v.get("seconds") for k, v in result["predictive"].items()}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(main())
