"""ops.marketing_suppressions: customers who get no more marketing email until they come back.

    customer_id, reason ('sunset'), journey_id (who decided it), recorded_at      unique (customer_id, reason)

A journey's `suppress: sunset` step writes a row (record_sunset). It holds until the customer comes
back: an order (a CDP 'Order Completed' track event of one of their user ids) or a click (a provider
'click' event for one of their addresses) after recorded_at lifts it, with no write - the pre-send
check (presend.py) and marts.send_eligibility both look for such an event. A later sunset of a
customer whose sunset still holds changes nothing; one of a customer who came back since starts it
again from then. The table exists only once some journey has sunset someone: without it, nobody is
suppressed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from dagster_project.addresses import normalized_address_sql
from dagster_project.warehouse import Connection, columns

TABLE = "ops.marketing_suppressions"
SUNSET = "sunset"
MARKETING_SUPPRESSIONS = columns("customer_id:VARCHAR reason:VARCHAR journey_id:VARCHAR recorded_at:TIMESTAMP")
UNIQUE_KEY = ("customer_id", "reason")
ORDER_EVENT = "Order Completed"  # a CDP track event: the customer bought something
CLICK_EVENT = "click"  # a provider event: the customer clicked a link in one of our messages
_DDL_LOCK = 7_362_005  # PostgreSQL advisory lock key (ledger.py 7_362_001 ... journeys/state.py 7_362_004)
_CLICK_EMAIL = normalized_address_sql("returned_click.email")
_IDENTITY_EMAIL = normalized_address_sql("i.identifier_value")


def ensure_marketing_suppressions(conn: Connection) -> None:
    """Create the table and its unique key if they are missing, and commit at once."""
    if conn.table_exists("ops", "marketing_suppressions"):
        return
    if conn.kind == "postgres":
        conn.execute(f"SELECT pg_advisory_xact_lock({_DDL_LOCK})")
    conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
    conn.create_table(TABLE, MARKETING_SUPPRESSIONS)
    conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS marketing_suppressions__{'__'.join(UNIQUE_KEY)} "
                 f"ON {TABLE} ({', '.join(UNIQUE_KEY)})")
    conn.commit()


def record_sunset(conn: Connection, customer_ids: Sequence[str], journey_id: str, now: datetime) -> int:
    """Sunset these customers as of `now` (the caller's clock); returns how many rows were written.
    Idempotent: a customer whose sunset still holds keeps the first row as it is; one who has come
    back since (ordered or clicked after recorded_at) is sunset again from `now`."""
    ids = sorted(set(customer_ids))
    if not ids:
        return 0
    ensure_marketing_suppressions(conn)
    returned = came_back_sql(conn, identity_keys(conn, "s.customer_id"), "s.recorded_at")
    restarted = conn.execute(
        f"UPDATE {TABLE} AS s SET journey_id = ?, recorded_at = ? "
        f"WHERE s.reason = '{SUNSET}' AND s.customer_id = ANY(?) AND s.recorded_at < ? AND {returned}",
        [journey_id, now, ids, now]) if returned != "FALSE" else 0
    inserted = conn.execute(
        f"INSERT INTO {TABLE} (customer_id, reason, journey_id, recorded_at) "
        f"SELECT customer_id, '{SUNSET}', ?, ? FROM (SELECT unnest(CAST(? AS VARCHAR[])) AS customer_id) AS new "
        f"WHERE NOT EXISTS (SELECT 1 FROM {TABLE} AS s WHERE s.customer_id = new.customer_id "
        f"AND s.reason = '{SUNSET}') ON CONFLICT DO NOTHING",
        [journey_id, now, ids])
    return restarted + inserted


def identity_keys(conn: Connection, customer_id: str) -> str:
    """A relation of (kind, value) keys of the customer `customer_id` (an SQL expression): their user
    ids and addresses from marts.customer_identities; an empty one when the marts are not built."""
    if not conn.table_exists("marts", "customer_identities"):
        return "(SELECT CAST(NULL AS VARCHAR) AS kind, CAST(NULL AS VARCHAR) AS value WHERE 1 = 0)"
    return (f"(SELECT i.identifier_type AS kind, CASE WHEN i.identifier_type = 'email' THEN {_IDENTITY_EMAIL} "
            "ELSE i.identifier_value END AS value FROM marts.customer_identities AS i "
            f"WHERE i.customer_id = {customer_id} AND i.identifier_type IN ('email', 'user_id'))")


def came_back_sql(conn: Connection, keys: str, since: str) -> str:
    """An SQL condition: one of `keys` (a relation of kind 'user_id' or 'email' and value, correlated
    with the outer query) ordered or clicked after `since` (an SQL expression). FALSE when neither
    raw table exists yet. Addresses in `keys` are normalized already."""
    checks = []
    if conn.table_exists("raw", "cdp_events"):
        checks.append(
            f"EXISTS (SELECT 1 FROM {keys} AS k JOIN raw.cdp_events AS returned_order "
            "ON k.kind = 'user_id' AND returned_order.user_id = k.value "
            f"WHERE returned_order.event_type = 'track' AND returned_order.event_name = '{ORDER_EVENT}' "
            f"AND returned_order.event_at > {since})")
    if conn.table_exists("raw", "esp_events"):
        checks.append(
            f"EXISTS (SELECT 1 FROM {keys} AS k JOIN raw.esp_events AS returned_click "
            f"ON k.kind = 'email' AND {_CLICK_EMAIL} = k.value "
            f"WHERE returned_click.event = '{CLICK_EVENT}' AND returned_click.event_at > {since})")
    return f"({' OR '.join(checks)})" if checks else "FALSE"
