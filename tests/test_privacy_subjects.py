"""Resolving a privacy request to the person's working set, and scanning the warehouse for it, on the
session's built sample (both engines): one email finds every identifier of the customer and every table
holding one of them; a person Mailroom never saw is found nowhere; an address identity resolution refused
as shared makes the request ambiguous."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dagster_project.privacy.subjects import resolve, scan, token_pattern
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


token = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=6, max_size=20)
around = st.text(alphabet="ab.@_-+ \"':;{}éü0123456789", max_size=6)


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=token, before=around, after=around)
def test_the_token_pattern_means_the_same_on_both_engines_as_in_python(warehouse, value, before, after):
    pattern, text = token_pattern(value), f"{before}{value}{after}"
    expected = re.search(pattern, text) is not None
    sql = "SELECT regexp_matches(?, ?)" if warehouse.kind == "duckdb" else "SELECT ? ~ ?"
    with warehouse.connect() as conn:
        assert bool(conn.scalar(sql, [text, pattern])) == expected
    edge = "A-Za-z0-9._@+-"
    whole = (not before or not re.match(f"[{edge}]", before[-1])) and (not after or not re.match(f"[{edge}]", after[0]))
    assert expected == whole or value in before or value in after  # found as a token exactly when it stands alone
