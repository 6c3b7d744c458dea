"""One benchmark stage in its own process, so its peak memory can be read from the OS:

    python -m benchmarks.stage ingest     (warehouse from the MAILROOM_* environment)
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


if __name__ == "__main__":
    if sys.argv[1:] != ["ingest"]:
        sys.exit("usage: python -m benchmarks.stage ingest")
    print(json.dumps(ingest()))
