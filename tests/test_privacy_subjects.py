"""Resolving a privacy request to the person's working set, and scanning the warehouse for it, on the
session's built sample (both engines): one email finds every identifier of the customer and every table
holding one of them; a person Mailroom never saw is found nowhere; an address identity resolution refused
as shared makes the request ambiguous."""

from __future__ import annotations

from dagster_project.privacy.subjects import resolve, scan
from dagster_project.warehouse import Warehouse


def test_one_email_resolves_to_the_whole_person_and_the_scan_finds_them(built_warehouse):
    with Warehouse(built_warehouse.settings).connect() as conn:
        customer_id, email = conn.fetchall(
            "SELECT d.customer_id, d.email FROM marts.dim_customers d WHERE d.email IS NOT NULL AND d.customer_id IN "
            "(SELECT customer_id FROM marts.customer_identities WHERE identifier_type = 'phone') "
            "AND d.customer_id IN (SELECT customer_id FROM marts.customer_identities "
            "WHERE identifier_type = 'user_id') "
            "ORDER BY d.customer_id LIMIT 1")[0]
        working = resolve(conn, [("email", f"  {email.upper()} ")])
        linked = set(conn.fetchall("SELECT identifier_type, identifier_value FROM marts.customer_identities "
                                   "WHERE customer_id = ?", [customer_id]))
        hits = scan(conn, working)
        stranger = scan(conn, resolve(conn, [("email", "nobody.ever@example.invalid"), ("user_id", "u_never_seen")]))
    assert working.customer_ids == {customer_id} and not working.ambiguous
    assert linked <= working.identifiers and ("customer_id", customer_id) in working.identifiers
    assert {kind for kind, _ in working.identifiers} >= {"email", "user_id", "phone", "phone_spelling", "customer_id"}
    found = {(hit.table, hit.column, hit.identifier_type) for hit in hits}
    assert {("marts.dim_customers", "email", "email"), ("marts.dim_customers", "customer_id", "customer_id"),
            ("raw.cdp_events", "user_id", "user_id"), ("ops.phone_numbers", "raw_phone", "phone_spelling")} <= found
    assert all(hit.rows > 0 for hit in hits)
    assert stranger == []


def test_an_address_shared_by_several_people_makes_the_request_ambiguous(built_warehouse):
    with Warehouse(built_warehouse.settings).connect() as conn:
        # The sample shares devices, not addresses: the refusal dbt would record for a family address.
        conn.execute("INSERT INTO marts.identity_resolution_audit (identifier_type, identifier_value, reason) "
                     "VALUES ('email', 'family@example.com', 'shared_by_user_ids')")
        working = resolve(conn, [("email", "Family@Example.com"), ("user_id", "u_someone")])
    assert working.ambiguous == [("email", "family@example.com")]
