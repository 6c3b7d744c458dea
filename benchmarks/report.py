"""Rebuilds BENCHMARKS.md from benchmarks/results/*.json."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.machine import summary

HEADER = """# Benchmarks

Measured by `make bench SCALE=<customers>` (benchmarks/run.py). Each stage runs in its own process;
seconds are wall time, memory is the stage process's peak resident set (the PostgreSQL server's own
memory is not included). Raw figures: benchmarks/results/*.json. Tests never assert durations.

Targets on 2 cores: ingest of about 1M CDP events (100K customers) in under 30 s on DuckDB; identity
resolution (`make bench-identity`: every identity model, dbt model time) of a realistic 100K-customer
graph under 3 s on DuckDB, and with 20 long device/email chains on top under 10 s; the daily job end to
end through Dagster (`make bench-end-to-end`) under 120 s on DuckDB and 240 s on PostgreSQL, and the
next day's run (1% new events) under 30 s on DuckDB; 100K messages to the outbox in under 30 s;
`make test` under 20 minutes.
"""


def write_report(results_dir: Path, target: Path) -> None:
    every = [json.loads(path.read_text()) for path in sorted(results_dir.glob("*.json"))]
    results = [r for r in every if "stages" in r]
    experiments = [r for r in every if "readout" in r]
    suites = [r for r in every if "test_suite" in r]
    journeys = [r for r in every if "latency_seconds" in r]
    predictive = [r for r in every if "predictive" in r]
    privacy = [r for r in every if "privacy" in r]
    lines = [HEADER]
    machines = sorted({summary({**r["machine"], "postgres": None}) for r in every})
    servers = sorted({r["machine"]["postgres"] for r in results if r["machine"].get("postgres")})
    if machines:
        lines.append("## Machine\n")
        lines.extend(f"- {machine}" for machine in machines)
        lines.extend(f"- PostgreSQL {server} on the same machine (default configuration)" for server in servers)
        lines.append("")
    lines.append("## Figures\n")
    lines.append("| customers | CDP events | warehouse | stage | seconds | peak MiB | rows | recorded |")
    lines.append("|---:|---:|---|---|---:|---:|---:|---|")
    for result in sorted(results, key=lambda r: (r["scale"], r["warehouse"] != "duckdb")):
        events = result.get("data", {}).get("cdp_events", "")
        for stage, figures in result["stages"].items():
            lines.append(
                f"| {_number(result['scale'])} | {_number(events)} | {result['warehouse']} | {stage} "
                f"| {figures['seconds']:.1f} | {figures['peak_memory_mib']:.0f} "
                f"| {_number(figures.get('rows_loaded', ''))} | {result['recorded_at'][:10]} |"
            )
            parts = {**figures.get("sources", {}), **figures.get("suites", {}), **figures.get("campaigns", {}),
                     **figures.get("destinations", {}), **figures.get("parts", {})}
            for source, part in parts.items():
                lines.append(
                    f"| | | | &nbsp;&nbsp;{stage}: {source} | {part['seconds']:.1f} | | "
                    f"{_number(part['rows_loaded'])} | |"
                )
    lines.extend(_model_lines(results))
    lines.extend(_campaign_lines(results))
    lines.extend(_send_lines(results))
    lines.extend(_experiment_lines(experiments))
    lines.extend(_journey_lines(journeys))
    lines.extend(_predictive_lines(predictive))
    lines.extend(_privacy_lines(privacy))
    lines.extend(_suite_lines(suites))
    target.write_text("\n".join(lines) + "\n")


def _campaign_lines(results: list[dict]) -> list[str]:
    """LLM calls grow with segments x variants, not customers; cost per 1,000 emails; render speed."""
    lines = ["", "## Campaigns\n",
             "Content is written through the real openai client against the local OpenAI double (tokens are "
             "its estimates of prompt and answer length), priced at gpt-4o-mini rates ($0.15 / $0.60 per "
             "million input / output tokens). Target: under $0.01 per 1,000 emails; rendering 100K messages "
             "in under 30 s.\n",
             "| customers | warehouse | campaign | segments | content units | LLM calls | tokens in / out | USD "
             "| messages | USD per 1,000 emails | write s | render s |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for result in sorted(results, key=lambda r: (r["scale"], r["warehouse"] != "duckdb")):
        for stage in result["stages"].values():
            for campaign, c in stage.get("campaigns", {}).items():
                per_thousand = f"{c['usd_per_1000_emails']:.5f}" if c.get("usd_per_1000_emails") is not None else ""
                lines.append(
                    f"| {_number(result['scale'])} | {result['warehouse']} | {campaign} | {c['segments']} "
                    f"| {c['content_units']} | {c['llm_calls']} | {_number(c['input_tokens'])} / "
                    f"{_number(c['output_tokens'])} | {c['cost_usd']:.4f} | {_number(c['rows_loaded'])} "
                    f"| {per_thousand} | {c['content_seconds']:.1f} | {c['seconds']:.1f} |"
                )
    return lines


def _send_lines(results: list[dict]) -> list[str]:
    """Messages handed over per second, through the whole sender (ledger, pre-send checks, batching)."""
    lines = ["", "## Sending\n",
             "Synthetic rendered messages (one per customer) handed to each destination through the send ledger, "
             "with the pre-send checks, by `python -m benchmarks.stage sends`; the SendGrid double and the SMTP "
             "server (aiosmtpd) run in their own processes on the same 2 cores. SMTP gets a fifth of the "
             "messages. Targets: 100K messages to the SendGrid double in under 60 s, to the outbox in under 30 s.\n",
             "| customers | warehouse | destination | messages | requests | seconds | messages/s |",
             "|---:|---|---|---:|---:|---:|---:|"]
    for result in sorted(results, key=lambda r: (r["scale"], r["warehouse"] != "duckdb")):
        for stage in result["stages"].values():
            for destination, d in stage.get("destinations", {}).items():
                lines.append(f"| {_number(result['scale'])} | {result['warehouse']} | {destination} "
                             f"| {_number(d['rows_loaded'])} | {_number(d['requests'])} | {d['seconds']:.1f} "
                             f"| {_number(d['messages_per_second'])} |")
    return lines


def _experiment_lines(results: list[dict]) -> list[str]:
    """The experiment readout on many units: streamed from a CSV, and summed in each warehouse."""
    lines = ["", "## Experiment readouts\n",
             "`python -m benchmarks.experiment_readout` (the CLI on a CSV, streamed) and "
             "`python -m benchmarks.experiment_warehouse` (marts.experiment_units summed per arm by one GROUP BY, "
             "then the same statistics); 3 arms, sequential intervals, a binary and a continuous metric from the CSV, "
             "all five campaign metrics in the warehouse. `make bench-experiments` (UNITS=10000000). Seconds and peak "
             "memory are the readout process's (the PostgreSQL server's memory is not included).\n",
             "| units | source | seconds | units/s | peak MiB | recorded |", "|---:|---|---:|---:|---:|---|"]
    for result in sorted(results, key=lambda r: (r["rows"], r["warehouse"])):
        figures = result["readout"]
        lines.append(f"| {_number(result['rows'])} | {result['warehouse']} | {figures['seconds']:.1f} "
                     f"| {_number(round(result['rows'] / figures['seconds']))} | {figures['peak_memory_mib']:.0f} "
                     f"| {result['recorded_at'][:10]} |")
    return lines


def _model_lines(results: list[dict]) -> list[str]:
    """Identity resolution (the int_identity_* models) and the slowest models, per run."""
    lines = ["", "## dbt models\n", "| customers | warehouse | identity resolution s | slowest models (s) |",
             "|---:|---|---:|---|"]
    for result in sorted(results, key=lambda r: (r["scale"], r["warehouse"] != "duckdb")):
        models = next((stage.get("models") for stage in result["stages"].values() if stage.get("models")), None)
        if not models:
            continue
        identity = sum(seconds for name, seconds in models.items() if ".int_identity" in name)
        slowest = ", ".join(f"{name} {seconds:.1f}" for name, seconds in
                            sorted(models.items(), key=lambda item: -item[1])[:4])
        lines.append(f"| {_number(result['scale'])} | {result['warehouse']} | {identity:.1f} | {slowest} |")
    return lines


def _journey_lines(results: list[dict]) -> list[str]:
    """`make bench-journeys`: a landing file to the welcome message accepted by the outbox, with a real
    daemon and the landing sensor (benchmarks/journeys_latency.py)."""
    if not results:
        return []
    lines = ["", "## Journeys: event to send\n",
             "From a CDP file of new signups renamed into the landing directory to each welcome message accepted "
             "by the outbox: the sensor's look (every 10 s), the run queue, the fast-path run (ingest, the "
             "journeys' dbt models, the ticks, the hand-over).\n",
             "| customers | warehouse | signups (files) | p50 s | p95 s | max s | runs | median queue s "
             "| median run s | median dbt s | recorded |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for result in sorted(results, key=lambda r: (r["customers"], r["warehouse"] != "duckdb")):
        latency, medians = result["latency_seconds"], result["run_medians"]
        lines.append(f"| {_number(result['customers'])} | {result['warehouse']} | {result['signups']:,} "
                     f"({result['files']}) | {latency['p50']:.1f} | {latency['p95']:.1f} | {latency['max']:.1f} "
                     f"| {result['fast_path_runs']} | {medians['queued_seconds']:.1f} | {medians['run_seconds']:.1f} "
                     f"| {medians.get('mailroom_dbt_models', 0):.1f} | {result['recorded']} |")
    return lines


def _predictive_lines(results: list[dict]) -> list[str]:
    """`make bench-predictive`: the send-time and propensity models' dbt time, planning send times for a
    campaign's audience, training both propensity models and scoring every customer
    (benchmarks/predictive.py)."""
    if not results:
        return []
    lines = ["", "## Predictive layer\n",
             "Each stage in its own process (peak memory is its own); dbt model seconds from dbt's log.\n",
             "| customers | warehouse | stage | seconds | peak MiB | rows or result | recorded |",
             "|---:|---|---|---:|---:|---|---|"]
    for result in sorted(results, key=lambda r: r["scale"]):
        for stage, figures in result["predictive"].items():
            model = stage.removeprefix("dbt model ")
            detail = _number(result["rows"][model]) if model in result["rows"] else \
                ", ".join(f"{k} {v}" for k, v in _flat(figures.get("result", {})).items())
            seconds, memory = figures.get("seconds"), figures.get("peak_memory_mib")
            seconds = "" if seconds is None else f"{seconds:.1f}"
            memory = "" if memory is None else f"{memory:.0f}"
            lines.append(f"| {_number(result['scale'])} | {result['warehouse']} | {stage} | {seconds} | {memory} "
                         f"| {detail} | {result['recorded_at'][:10]} |")
    return lines


def _privacy_lines(results: list[dict]) -> list[str]:
    """`make bench-privacy`: erasure and access requests worked through in one run, step by step, and the
    audit chain sealed and verified at a million entries (benchmarks/privacy.py)."""
    if not results:
        return []
    lines = ["", "## Privacy requests\n",
             "On a warehouse built end to end (the daily job and the batch campaigns), erasure and access requests "
             "for mailed customers, landed as one file and worked through by one `process_requests` call in its own "
             "process (peak memory is its own). Per step: the sum and the largest of its seconds over the requests "
             "(ops.privacy_request_steps), its counts summed over the requests. The rebuild step is a full `dbt run` "
             "of the table models, now once per run and shared by its erasures (the 2026-12-08 figures are from "
             "before: one per erasure, a scan that read each table once per column, views included, and a test "
             "run sharing the 2 cores for the first half hour). Then the audit chain: entries put into "
             "ops.audit_pending by batched inserts, `seal`, `verify`, each in its own process (seconds: the work "
             "itself, without the process's start-up).\n",
             "| customers | warehouse | stage | requests | seconds | largest s | peak MiB | states or result "
             "| counts | recorded |",
             "|---:|---|---|---:|---:|---:|---:|---|---|---|"]
    for result in sorted(results, key=lambda r: r["scale"]):
        start = f"| {_number(result['scale'])} | {result['warehouse']} "
        end = f"| {result['recorded_at'][:10]} |"
        figures = result["privacy"]
        process = figures["process"]
        lines.append(f"{start}| process_requests | {sum(result['requests'].values())} | {process['seconds']:.1f} | "
                     f"| {process['peak_memory_mib']:.0f} "
                     f"| {', '.join(f'{k} {v}' for k, v in process['result']['states'].items())} | {end}")
        for kind, steps in figures["steps"].items():
            for step, s in steps.items():
                states = ", ".join(f"{state} {n}" for state, n in s["states"].items())
                lines.append(f"{start}| &nbsp;&nbsp;{kind}: {step} | {s['requests']} | {s['sum_seconds']:.1f} "
                             f"| {s['max_seconds']:.1f} | | {states} | {_counts(s['counts'])} {end}")
        for stage, audit in figures["audit"].items():
            detail = ", ".join(f"{k} {_number(v)}" for k, v in audit["result"].items() if k != "seconds")
            lines.append(f"{start}| audit chain: {stage} | | {audit['result']['seconds']:.1f} | "
                         f"| {audit['peak_memory_mib']:.0f} | {detail} | {end}")
    return lines


def _counts(counts: dict) -> str:
    """A step's summed counts on one line; a breakdown (rows deleted per table) as its total."""
    shown = []
    for key, value in counts.items():
        if isinstance(value, dict):
            numbers = _flat(value).values()
            shown.append(f"{key} {_number(sum(numbers))} ({len(numbers)})" if len(numbers) > 3 else
                         ", ".join(f"{key} {k} {_number(v)}" for k, v in _flat(value).items()))
        else:
            shown.append(f"{key} {_number(value)}")
    return "; ".join(shown)


def _flat(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key} ")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _number(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _suite_lines(suites: list[dict]) -> list[str]:
    """`make test` as CI runs it (recorded by hand in benchmarks/results/test-suite.json)."""
    if not suites:
        return []
    lines = ["", "## Test suite\n", "| tests | workers | minutes | slowest test (s) | recorded |",
             "|---:|---:|---:|---:|---|"]
    for suite in suites:
        figures = suite["test_suite"]
        lines.append(f"| {_number(figures['tests'])} | {figures['workers']} | {figures['seconds'] / 60:.1f} "
                     f"| {figures['slowest_seconds']:.0f} | {suite['recorded_at'][:10]} |")
    return lines
