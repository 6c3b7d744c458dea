"""Send the due messages of every campaign (or some) from the command line, e.g. from cron:

    python -m reverse_etl.send [--campaign weekly_picks] [--dry-run]

It first loads new consent and provider-event landing files, so an opt-out or a bounce that
arrived since the audience was built suppresses the message. Exits 1 when messages failed.
"""

from __future__ import annotations

import argparse
import sys

from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.sources import SOURCES
from dagster_project.settings import load_activation_settings, load_settings
from dagster_project.warehouse import Warehouse
from reverse_etl.run import send_campaigns, summary_lines

FRESH_SOURCES = ("consent", "esp")  # what the last look before sending needs up to date


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaign", action="append", help="campaign id (repeatable; default: all)")
    parser.add_argument("--dry-run", action="store_true", help="report what would be sent, send nothing")
    args = parser.parse_args(argv)

    settings, activation = load_settings(), load_activation_settings()
    warehouse = Warehouse(settings)
    for name in FRESH_SOURCES:
        ingest_source(warehouse, SOURCES[name], settings.landing_dir, workers=1)
    reports = send_campaigns(settings, activation, args.campaign, dry_run=args.dry_run, log=print)
    for report in reports:
        print("\n".join(summary_lines(report)))
    return 1 if any(report.failed for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
