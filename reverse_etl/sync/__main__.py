"""python -m reverse_etl.sync [--dry-run] [--model schema.table] [--key column ...]

Syncs a sync_crm__* model to the CRM configured by the environment (MAILROOM_CRM_DESTINATION, ...), on the
warehouse configured by MAILROOM_WAREHOUSE. Exit status 0 when every due row was settled, 1 when some are
left for the next run, 2 when the CRM cannot be used (the message says why).
"""

from __future__ import annotations

import argparse
import sys

from dagster_project.settings import load_settings, load_sync_settings
from dagster_project.warehouse import Warehouse
from reverse_etl.sync.errors import DestinationUnavailable, SyncError
from reverse_etl.sync.run import DEFAULT_KEY, DEFAULT_MODEL, sync_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reverse_etl.sync", description=__doc__.splitlines()[2])
    parser.add_argument("--dry-run", action="store_true", help="show the plan (counts and sample keys), write nothing")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"relation to sync (default {DEFAULT_MODEL})")
    parser.add_argument("--key", nargs="+", default=list(DEFAULT_KEY), help="its key column(s)")
    args = parser.parse_args(argv)
    try:
        report = sync_model(Warehouse(load_settings()), load_sync_settings(), model=args.model, key=args.key,
                            dry_run=args.dry_run)
    except (DestinationUnavailable, SyncError) as error:
        print(f"sync stopped: {error}", file=sys.stderr)
        return 2
    return 0 if args.dry_run or report.complete else 1


if __name__ == "__main__":
    sys.exit(main())
