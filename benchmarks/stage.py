"""One benchmark stage in its own process, so its peak memory can be read from the OS:

    python -m benchmarks.stage ingest          (warehouse from the MAILROOM_* environment)
    python -m benchmarks.stage phone-numbers
    python -m benchmarks.stage quality-gates
"""

from __future__ import annotations

import json
import sys

from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.sources import SOURCES
from dagster_project.settings import load_settings
from dagster_project.warehouse import Warehouse


def ingest() -> dict:
    settings = load_settings()
    warehouse = Warehouse(settings)
    reports = {name: ingest_source(warehouse, source, settings.landing_dir) for name, source in SOURCES.items()}
    return {
        name: {"rows_loaded": r.rows_loaded, "rows_quarantined": r.rows_quarantined, "seconds": round(r.seconds, 2)}
        for name, r in reports.items()
    }


def phone_numbers() -> dict:
    from dagster_project.identity.phone_table import build_phone_numbers

    settings = load_settings()
    outcome = build_phone_numbers(Warehouse(settings), settings.phone_default_region)
    return {"rows_loaded": outcome["valid"] + outcome["invalid"]}


def quality_gates() -> dict:
    from dagster_project.quality.gates import run_gate
    from dagster_project.quality.suites import load_suites

    settings = load_settings()
    warehouse = Warehouse(settings)
    outcomes = {}
    for suite in load_suites(settings.expectations_dir):
        result = run_gate(warehouse, suite, settings.reference_time())
        if not result.passed:
            raise SystemExit(f"gate {suite.name} failed on benchmark data: {result.blocking_failures + result.warnings}")
        outcomes[suite.name] = {"rows_loaded": result.rows, "seconds": round(result.seconds, 2)}
    return outcomes


STAGES = {"ingest": ingest, "phone-numbers": phone_numbers, "quality-gates": quality_gates}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in STAGES:
        sys.exit(f"usage: python -m benchmarks.stage {{{'|'.join(STAGES)}}}")
    print(json.dumps(STAGES[sys.argv[1]]()))
