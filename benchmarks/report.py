"""Rebuilds BENCHMARKS.md from benchmarks/results/*.json."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.machine import summary

HEADER = """# Benchmarks

Measured by `make bench SCALE=<customers>` (benchmarks/run.py). Each stage runs in its own process;
seconds are wall time, memory is the stage process's peak resident set (the PostgreSQL server's own
memory is not included). Raw figures: benchmarks/results/*.json. Tests never assert durations.

Targets: ingest of about 1M CDP events (100K customers) in under 30 s on DuckDB on 2 cores.
"""


def write_report(results_dir: Path, target: Path) -> None:
    results = [json.loads(path.read_text()) for path in sorted(results_dir.glob("*.json"))]
    lines = [HEADER]
    machines = sorted({summary(r["machine"]) for r in results})
    if machines:
        lines.append("## Machine\n")
        lines.extend(f"- {machine}" for machine in machines)
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
    target.write_text("\n".join(lines) + "\n")


def _number(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)
