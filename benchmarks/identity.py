"""Identity resolution on its own: `make bench-identity`.

    python -m benchmarks.identity [--customers 100000] [--seed 7] [--warehouses duckdb,postgres]

Two synthetic identity graphs, generated from the seed straight into the raw tables the identity models
read (raw.cdp_events; raw.crm_contacts and ops.phone_numbers stay empty), each in a scratch warehouse (a
DuckDB file in a temporary directory, or a PostgreSQL database created and dropped):

  realistic   --customers customers, each one user id on 1 to 4 devices, 1 to 3 logins per device
              (identify events with userId and anonymousId), an email on half the logins
  chains      the same, plus 20 chains of 120 nodes: devices and emails alternating, linked by anonymous
              events (device i with email i, email i with device i + 1), a user id at one end

The staging models they read are built first and not counted; then `dbt run --threads 1` builds every
identity model (the models between the staging tables and marts.customer_identities /
marts.identity_resolution_audit, and int_identifiers_customers). Model time is the sum of dbt's
execution_time per model (run_results.json; connected_components() runs its loop while the model
compiles, so the loop is inside that time). Cheap correctness checks follow (every user id its own
customer, every chain one customer) and are printed; they are checks, not timing assertions.

Writes benchmarks/results/identity-<warehouse>.json and rebuilds BENCHMARKS.md.
Targets (issue 16, 2 cores): under 3 s of model time on DuckDB for the realistic graph, under 10 s with
the chains.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from benchmarks.machine import describe
from benchmarks.report import write_report
from benchmarks.run import AS_OF, RESULTS, ROOT, _server_version, environment, measure, scratch_warehouse
from dagster_project.identity.phone_table import PHONE_COLUMNS
from dagster_project.ingest.loader import raw_table_columns
from dagster_project.ingest.sources import SOURCES
from dagster_project.resources import dbt_executable
from dagster_project.settings import Settings
from dagster_project.warehouse import Warehouse

CHAINS = 20
CHAIN_NODES = 120  # devices and emails, alternating
STAGING = ("stg_cdp__events", "stg_crm__contacts", "stg_ops__phone_numbers")
# Every model from the staging tables to the identity marts, and the one-row-per-identifier view of them.
IDENTITY = ("int_identity_observations", "int_identifiers_classified", "int_identity_groups", "int_identity_bridges",
            "int_identity_graph", "customer_identities", "identity_resolution_audit", "int_identifiers_customers")
GRAPHS = {
    "realistic": "identity resolution: {customers} customers, 1-4 devices each (dbt model time)",
    "chains": "identity resolution: the same + 20 device/email chains of 120 nodes (dbt model time)",
}
TARGETS = {"realistic": 3.0, "chains": 10.0}  # seconds of model time on DuckDB (issue 16)
EVENT_COLUMNS = ("message_id", "event_type", "user_id", "anonymous_id", "event_at", "received_at", "traits",
                 "source_file", "source_line", "loaded_at")


def realistic_events(customers: int, seed: int) -> Iterator[tuple]:
    """(message_id, user_id, anonymous_id, email) per login: one user id per customer, 1 to 4 devices,
    1 to 3 logins per device, an email on half the logins."""
    rng = random.Random(seed)
    for customer in range(customers):
        email = f"customer{customer}@example.com"
        for device in range(rng.randint(1, 4)):
            anonymous_id = f"{rng.getrandbits(128):032x}"
            for login in range(rng.randint(1, 3)):
                yield (f"login-{customer}-{device}-{login}", f"user-{customer}", anonymous_id,
                       email if rng.random() < 0.5 else None)


def chain_events(chains: int, nodes: int) -> Iterator[tuple]:
    """Per chain: device 0 - email 0 - device 1 - email 1 - ... (`nodes` identifiers), each link an
    anonymous event, and one login that puts the chain's user id on device 0."""
    for chain in range(chains):
        devices = [f"chain{chain}-device-{i}" for i in range(nodes // 2)]
        emails = [f"chain{chain}-{i}@chains.example.com" for i in range(nodes - nodes // 2)]
        yield (f"chain{chain}-login", f"chain{chain}-user", devices[0], None)
        for i, email in enumerate(emails):
            yield (f"chain{chain}-link-{2 * i}", None, devices[i], email)
            if i + 1 < len(devices):
                yield (f"chain{chain}-link-{2 * i + 1}", None, devices[i + 1], email)


def write_events(path: Path, events: Iterator[tuple], seed: int) -> int:
    """The events as raw.cdp_events rows (identify, traits JSON with the email), spread over 90 days."""
    rng = random.Random(seed + 1)
    start = datetime(AS_OF.year, AS_OF.month, AS_OF.day) - timedelta(days=90)
    count = 0
    with open(path, "w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(EVENT_COLUMNS)
        for count, (message_id, user_id, anonymous_id, email) in enumerate(events, start=1):
            at = (start + timedelta(seconds=rng.randrange(90 * 86400))).isoformat(sep=" ")
            traits = json.dumps({"email": email}) if email else ""
            rows.writerow((message_id, "identify", user_id or "", anonymous_id, at, at, traits,
                           "bench/identity.jsonl", count, at))
    return count


def load_raw(settings: Settings, events_csv: Path) -> None:
    """raw.cdp_events from the CSV; the other tables the identity models read, empty."""
    cdp = SOURCES["cdp"]
    with Warehouse(settings).connect() as conn:
        for schema in ("raw", "ops"):
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.create_table(cdp.qualified_table, raw_table_columns(cdp))
        conn.create_table(SOURCES["crm"].qualified_table, raw_table_columns(SOURCES["crm"]))
        conn.create_table("ops.phone_numbers", PHONE_COLUMNS)
        by_name = {c.name: c for c in raw_table_columns(cdp)}
        conn.load_csv(cdp.qualified_table, [by_name[name] for name in EVENT_COLUMNS], events_csv)
        if settings.warehouse == "postgres":
            conn.execute(f"ANALYZE {cdp.qualified_table}")


def dbt_run(env: dict[str, str], kind: str, models: tuple[str, ...], scratch: Path) -> tuple[dict, dict]:
    """`dbt run` of `models` in one thread; (the process's figures, seconds per model from run_results.json)."""
    target = scratch / "dbt-target"
    figures = measure(
        [dbt_executable(), "run", "--target", kind, "--threads", "1", "--select", *models,
         "--target-path", str(target), "--log-path", str(scratch / "dbt-logs")],
        env, cwd=ROOT / "dbt",
    )
    results = json.loads((target / "run_results.json").read_text())["results"]
    seconds = {r["unique_id"].split(".")[-1]: round(r["execution_time"], 3) for r in results}
    if missing := set(models) - set(seconds):
        raise SystemExit(f"dbt did not run {sorted(missing)}; is the selection still every identity model?")
    return figures, seconds


def rows_per_model(conn, models: tuple[str, ...]) -> dict[str, int]:
    schemas = {"customer_identities": "marts", "identity_resolution_audit": "marts"}
    return {m: conn.scalar(f"SELECT count(*) FROM {schemas.get(m, 'intermediate')}.{m}") for m in models}


def check(conn, customers: int, chains: int) -> list[str]:
    """Exactness, cheaply: every user id is its own customer, and every chain is one customer."""
    problems = []
    users, owners, everyone = conn.fetchall(
        "SELECT count(DISTINCT identifier_value), count(DISTINCT customer_id), "
        "(SELECT count(DISTINCT customer_id) FROM marts.customer_identities) "
        "FROM marts.customer_identities WHERE identifier_type = 'user_id'")[0]
    if not users == owners == everyone == customers + chains:
        problems.append(f"{users:,} user ids in {owners:,} customers of {everyone:,}; expected "
                        f"{customers + chains:,} each")
    per_chain = conn.fetchall(
        "SELECT split_part(identifier_value, '-', 1) AS chain, count(DISTINCT customer_id), count(*) "
        "FROM marts.customer_identities WHERE identifier_value LIKE 'chain%' GROUP BY 1 ORDER BY 1")
    if len(per_chain) != chains:
        problems.append(f"{len(per_chain)} chains in marts.customer_identities, expected {chains}")
    for chain, customer_count, identifiers in per_chain:
        if customer_count != 1 or identifiers != CHAIN_NODES + 1:
            problems.append(f"{chain}: {identifiers} identifiers in {customer_count} customers, "
                            f"expected {CHAIN_NODES + 1} in 1")
    return problems


def run_graph(kind: str, graph: str, customers: int, seed: int, scratch: Path) -> dict:
    scratch.mkdir(parents=True)
    with scratch_warehouse(kind, scratch, f"mailroom_bench_identity_{graph}") as settings:
        events_csv = scratch / "cdp_events.csv"
        events = realistic_events(customers, seed)
        if graph == "chains":
            events = (*events, *chain_events(CHAINS, CHAIN_NODES))
        count = write_events(events_csv, events, seed)
        load_raw(settings, events_csv)
        env = environment(settings)
        print(f"[{kind}] {graph}: {count:,} CDP events loaded; staging ...", flush=True)
        dbt_run(env, kind, STAGING, scratch)
        figures, seconds = dbt_run(env, kind, IDENTITY, scratch)
        rounds = dict(re.findall(r"(int_identity_\w+)_cc: (converged after \d+ rounds, \d+ pointer-jumping passes)",
                                 figures.pop("stdout")))
        with Warehouse(settings).connect() as conn:
            rows = rows_per_model(conn, IDENTITY)
            problems = check(conn, customers, CHAINS if graph == "chains" else 0)
        model_seconds = round(sum(seconds.values()), 2)
        target = TARGETS[graph]
        verdict = ("" if kind != "duckdb" else
                   f" (target under {target:.0f} s: {'met' if model_seconds < target else 'MISSED'})")
        print(f"[{kind}] {graph}: {model_seconds} s of model time{verdict}, dbt run {figures['seconds']} s wall, "
              f"{figures['peak_memory_mib']} MiB peak", flush=True)
        for model in IDENTITY:
            print(f"    {model:28} {seconds[model]:7.2f} s  {rows[model]:>10,} rows", flush=True)
        for name, loop in rounds.items():
            print(f"    {name}: {loop}", flush=True)
        print(f"[{kind}] {graph}: check " + ("passed: every user id its own customer"
                                             + (", every chain one customer" if graph == "chains" else "")
                                             if not problems else "FAILED: " + "; ".join(problems)), flush=True)
        return {
            "seconds": model_seconds,
            "peak_memory_mib": figures["peak_memory_mib"],
            "rows_loaded": count,
            "dbt_run_wall_seconds": figures["seconds"],
            "connected_components": rounds,
            "check": "passed" if not problems else problems,
            "server_version": _server_version(settings),
            "parts": {model: {"seconds": seconds[model], "rows_loaded": rows[model]} for model in IDENTITY},
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--warehouses", "--warehouse", default="duckdb",
                        help="duckdb, postgres or both, comma-separated")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = False
    with tempfile.TemporaryDirectory(prefix="mailroom-bench-identity-") as scratch:
        for kind in args.warehouses.split(","):
            machine = describe()
            stages = {}
            for graph, label in GRAPHS.items():
                figures = run_graph(kind, graph, args.customers, args.seed, Path(scratch) / kind / graph)
                if version := figures.pop("server_version"):
                    machine["postgres"] = version
                failed = failed or figures["check"] != "passed"
                stages[label.format(customers=f"{args.customers:,}")] = figures
            result = {"scale": args.customers, "seed": args.seed, "warehouse": kind, "machine": machine,
                      "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "stages": stages}
            (RESULTS / f"identity-{kind}.json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(RESULTS, ROOT / "BENCHMARKS.md")
    print(f"wrote {RESULTS} and BENCHMARKS.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
