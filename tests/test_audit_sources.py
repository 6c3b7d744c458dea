"""What the daily pipeline and the campaigns put into the audit chain, on the session's campaigned sample
(both engines): one entry per consent, CRM and suppressing provider file with counts that add up to the
rows loaded, one per campaign run and final state with the ledger's counts, nothing twice, a row that moves
again audited again, and no address or customer id anywhere in the chain."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime

import dagster as dg

from dagster_project.privacy.audit import verify
from dagster_project.privacy.audit_sources import SUPPRESSING_EVENTS, seal_all
from dagster_project.warehouse import Warehouse

NOW = datetime(2026, 11, 2, 7, 0)


def entries(conn, kind: str) -> list[dict]:
    return [json.loads(row[0]) for row in conn.fetchall(
        "SELECT payload_json FROM ops.audit_log WHERE kind = ? ORDER BY seq", [kind])]


def test_consent_suppressions_and_sends_are_chained_with_counts_that_add_up(campaigned_warehouse):
    warehouse = Warehouse(campaigned_warehouse.settings)
    swept, sealed = seal_all(warehouse, NOW)
    with warehouse.connect() as conn:
        assert verify(conn).ok
        consent = Counter()
        for entry in entries(conn, "consent"):
            if entry["source"] == "consent":
                consent.update(entry["counts"])
        expected = Counter({f"{channel}:{status}": n for channel, status, n in conn.fetchall(
            "SELECT channel, status, count(*) FROM raw.consent_events GROUP BY 1, 2")})
        assert consent == expected and consent
        crm_rows = sum(e["rows"] for e in entries(conn, "consent") if e["source"] == "crm")
        assert crm_rows == conn.scalar("SELECT count(*) FROM raw.crm_contacts")
        suppressions = Counter()
        for entry in entries(conn, "suppression"):
            suppressions.update(entry["counts"])
        marks = ", ".join("?" for _ in SUPPRESSING_EVENTS)
        assert suppressions == Counter(dict(conn.fetchall(
            f"SELECT event, count(*) FROM raw.esp_events WHERE event IN ({marks}) GROUP BY 1",
            list(SUPPRESSING_EVENTS))))
        sends = Counter()
        for entry in entries(conn, "send"):
            sends[(entry["campaign_id"], entry["state"])] += entry["messages"]
        ledger = Counter({(c, s): n for c, s, n in conn.fetchall(
            "SELECT campaign_id, state, count(*) FROM ops.send_ledger WHERE state IN ('accepted', 'failed', "
            "'suppressed') GROUP BY 1, 2")})
        assert sends == ledger and swept == sum(ledger.values()) > 0
        chain_text = " ".join(row[0] for row in conn.fetchall("SELECT payload_json FROM ops.audit_log"))
        emails = [row[0] for row in conn.fetchall(
            "SELECT DISTINCT email FROM marts.dim_customers WHERE email IS NOT NULL")]
        customers = [row[0] for row in conn.fetchall("SELECT customer_id FROM marts.dim_customers")]
        assert not [e for e in emails if e in chain_text] and not [c for c in customers if c in chain_text]

    assert seal_all(warehouse, NOW) == (0, 0)  # nothing new: nothing recorded twice
    with warehouse.connect() as conn:
        message = conn.scalar("SELECT min(message_id) FROM ops.send_ledger WHERE state = 'accepted'")
        conn.execute("UPDATE ops.send_ledger SET state = 'failed', reason = 'bounced' WHERE message_id = ?", [message])
    assert seal_all(warehouse, NOW)[0] == 1  # it moved again: audited again
    with warehouse.connect() as conn:
        assert verify(conn).ok and entries(conn, "send")[-1]["reasons"] == {"bounced": 1}


def test_the_daily_pipeline_seals_and_verifies_the_chain(built_warehouse):
    [check] = [evaluation for evaluation in built_warehouse.result.get_asset_check_evaluations()
               if evaluation.check_name == "audit_chain_verified"]
    assert check.passed and check.asset_key == dg.AssetKey(["ops", "audit_log"])
    with Warehouse(built_warehouse.settings).connect() as conn:
        assert conn.scalar("SELECT count(*) FROM ops.audit_pending") == 0
        assert verify(conn).entries == conn.scalar("SELECT count(*) FROM ops.audit_log") > 1
