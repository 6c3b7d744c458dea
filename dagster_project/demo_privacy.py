"""The demo's privacy requests: one customer who was mailed asks to be erased, another asks for their data.
Both requests land as a privacy file (what a helpdesk export or `python -m dagster_project.privacy request`
writes), the privacy_requests job works them through, and the demo prints each outcome, where the person was
found before and that a scan finds them nowhere after, and the audit chain's verification."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from dagster_project.privacy.audit import verify
from dagster_project.privacy.subjects import resolve, scan
from dagster_project.settings import Settings, privacy_export_dir
from dagster_project.warehouse import Warehouse
from reverse_etl.receiver.landing_writer import write_landing_file

PRIVACY_JOB = "privacy_requests"


def show_privacy_requests(demo, settings: Settings):
    """Land an erasure and an access request for two mailed customers, run the privacy job; the run."""
    warehouse = Warehouse(settings)
    with warehouse.connect() as conn:
        mailed = [row[0] for row in conn.fetchall(
            "SELECT l.customer_id FROM ops.send_ledger AS l JOIN marts.dim_customers AS d "
            "ON d.customer_id = l.customer_id WHERE l.state = 'accepted' AND d.email IS NOT NULL "
            "GROUP BY l.customer_id ORDER BY l.customer_id LIMIT 2")]
        if len(mailed) < 2:
            print("\nPrivacy requests: too few mailed customers in the sample to show them")
            return None
        erased, accessed = (conn.scalar("SELECT email FROM marts.dim_customers WHERE customer_id = ?", [c])
                            for c in mailed)
        working = resolve(conn, [("email", erased)])
        before = scan(conn, working)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    lines = [{"request_id": f"demo-erase-{now:%Y%m%d%H%M%S}", "type": "erase", "email": erased,
              "received_at": now.isoformat()},
             {"request_id": f"demo-access-{now:%Y%m%d%H%M%S}", "type": "access", "email": accessed,
              "received_at": now.isoformat()}]
    write_landing_file(settings.landing_dir / "privacy", "demo-requests", [json.dumps(line).encode() for line in lines])
    print(f"\nPrivacy requests: customer {mailed[0]} asks to be erased ({len(working.identifiers)} identifiers in "
          f"{len({hit.table for hit in before})} tables), customer {mailed[1]} asks for their data")
    run = demo.run("  privacy requests: intake, erasure, access export, audit", PRIVACY_JOB, steps=False)
    with warehouse.connect() as conn:
        states = conn.fetchall("SELECT r.request_id, r.state, count(s.step), "
                               "sum(CASE WHEN s.state = 'skipped' THEN 1 ELSE 0 END) FROM ops.privacy_requests AS r "
                               "LEFT JOIN ops.privacy_request_steps AS s ON s.request_id = r.request_id "
                               "WHERE r.request_id IN (?, ?) GROUP BY r.request_id, r.state ORDER BY r.request_id",
                               [line["request_id"] for line in lines])
        after = scan(conn, working)
        chain = verify(conn)
    for request_id, state, steps, skipped in states:
        print(f"  {request_id}: {state} ({steps} steps" + (f", {skipped} skipped: provider not configured"
                                                          if skipped else "") + ")")
    print(f"  scan after the erasure: {'nowhere' if not after else f'still in {len(after)} columns'} "
          "(every text column of every table, the landing and archive files, previews and exports)")
    print(f"  access export: {privacy_export_dir(settings.data_dir) / lines[1]['request_id']}/access.{{json,html}}")
    print(f"  {chain.describe()}")
    return run
