"""Erasing one person from the warehouse's tables, on the session's campaigned sample (both engines): after
the proofs are written and the rows deleted, the scan of every text column of every table finds none of
their identifiers; another customer keeps every row; the proofs hold keyed hashes only; erasing again
deletes nothing."""

from __future__ import annotations

from datetime import datetime

from dagster_project.privacy.erase import erase_rows, write_proofs
from dagster_project.privacy.keys import SubjectKeys
from dagster_project.privacy.subjects import resolve, scan
from dagster_project.warehouse import Warehouse

NOW = datetime(2026, 11, 2, 8, 0)
KEYS = SubjectKeys(b"p" * 32)
PER_CUSTOMER = {  # a table -> the SQL that counts one customer's rows in it
    "raw.cdp_events": "SELECT count(*) FROM raw.cdp_events WHERE user_id IN (SELECT identifier_value FROM "
                      "marts.customer_identities WHERE customer_id = ? AND identifier_type = 'user_id')",
    "marts.dim_customers": "SELECT count(*) FROM marts.dim_customers WHERE customer_id = ?",
    "ops.campaign_messages": "SELECT count(*) FROM ops.campaign_messages WHERE customer_id = ?",
    "ops.send_ledger": "SELECT count(*) FROM ops.send_ledger WHERE customer_id = ?",
}


def test_after_erasure_no_table_holds_any_identifier_of_the_person_and_others_keep_theirs(campaigned_warehouse):
    warehouse = Warehouse(campaigned_warehouse.settings)
    with warehouse.connect() as conn:
        ann, bob = [row[0] for row in conn.fetchall(
            "SELECT customer_id FROM ops.campaign_messages WHERE customer_id IN (SELECT customer_id FROM "
            "marts.customer_identities WHERE identifier_type = 'phone') GROUP BY customer_id ORDER BY customer_id "
            "LIMIT 2")]
        email = conn.scalar("SELECT email FROM marts.dim_customers WHERE customer_id = ?", [ann])
        bob_before = {table: conn.scalar(sql, [bob]) for table, sql in PER_CUSTOMER.items()}
        working = resolve(conn, [("email", email)])
        assert working.customer_ids == {ann} and scan(conn, working)  # they are there to begin with
        proofs = write_proofs(conn, working, KEYS, "req-1", NOW)
        erasure = erase_rows(conn, working, NOW)
        remaining = scan(conn, working)
        bob_after = {table: conn.scalar(sql, [bob]) for table, sql in PER_CUSTOMER.items()}
        stored_proofs = conn.fetchall("SELECT subject_key, identifier_type FROM ops.erasure_proofs")
        again = erase_rows(conn, working, NOW)
    assert remaining == [], remaining
    assert bob_after == bob_before and all(bob_before.values())
    assert {"raw.cdp_events", "marts.dim_customers", "ops.campaign_messages", "ops.send_ledger"} <= set(erasure.deleted)
    assert erasure.waiting == 0 and again.deleted == {}
    identifiers = {(kind, value) for kind, value in working.identifiers if kind != "phone_spelling"
                   and kind != "message_id"}
    assert proofs == len(identifiers) == len(stored_proofs)
    assert {key for key, _ in stored_proofs} == {KEYS.subject_key(kind, value) for kind, value in identifiers}
    assert not any(value in " ".join(f"{k} {t}" for k, t in stored_proofs) for _, value in working.identifiers)
