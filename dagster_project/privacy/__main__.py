"""python -m dagster_project.privacy request|intake|process|status|close|audit ...

Privacy requests and the audit chain of the warehouse the MAILROOM_* environment names:
  request erase|access --email A [--user-id U] [--request-id R] [--received-at T]
          write a request into landing privacy/ (the same line a request file carries)
  intake  record the landing privacy requests not seen before (and the lines that are not requests)
  process take in new requests and work through every open one: erasures step by step, access exports
          (exit code 1 when a request has a failing step; it is retried at the next run)
  status  the open requests: state, received, due
  close <request_id> --reason superseded|refused|withdrawn
          close a received request, or one waiting for review, without carrying it out (audited)
  audit seal|verify|anchor [--anchors FILE]
          seal: record the send ledger's new outcomes, then chain every entry waiting in ops.audit_pending;
          verify: walk the chain from the first entry and report the first broken link, then check that it
          reaches every anchor (exit code 1 when broken); anchor: append the chain's head to the anchor file
          (--anchors, else MAILROOM_AUDIT_ANCHOR_FILE; verify without one checks the links only)
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from datetime import datetime, timezone
from pathlib import Path

from dagster_project.privacy.audit import AuditError, read_anchors, verify, write_anchor
from dagster_project.privacy.audit_sources import seal_all
from dagster_project.privacy.keys import SubjectKeys
from dagster_project.privacy.requests import parse_request
from dagster_project.privacy.state import (
    CLOSE_REASONS,
    LANDING_FOLDER,
    close_request,
    ensure_privacy_tables,
    open_requests,
    take_in_requests,
)
from dagster_project.settings import load_settings, privacy_deadline_days, privacy_key
from dagster_project.warehouse import Warehouse
from reverse_etl.receiver.landing_writer import write_landing_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dagster_project.privacy", description=__doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    request = commands.add_parser("request", help="write a privacy request into landing privacy/")
    request.add_argument("type", choices=["erase", "access"])
    request.add_argument("--email")
    request.add_argument("--user-id")
    request.add_argument("--request-id", help="default: req-<UTC time>-<random>")
    request.add_argument("--received-at", help="ISO 8601 with offset (default: now)")
    commands.add_parser("intake", help="record the landing privacy requests not seen before")
    commands.add_parser("process", help="work through every open privacy request")
    commands.add_parser("status", help="the open privacy requests")
    close = commands.add_parser("close", help="close a request without carrying it out")
    close.add_argument("request_id")
    close.add_argument("--reason", required=True, choices=list(CLOSE_REASONS))
    audit = commands.add_parser("audit", help="seal, verify or anchor the audit chain")
    audit.add_argument("action", choices=["seal", "verify", "anchor"])
    audit.add_argument("--anchors", type=Path, help="the anchor file (default MAILROOM_AUDIT_ANCHOR_FILE)")
    args = parser.parse_args(argv)
    settings = load_settings()
    warehouse, now = Warehouse(settings), datetime.now(timezone.utc).replace(tzinfo=None)
    if args.command != "audit":
        return _requests(args, settings, warehouse, now)
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


def _requests(args, settings, warehouse: Warehouse, now: datetime) -> int:
    if args.command == "request":
        line = {"request_id": args.request_id or f"req-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}",
                "type": args.type, "received_at": args.received_at or now.replace(tzinfo=timezone.utc).isoformat()}
        line |= {k: v for k, v in (("email", args.email), ("user_id", args.user_id)) if v}
        request, problem = parse_request(line, "(command line)", 1, now)
        if problem:
            print(f"cannot write the request: {problem}", file=sys.stderr)
            return 2
        path = write_landing_file(settings.landing_dir / LANDING_FOLDER, "request", [json.dumps(line).encode()])
        print(f"{request.type} request {request.request_id} written to {path}; `intake` (or the daily run) records it")
        return 0
    if args.command == "process":
        from dagster_project.privacy.process import privacy_context, process_requests

        report = process_requests(privacy_context(settings))
        print("\n".join(report.lines()))
        return 1 if any(outcome.failed for outcome in report.outcomes) else 0
    if args.command == "close":
        with warehouse.connect() as conn:
            ensure_privacy_tables(conn)
            problem = close_request(conn, args.request_id, args.reason, now)
        if problem:
            print(f"cannot close: {problem}", file=sys.stderr)
            return 2
        print(f"request {args.request_id} closed ({args.reason})")
        return 0
    if args.command == "intake":
        report = take_in_requests(warehouse, settings.landing_dir, SubjectKeys(privacy_key(settings.data_dir)), now,
                                  privacy_deadline_days())
        print(f"{len(report.new_requests)} new requests ({', '.join(report.new_requests) or 'none'}), "
              f"{report.already_known} known, {len(report.rejected)} lines rejected")
        for rejection in report.rejected:
            print(f"  {rejection.source_file} line {rejection.source_line}: {rejection.reason}")
        return 0
    with warehouse.connect() as conn:
        requests = open_requests(conn)
    for request in requests:
        print(f"{request.request_id}  {request.type:<6}  {request.state:<12}  received {request.received_at:%Y-%m-%d}  "
              f"due {request.due_at:%Y-%m-%d}" + ("  OVERDUE" if request.due_at < now else ""))
    print(f"{len(requests)} open requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
