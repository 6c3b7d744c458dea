"""`make bench-journeys SCALE=100000 [WAREHOUSES=duckdb,postgres]`: how long a journey takes to act on an
event, measured the way it runs in production - a real dagster-daemon with the landing sensor on.

On a warehouse the daily job has built at SCALE customers, the bench lands FILES CDP files of PER_FILE
brand-new signups (`Signed Up`, with their explicit opt-in in a consent file landed just before), one
file every EVERY seconds, each written to a temporary name and renamed into place. A customer's
latency is the send ledger's `finished_at` of their welcome message (accepted by the outbox) minus the
moment their file was renamed. It reports p50, p95 and max, and per fast-path run the queue wait, the
run's seconds and its steps' seconds (medians), to benchmarks/results/journeys-latency-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.machine import describe
from benchmarks.report import write_report
from benchmarks.run import RESULTS, ROOT, environment, linked_landing, measure, sample_data, scratch_warehouse
from dagster_project.demo_journeys import land

BIN = Path(sys.executable).parent
SENSOR = "landing_files_sensor"
WELCOME = "welcome_hello"
BUILD = ("import dagster as dg, sys\nfrom dagster_project.pipeline import run_pipeline\n"
         "sys.exit(0 if run_pipeline(dg.DagsterInstance.ephemeral()).success else 1)")


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def land_signups(landing_dir: Path, number: int, per_file: int, at: datetime) -> dict[str, datetime]:
    """One consent file and one CDP file of `per_file` new signups; returns address -> landing time."""
    people = [(f"u-latency-{number:03d}-{n:02d}", f"latency.{number:03d}.{n:02d}@example.com") for n in range(per_file)]
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    consent = [{"event_id": f"cev-latency-{user}", "email": email, "channel": "email", "status": "opt_in",
                "jurisdiction": "EU", "lawful_basis": "consent", "source": "signup_form", "occurred_at": stamp}
               for user, email in people]
    events = []
    for user, email in people:
        traits = {"email": email, "first_name": "Nova"}
        for kind, extra in (("identify", {}), ("track", {"event": "Signed Up", "properties": {"method": "email"}})):
            events.append({"messageId": f"latency-{kind}-{user}", "type": kind, "userId": user, "traits": traits,
                           "timestamp": stamp, "receivedAt": stamp, "context": {"timezone": "Europe/Berlin"},
                           **extra})
    land(landing_dir, "consent", f"latency-{number:03d}.jsonl", consent)
    land(landing_dir, "cdp", f"latency-{number:03d}.jsonl", events)
    landed = utc_now()
    return {email: landed for _, email in people}


def runs_settled(instance) -> bool:
    from dagster import DagsterRunStatus, RunsFilter

    busy = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
            DagsterRunStatus.STARTED]
    return not instance.get_runs(filters=RunsFilter(statuses=busy))


def wait_for(condition, timeout: float, what: str, every: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def run_figures(instance) -> list[dict]:
    """Per fast-path run: when it was created, its queue wait, its seconds and each step's seconds."""
    from dagster import RunsFilter

    from dagster_project.pipeline import step_seconds

    figures = []
    for record in instance.get_run_records(filters=RunsFilter(job_name="journeys_fast_path")):
        stats = instance.get_run_stats(record.dagster_run.run_id)
        if not stats.start_time or not stats.end_time:
            continue
        created = record.create_timestamp.timestamp()
        figures.append({"created": created, "queued_seconds": round(stats.start_time - created, 2),
                        "seconds": round(stats.end_time - stats.start_time, 2),
                        "status": record.dagster_run.status.value,
                        "steps": {step: round(seconds, 2) for step, seconds
                                  in step_seconds(instance, record.dagster_run.run_id).items()}})
    return sorted(figures, key=lambda run: run["created"])


def latencies(settings, landed: dict[str, datetime]) -> list[float]:
    from dagster_project.warehouse import Warehouse

    with Warehouse(settings).connect() as conn:
        rows = conn.fetchall("SELECT m.to_email, l.finished_at FROM ops.campaign_messages AS m JOIN ops.send_ledger "
                             "AS l ON l.message_id = m.message_id WHERE m.campaign_id = ? AND l.state = 'accepted'",
                             [WELCOME])
    return sorted((finished - landed[email]).total_seconds() for email, finished in rows if email in landed)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


