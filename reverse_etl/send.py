"""Send the due messages of every campaign (or some) from the command line, e.g. from cron:

    python -m reverse_etl.send [--campaign weekly_picks] [--dry-run]

It first loads new consent and provider-event landing files, so an opt-out or a bounce that
arrived since the audience was built suppresses the message. Exits 1 when messages failed or were
held for an operator. Runs may overlap (cron, the Dagster schedule): each holds its messages
through leases, and waits for (DuckDB) or skips (PostgreSQL) a campaign another run is sending.

Messages held with an unknown outcome (failed, outcome_unknown: the run stopped after the provider
had them and before their answer was recorded, and the provider could not tell) wait for a decision:

    python -m reverse_etl.send --resolve-unknown accepted --campaign weekly_picks   # they were sent
    python -m reverse_etl.send --resolve-unknown resend --campaign weekly_picks     # send them again

then the campaign is sent as usual (so `resend` hands them over at once).
"""

from __future__ import annotations

import argparse
import sys

from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.sources import SOURCES
from dagster_project.settings import load_activation_settings, load_settings
from dagster_project.warehouse import Warehouse
from reverse_etl.concurrency import wait_for_duckdb
from reverse_etl.run import resolve_unknown, send_campaigns, summary_lines

FRESH_SOURCES = ("consent", "esp")  # what the last look before sending needs up to date


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaign", action="append", help="campaign id (repeatable; default: all)")
    parser.add_argument("--dry-run", action="store_true", help="report what would be sent, send nothing")
    parser.add_argument("--resolve-unknown", choices=("accepted", "resend"),
                        help="settle the campaign's messages held with an unknown outcome (needs --campaign)")
    args = parser.parse_args(argv)
    if args.resolve_unknown and (not args.campaign or args.dry_run):
        parser.error("--resolve-unknown needs --campaign (the campaigns to settle) and cannot be a dry run")

    settings, activation = load_settings(), load_activation_settings()
    warehouse = Warehouse(settings)
    if args.resolve_unknown:
        for campaign, settled in resolve_unknown(settings, activation, args.campaign, args.resolve_unknown).items():
            print(f"{campaign}: {settled:,} messages with an unknown outcome settled as {args.resolve_unknown}")
    for name in FRESH_SOURCES:
        # Idempotent, so it can simply run again when another process had the DuckDB file.
        wait_for_duckdb(lambda source=SOURCES[name]: ingest_source(warehouse, source, settings.landing_dir, workers=1),
                        activation.duckdb_wait_seconds, log=print)
    reports = send_campaigns(settings, activation, args.campaign, dry_run=args.dry_run, log=print)
    for report in reports:
        print("\n".join(summary_lines(report)))
    return 1 if any(report.failed or report.reconciled.get("held") for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
