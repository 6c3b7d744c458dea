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

A campaign's sends can be paused (a deliverability guard pauses one whose complaint or bounce rate
crosses its error threshold); its messages stay planned in the ledger until it is resumed:

    python -m reverse_etl.send --pause --campaign weekly_picks --reason "complaints from one ISP"
    python -m reverse_etl.send --resume --campaign weekly_picks --reason "list cleaned"
    python -m reverse_etl.send --paused     # which campaigns are paused, by whom and why

Pausing and resuming record an entry (actor cli:<os user>) and send nothing; the next send run hands
a resumed campaign's planned messages over.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.sources import SOURCES
from dagster_project.settings import load_activation_settings, load_settings
from dagster_project.warehouse import Warehouse
from reverse_etl.concurrency import wait_for_duckdb
from reverse_etl.pauses import PAUSE, RESUME
from reverse_etl.run import (
    campaigns_with_messages,
    paused_campaigns,
    record_pauses,
    resolve_unknown,
    send_campaigns,
    summary_lines,
)

FRESH_SOURCES = ("consent", "esp")  # what the last look before sending needs up to date


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaign", action="append", help="campaign id (repeatable; default: all)")
    parser.add_argument("--dry-run", action="store_true", help="report what would be sent, send nothing")
    parser.add_argument("--resolve-unknown", choices=("accepted", "resend"),
                        help="settle the campaign's messages held with an unknown outcome (needs --campaign)")
    pausing = parser.add_mutually_exclusive_group()
    pausing.add_argument("--pause", action="store_true", help="pause the campaigns' sends (needs --campaign)")
    pausing.add_argument("--resume", action="store_true", help="resume the campaigns' sends (needs --campaign)")
    pausing.add_argument("--paused", action="store_true", help="list the paused campaigns and why")
    parser.add_argument("--reason", default="", help="why, recorded with --pause or --resume")
    args = parser.parse_args(argv)
    if args.resolve_unknown and (not args.campaign or args.dry_run):
        parser.error("--resolve-unknown needs --campaign (the campaigns to settle) and cannot be a dry run")
    if (args.pause or args.resume) and (not args.campaign or args.dry_run or args.resolve_unknown):
        parser.error("--pause and --resume need --campaign (the campaigns to pause or resume) and go alone")

    settings, activation = load_settings(), load_activation_settings()
    if args.paused:
        entries = paused_campaigns(settings, activation)
        for entry in entries:
            print(f"{entry.campaign_id}: paused - {entry.describe()}")
        if not entries:
            print("no campaign is paused")
        return 0
    if args.pause or args.resume:
        return _pause_or_resume(parser, settings, activation, args)
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


def _pause_or_resume(parser, settings, activation, args) -> int:
    action = PAUSE if args.pause else RESUME
    known = set(campaigns_with_messages(Warehouse(settings), activation.duckdb_wait_seconds))
    known |= {entry.campaign_id for entry in paused_campaigns(settings, activation)}
    unknown = [campaign for campaign in args.campaign if campaign not in known]
    if unknown:  # a typo must not leave the real campaign sending while its "pause" sits elsewhere
        parser.error(f"no messages of campaign {', '.join(unknown)} in the warehouse; campaigns with messages: "
                     f"{', '.join(sorted(known)) or 'none yet'} (check the id)")
    reason = args.reason or f"{'paused' if args.pause else 'resumed'} from the command line"
    recorded = record_pauses(settings, activation, args.campaign, action, reason, f"cli:{_os_user()}")
    for campaign, entry in recorded.items():
        if entry is None:
            print(f"{campaign}: {'paused already' if args.pause else 'not paused'}; nothing recorded")
        elif args.pause:
            print(f"{campaign}: paused - its messages stay planned until `python -m reverse_etl.send --resume "
                  f"--campaign {campaign}`")
        else:
            print(f"{campaign}: resumed - the next send run hands its planned messages over")
    return 0


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