def bench(kind: str, landing: Path, scale: int, files: int, per_file: int, every: float) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix=f"mailroom-journeys-{kind}-"))
    daemon = None
    try:
        linked = linked_landing(landing, scratch / "landing")
        with scratch_warehouse(kind, scratch / "data", "mailroom_journeys", landing_dir=linked) as settings:
            env = {**environment(settings), "MAILROOM_QUIET_HOURS": "off",
                   "DAGSTER_HOME": str(scratch / "dagster_home")}
            print(f"[{kind}] building the warehouse (daily job) ...", flush=True)
            build = measure([sys.executable, "-c", BUILD], env)
            print(f"[{kind}] daily job {build['seconds']} s", flush=True)
            Path(env["DAGSTER_HOME"]).mkdir()
            shutil.copy(ROOT / "config" / "dagster.yaml", Path(env["DAGSTER_HOME"]) / "dagster.yaml")
            started_sensor = subprocess.run([str(BIN / "dagster"), "sensor", "start", "-w", "workspace.yaml", SENSOR],
                                            cwd=ROOT, env=env, capture_output=True, text=True)
            if started_sensor.returncode:
                raise SystemExit(f"could not start {SENSOR}:\n{started_sensor.stdout}\n{started_sensor.stderr}")
            # After the sensor command, which creates the instance's storage (two processes creating it race).
            log = (scratch / "daemon.log").open("w")
            daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=ROOT,
                                      env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
            import dagster as dg

            instance = dg.DagsterInstance.get()
            # The sensor's first look sees the whole sample as new: let that run finish first.
            wait_for(lambda: instance.get_runs(), 300, "the sensor's first run")
            wait_for(lambda: runs_settled(instance), 900, "the first run to finish", every=2)
            started = len(instance.get_runs())
            print(f"[{kind}] daemon and sensor up; landing {files} files of {per_file} signups every {every} s",
                  flush=True)
            landed: dict[str, datetime] = {}
            for number in range(files):
                landed.update(land_signups(linked, number, per_file, utc_now()))
                time.sleep(every)
            outbox = settings.data_dir / "outbox" / WELCOME
            wait_for(lambda: len(list(outbox.glob("*.eml"))) >= len(landed), 1800, "every welcome message", every=2)
            wait_for(lambda: runs_settled(instance), 600, "the last run to finish", every=2)
            runs = run_figures(instance)
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
            daemon = None
            seconds = latencies(settings, landed)
            steps = sorted({step for run in runs[1:] for step in run["steps"]})
            result = {
                "customers": scale, "warehouse": kind, "signups": len(landed), "files": files, "per_file": per_file,
                "every_seconds": every, "handed_over": len(seconds),
                "latency_seconds": {"p50": percentile(seconds, 0.5), "p95": percentile(seconds, 0.95),
                                    "max": round(max(seconds), 1)},
                "fast_path_runs": len(runs) - (started > 0),
                "run_medians": {
                    "queued_seconds": statistics.median(run["queued_seconds"] for run in runs[1:]),
                    "run_seconds": statistics.median(run["seconds"] for run in runs[1:]),
                    **{step: statistics.median(run["steps"][step] for run in runs[1:] if step in run["steps"])
                       for step in steps}},
                "runs": [{"queued_seconds": run["queued_seconds"], "seconds": run["seconds"]} for run in runs[1:]],
                "daily_job_seconds": build["seconds"],
            }
            print(f"[{kind}] latency p50 {result['latency_seconds']['p50']} s, p95 {result['latency_seconds']['p95']} "
                  f"s, max {result['latency_seconds']['max']} s over {len(seconds)} signups; "
                  f"{result['fast_path_runs']} fast-path runs", flush=True)
            return result
    finally:
        if daemon is not None:
            os.killpg(daemon.pid, signal.SIGKILL)
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--warehouses", default="duckdb")
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--per-file", type=int, default=10)
    parser.add_argument("--every", type=float, default=3.0)
    args = parser.parse_args(argv)
    landing, _ = sample_data(args.scale, args.seed)
    machine = describe()
    for kind in args.warehouses.split(","):
        result = bench(kind, landing, args.scale, args.files, args.per_file, args.every)
        result.update(machine=machine, recorded=utc_now().date().isoformat())
        (RESULTS / f"journeys-latency-{args.scale}-{kind}.json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(RESULTS, ROOT / "BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
