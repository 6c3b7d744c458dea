"""Privacy requests at scale: `make bench-privacy` (default SCALE=100000, DuckDB).

    python -m benchmarks.privacy [--scale 100000] [--seed 7] [--audit-entries 1000000]
    python -m benchmarks.privacy process | audit-record [--audit-entries N] | audit-seal | audit-verify
                                                    (one stage, from the MAILROOM_* environment)

On a scratch DuckDB warehouse built end to end from the (cached) sample data (the daily job and the batch
campaigns through Dagster, so the ops tables, the send ledger and the outbox exist), with a landing
directory of links to the sample's files (an erasure rewrites a file by replacing it, so the cache stays
as it was):
  process       10 erasure requests and 1 access request for mailed customers (picked by a hash of their
                customer_id, leaving out those whose address identity resolution found shared), landed as one
                privacy file and worked through by one `process_requests` call, as the privacy_requests job
                does. Per step: the sum and the largest of its seconds over the requests, and its counts
                summed, from ops.privacy_request_steps. The rebuild step is a full `dbt run` of the table
                models, once per erasure, as the step does it.
  audit-record  1,000,000 small entries (send, consent and suppression counts, canonical JSON) put into
                ops.audit_pending by batched inserts (not `audit.record`, which is one insert per call)
  audit-seal    `audit.seal` chains them all
  audit-verify  `audit.verify` walks the whole chain
Each stage runs in its own process, so its peak memory is its own.

Writes benchmarks/results/privacy-<scale>-duckdb.json and rebuilds BENCHMARKS.md. No target is asserted;
the figures are for reading.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from benchmarks.machine import describe
from benchmarks.report import write_report
from benchmarks.run import (
    RESULTS,
    ROOT,
    environment,
    linked_landing,
    measure,
    run_end_to_end,
    sample_data,
    scratch_warehouse,
)

ERASURES, ACCESSES = 10, 1
AUDIT_ENTRIES = 1_000_000
INSERT_BATCH = 1_000  # rows per multi-row INSERT into ops.audit_pending
COMMIT_EVERY = 50_000


def process() -> dict:
    from dagster_project.privacy.process import privacy_context, process_requests
    from dagster_project.settings import load_settings

    started = time.perf_counter()
    report = process_requests(privacy_context(load_settings()))
    return {"seconds": round(time.perf_counter() - started, 2), "new_requests": len(report.intake.new_requests),
            "rejected_lines": len(report.intake.rejected),
            "states": dict(sorted(Counter(outcome.state for outcome in report.outcomes).items())),
            "failing": sorted({step for outcome in report.outcomes for step in outcome.failed}),
            "audit_entries_sealed": report.sealed}


def audit_record(entries: int = AUDIT_ENTRIES) -> dict:
    """`entries` pending entries like the ones the pipeline records (counts, no identifiers), inserted in
    batches of INSERT_BATCH rows, committed every COMMIT_EVERY."""
    import uuid

    from dagster_project.privacy.audit import PENDING, PENDING_COLUMNS, canonical, ensure_audit_tables
    from dagster_project.settings import load_settings
    from dagster_project.warehouse import Warehouse

    recorded_at = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=1)
    names = ", ".join(column.name for column in PENDING_COLUMNS)
    started = time.perf_counter()
    with Warehouse(load_settings()).session() as conn:
        ensure_audit_tables(conn)
        for start in range(0, entries, INSERT_BATCH):
            rows = [_pending_row(uuid.uuid4().hex, recorded_at + timedelta(microseconds=n), n, canonical)
                    for n in range(start, min(start + INSERT_BATCH, entries))]
            conn.execute(f"INSERT INTO {PENDING} ({names}) VALUES {', '.join(['(?, ?, ?, ?, ?)'] * len(rows))}",
                         [value for row in rows for value in row])
            if (start + INSERT_BATCH) % COMMIT_EVERY == 0:
                conn.commit()
        pending = int(conn.scalar(f"SELECT count(*) FROM {PENDING}"))
    return {"entries": entries, "pending": pending, "seconds": round(time.perf_counter() - started, 2)}


def _pending_row(pending_id: str, recorded_at: datetime, n: int, canonical) -> tuple:
    """A send sweep, a consent file or a suppression file's entry, in turn (audit_sources.py's shapes)."""
    if n % 3 == 0:
        kind, payload = "send", {"campaign_id": "weekly_picks", "run_key": f"bench-{n // 3000}", "state": "accepted",
                                 "messages": n % 500, "destinations": {"outbox": n % 500},
                                 "reasons": {"(none)": n % 500}}
    elif n % 3 == 1:
        kind, payload = "consent", {"source": "consent", "file": f"consent/bench-{n}.csv", "file_sha256": f"{n:064x}",
                                    "rows": n % 1000, "counts": {"email:opt_in": n % 700, "email:opt_out": n % 300}}
    else:
        kind, payload = "suppression", {"source": "esp", "file": f"esp/bench-{n}.jsonl", "file_sha256": f"{n:064x}",
                                        "rows": n % 1000, "counts": {"bounce": n % 7, "unsubscribe": n % 11}}
    return pending_id, recorded_at, kind, None, canonical(payload)


def audit_seal() -> dict:
    from dagster_project.privacy.audit import seal
    from dagster_project.settings import load_settings
    from dagster_project.warehouse import Warehouse

    started = time.perf_counter()
    appended = seal(Warehouse(load_settings()), datetime.now(timezone.utc).replace(tzinfo=None))
    return {"appended": appended, "seconds": round(time.perf_counter() - started, 2)}


def audit_verify() -> dict:
    from dagster_project.privacy.audit import verify
    from dagster_project.settings import load_settings
    from dagster_project.warehouse import Warehouse

    started = time.perf_counter()
    with Warehouse(load_settings()).connect() as conn:
        verification = verify(conn)
    if not verification.ok:
        raise SystemExit(verification.describe())
    return {"entries": verification.entries, "seconds": round(time.perf_counter() - started, 2)}


STAGES = {"process": process, "audit-record": audit_record, "audit-seal": audit_seal, "audit-verify": audit_verify}


def run(scale: int, seed: int, audit_entries: int) -> dict:
    landing, generated = sample_data(scale, seed)
    with tempfile.TemporaryDirectory(prefix="mailroom-bench-privacy-") as scratch:
        landing = linked_landing(landing, Path(scratch) / "landing")
        with scratch_warehouse("duckdb", Path(scratch) / "duckdb", "mailroom_bench", landing_dir=landing) as settings:
            env = environment(settings)
            setup = run_end_to_end("duckdb", env)
            requests = _land_requests(settings)
            print(f"[duckdb] {ERASURES} erasures and {ACCESSES} access request in one process_requests call ...",
                  flush=True)
            processed = _stage(["process"], env)
            steps = _step_figures(settings)
            print(f"[duckdb] process {processed['seconds']}s; "
                  + ", ".join(f"{step} {f['sum_seconds']}s" for step, f in steps["erase"].items()), flush=True)
            audit_figures = {}
            for stage, args in (("record", ["--audit-entries", str(audit_entries)]), ("seal", []), ("verify", [])):
                print(f"[duckdb] audit {stage} ...", flush=True)
                audit_figures[stage] = _stage([f"audit-{stage}", *args], env)
                print(f"[duckdb] audit {stage} {audit_figures[stage]['seconds']}s", flush=True)
    return {"recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": describe(),
            "scale": scale, "seed": seed, "warehouse": "duckdb", "requests": requests,
            "privacy": {"process": processed, "steps": steps, "audit": audit_figures,
                        "audit_entries": audit_entries},
            "setup": setup, "sample_data": generated}


def _land_requests(settings) -> dict:
    """ERASURES + ACCESSES mailed customers, each resolved on their own (an address shared by several people
    waits for an operator, and working sets that overlap would erase one person twice), written as one
    landing privacy file."""
    from dagster_project.privacy.subjects import resolve
    from dagster_project.warehouse import Warehouse
    from reverse_etl.receiver.landing_writer import write_landing_file

    wanted, picked, taken = ERASURES + ACCESSES, [], set()
    with Warehouse(settings).connect() as conn:
        candidates = conn.fetchall(
            "SELECT d.customer_id, d.email FROM marts.dim_customers AS d WHERE d.email IS NOT NULL AND d.customer_id "
            "IN (SELECT customer_id FROM ops.send_ledger WHERE state = 'accepted') "
            "ORDER BY md5(CAST(d.customer_id AS VARCHAR)), d.customer_id")
        for customer_id, email in candidates:
            working = resolve(conn, [("email", email)])
            if working.ambiguous or working.customer_ids & taken:
                continue
            picked.append(email)
            taken |= working.customer_ids
            if len(picked) == wanted:
                break
    if len(picked) < wanted:
        raise SystemExit(f"only {len(picked)} of the {wanted} mailed customers needed were found; use a larger SCALE")
    now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    lines = [{"request_id": f"bench-{'erase' if n < ERASURES else 'access'}-{n:02d}",
              "type": "erase" if n < ERASURES else "access", "email": email, "received_at": now.isoformat()}
             for n, email in enumerate(picked)]
    write_landing_file(Path(settings.landing_dir) / "privacy", "bench-requests",
                       [json.dumps(line).encode() for line in lines])
    return {"erase": ERASURES, "access": ACCESSES}


def _step_figures(settings) -> dict:
    """type -> step -> requests, states, the sum and the largest of its seconds, its counts summed."""
    from dagster_project.warehouse import Warehouse

    with Warehouse(settings).connect() as conn:
        rows = conn.fetchall("SELECT r.type, s.step, s.state, s.seconds, s.detail_json FROM ops.privacy_request_steps "
                             "AS s JOIN ops.privacy_requests AS r ON r.request_id = s.request_id "
                             "ORDER BY r.type DESC, s.request_id")
    order = {step: n for n, step in enumerate(
        ["resolve", "suppress", "crm_database", "hubspot", "sendgrid", "landing_files", "warehouse_rows", "files",
         "rebuild", "verify", "export", "forget"])}
    figures: dict[str, dict] = {}
    for kind, step, state, seconds, detail in rows:
        step_figures = figures.setdefault(kind, {}).setdefault(
            step, {"requests": 0, "states": {}, "sum_seconds": 0.0, "max_seconds": 0.0, "counts": {}})
        step_figures["requests"] += 1
        step_figures["states"][state] = step_figures["states"].get(state, 0) + 1
        step_figures["sum_seconds"] = round(step_figures["sum_seconds"] + (seconds or 0.0), 3)
        step_figures["max_seconds"] = max(step_figures["max_seconds"], seconds or 0.0)
        _add_counts(step_figures["counts"], json.loads(detail) if detail else {})
    return {kind: dict(sorted(steps.items(), key=lambda item: order.get(item[0], len(order))))
            for kind, steps in figures.items()}


def _add_counts(total: dict, counts: dict) -> None:
    """Sum the numbers of `counts` into `total`, nested dicts too; text (a skip's reason, a path) is left out."""
    for key, value in counts.items():
        if isinstance(value, dict):
            _add_counts(total.setdefault(key, {}), value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value


def _stage(args: list[str], env: dict) -> dict:
    figures = measure([sys.executable, "-m", "benchmarks.privacy", *args], env)
    figures["result"] = json.loads(figures.pop("stdout").strip().splitlines()[-1])
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.privacy")
    parser.add_argument("stage", nargs="?", choices=sorted(STAGES))
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--audit-entries", type=int, default=AUDIT_ENTRIES)
    args = parser.parse_args(argv)
    if args.stage:
        result = audit_record(args.audit_entries) if args.stage == "audit-record" else STAGES[args.stage]()
        print(json.dumps(result))
        return 0
    result = run(args.scale, args.seed, args.audit_entries)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"privacy-{args.scale}-duckdb.json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(RESULTS, ROOT / "BENCHMARKS.md")
    print(json.dumps({step: figures["sum_seconds"] for step, figures in result["privacy"]["steps"]["erase"].items()},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
