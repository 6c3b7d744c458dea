"""Journeys from the command line (cron, an operator's shell): the same tick the Dagster assets run.

    python -m dagster_project.journeys tick [--journey cart_abandonment]   # entries, exits, due steps, hand-over
    python -m dagster_project.journeys status                              # who is where, per journey
    python -m dagster_project.journeys pause --journey welcome --reason "new copy under review"
    python -m dagster_project.journeys resume --journey welcome

A paused journey keeps everybody where they are and still records new entries; the next tick after
resuming runs the steps that came due meanwhile. Runs may overlap (the minute schedule, the fast
path, this command): each leases the rows it moves, so no step is done twice.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import datetime, timezone

from dagster_project.journeys.evaluate import pause_key, tick


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("tick", "status", "pause", "resume"))
    parser.add_argument("--journey", action="append", help="journey id (repeatable; default: every live journey)")
    parser.add_argument("--reason", default="", help="why (pause and resume)")
    args = parser.parse_args(argv)

    from dagster_project.defs.journeys.assets import load_journeys
    from dagster_project.defs.journeys.metadata import step_counts
    from dagster_project.defs.personalization.campaign_assets import load_campaigns
    from dagster_project.defs.personalization.resource import PersonalizationResource
    from dagster_project.settings import load_activation_settings, load_personalization_settings, load_settings
    from dagster_project.warehouse import Warehouse
    from reverse_etl import pauses
    from reverse_etl.run import send_campaigns

    settings = load_settings()
    campaigns = load_campaigns()
    journeys = load_journeys(campaigns)
    known = {journey.journey_id: journey for journey in journeys}
    unknown = sorted(set(args.journey or ()) - set(known))
    if unknown:
        print(f"no journey {', '.join(unknown)}; the journeys are: {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    chosen = [known[journey_id] for journey_id in args.journey] if args.journey else journeys
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    warehouse = Warehouse(settings)
    if args.command in ("pause", "resume"):
        if not args.journey:
            print("name the journey: --journey <id>", file=sys.stderr)
            return 2
        change = pauses.pause if args.command == "pause" else pauses.resume
        with warehouse.connect() as conn:
            pauses.ensure_pauses(conn)
            for journey in chosen:
                entry = change(conn, pause_key(journey.journey_id), args.reason or f"{args.command}d from the CLI",
                               f"cli:{getpass.getuser()}", now)
                print(f"{journey.journey_id}: {entry.describe() if entry else 'nothing to record'}")
        return 0
    if args.command == "status":
        with warehouse.connect() as conn:
            for journey in chosen:
                paused = pauses.current_pause(conn, pause_key(journey.journey_id)) \
                    if conn.table_exists("ops", "campaign_pauses") else None
                print(f"{journey.journey_id} ({journey.status}{', paused: ' + paused.describe() if paused else ''})")
                if not conn.table_exists("ops", "journey_state"):
                    continue
                for step_id, counts in step_counts(conn, journey).items():
                    exits = ", ".join(f"{n} {reason}" for reason, n in counts["exited"].items())
                    print(f"  {step_id:<16} reached {counts['reached']:>7,}  waiting {counts['waiting']:>7,}  "
                          f"messages {counts['messages']:>7,}" + (f"  exited: {exits}" if exits else ""))
        return 0
    personalization = PersonalizationResource.from_settings(load_personalization_settings(), settings.data_dir,
                                                            settings.phone_default_region)
    by_id = {campaign.campaign_id: campaign for campaign in campaigns}
    with warehouse.session() as conn:
        reports = tick(conn, chosen, by_id, personalization.renderer(), now, f"cli-{getpass.getuser()}", log=print)
    to_send = sorted({campaign for report in reports for campaign in report.campaigns_to_send})
    for sent in send_campaigns(settings, load_activation_settings(), to_send) if to_send else []:
        print(f"{sent.campaign_id}: {sent.handed_over:,} handed over")
    return 0


if __name__ == "__main__":
    sys.exit(main())
