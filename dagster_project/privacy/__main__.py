"""python -m dagster_project.privacy audit seal|verify|anchor [--anchors FILE]

The audit chain (ops.audit_log) of the warehouse the MAILROOM_* environment names:
  seal    record the send ledger's new outcomes, then chain every entry waiting in ops.audit_pending
  verify  walk the chain from the first entry and report the first broken link, then check that it reaches
          every anchor in the anchor file (exit code 1 when broken)
  anchor  append the chain's head to the anchor file
The anchor file is --anchors, else MAILROOM_AUDIT_ANCHOR_FILE (verify without one checks the links only).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from dagster_project.privacy.audit import AuditError, read_anchors, verify, write_anchor
from dagster_project.privacy.audit_sources import seal_all
from dagster_project.settings import load_settings
from dagster_project.warehouse import Warehouse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dagster_project.privacy", description=__doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    audit = commands.add_parser("audit", help="seal, verify or anchor the audit chain")
    audit.add_argument("action", choices=["seal", "verify", "anchor"])
    audit.add_argument("--anchors", type=Path, help="the anchor file (default MAILROOM_AUDIT_ANCHOR_FILE)")
    args = parser.parse_args(argv)
    settings = load_settings()
    warehouse, now = Warehouse(settings), datetime.now(timezone.utc).replace(tzinfo=None)
    anchors_file = args.anchors or settings.audit_anchor_file
    try:
        if args.action == "seal":
            swept, sealed = seal_all(warehouse, now)
            print(f"sealed {sealed:,} entries ({swept:,} ledger rows reached a final state since the last seal)")
            return 0
        if args.action == "anchor":
            if anchors_file is None:
                print("no anchor file: pass --anchors or set MAILROOM_AUDIT_ANCHOR_FILE", file=sys.stderr)
                return 2
            with warehouse.connect() as conn:
                anchor = write_anchor(conn, anchors_file, now)
            print(f"anchored seq {anchor.seq} {anchor.entry_hash} in {anchors_file}" if anchor
                  else "the audit chain is empty: nothing to anchor")
            return 0
        anchors = read_anchors(anchors_file) if anchors_file and anchors_file.exists() else []
        with warehouse.connect() as conn:
            result = verify(conn, anchors)
    except AuditError as error:
        print(f"cannot {args.action}: {error}", file=sys.stderr)
        return 2
    print(result.describe() + (f" (and {len(anchors)} anchors)" if anchors and result.ok else ""))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
