"""The journeys' dbt models (dbt/models/journeys): journey_events resolves every event to a customer
(a provisional one, with the id the identity graph gives later, for a signup newer than the marts);
the fast path's incremental run equals a full refresh; each entry model admits the right customers;
both engines hold the same rows."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

import pytest

from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.sources import SOURCES
from dagster_project.warehouse import Warehouse

from dbt_runner import dbt
from pipeline_helpers import table_rows

JOURNEY_TABLES = ["journeys.journey_events", "journeys.journey_welcome", "journeys.journey_cart_abandonment",
                  "journeys.journey_cart_items", "journeys.journey_reengagement", "journeys.journey_milestones"]
FAST_PATH = ("--select", "stg_cdp__events tag:journeys_fast_path")
FAST_PATH_TABLES = JOURNEY_TABLES[:4]
NEW_USER, INVALID_BIRTHDAY_USER, ANONYMOUS = "u-journey-new", "u-journey-bad-birthday", "anon-journey-only"


def provisional_id(identifier_type: str, value: str) -> str:
    """'cus_' and 16 hex digits of identity_node_key() after its priority digit (dbt/macros/text.sql)."""
    return "cus_" + hashlib.md5(f"{identifier_type}:{value}".encode()).hexdigest()[:16]


def _rows(settings, table: str, where: str = "", params=()) -> list[dict]:
    with Warehouse(settings).connect() as conn:
        columns = [c for (c,) in conn.fetchall(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position", table.split("."))]
        return [dict(zip(columns, row)) for row in
                conn.fetchall(f"SELECT {', '.join(columns)} FROM {table} {where}", list(params) or None)]


@pytest.mark.postgres
def test_duckdb_and_postgres_build_identical_journey_tables(built_templates):
    contents = []
    for kind in ("duckdb", "postgres"):  # the session's builds, read only
        with Warehouse(built_templates(kind).settings).connect() as conn:
            contents.append({table: table_rows(conn, table) for table in JOURNEY_TABLES})
    duck, pg = contents
    for table in JOURNEY_TABLES:
        assert duck[table] == pg[table], table
    for table in FAST_PATH_TABLES:
        assert duck[table], f"{table} is empty on the sample"


def test_journey_events_resolve_known_customers_like_the_identity_marts(built_warehouse):
    settings = built_warehouse.settings
    events = _rows(settings, "journeys.journey_events")
    names = {row["event_name"] for row in events}
    assert names == {"Signed Up", "Product Added", "Checkout Started", "Order Completed"}
    with Warehouse(settings).connect() as conn:
        by_user = dict(conn.fetchall("SELECT DISTINCT identifier_value, customer_id FROM marts.customer_identities "
                                     "WHERE identifier_type = 'user_id'"))
        signups = conn.fetchall("SELECT count(*) FROM staging.stg_cdp__events WHERE event_name = 'Signed Up'")[0][0]
    # After a daily build the marts know everybody: nothing is provisional, and a user_id's events
    # belong to the customer of that user_id.
    assert not any(row["is_provisional"] for row in events)
    with_user = [row for row in events if row["user_id"] in by_user]
    assert len(with_user) > 0.9 * len(events)
    assert all(row["customer_id"] == by_user[row["user_id"]] for row in with_user)
    welcome = _rows(settings, "journeys.journey_welcome")
    assert len(welcome) == signups > 0
    assert {row["entry_key"] for row in welcome} == {row["message_id"] for row in events
                                                     if row["event_name"] == "Signed Up"}


def _event(message_id: str, at: datetime, kind: str = "track", event: str | None = None, user: str | None = None,
           anonymous: str = "anon-journey-device", traits: dict | None = None, properties: dict | None = None) -> str:
    record = {"messageId": message_id, "type": kind, "anonymousId": anonymous,
              "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
              "receivedAt": (at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
              "context": {"timezone": "Europe/Berlin"}}
    if user:
        record["userId"] = user
    if event:
        record["event"] = event
    if traits is not None:
        record["traits"] = traits
    if properties is not None:
        record["properties"] = properties
    return json.dumps(record)


def _land_new_events(settings, known_email: str, products: list[str]) -> dict[str, str]:
    """One file of CDP events the marts have not seen; returns the message ids that matter."""
    day = datetime(2026, 10, 31, 10, 0, 0)
    open_product, bought_product = products[:2]
    lines = [
        _event("j-identify", day, "identify", user=NEW_USER,
               traits={"email": " New.Person@Example.COM ", "first_name": "Nova", "birthday": "2000-02-29"}),
        _event("j-signup", day + timedelta(seconds=1), event="Signed Up", user=NEW_USER,
               traits={"email": "new.person@example.com", "first_name": "Nova"}, properties={"method": "email"}),
        _event("j-add-open", day + timedelta(minutes=5), event="Product Added", user=NEW_USER,
               properties={"cart_id": "cart-open", "product_id": open_product, "price": 10.5}),
        _event("j-viewed", day + timedelta(minutes=6), event="Product Viewed", user=NEW_USER,
               properties={"product_id": open_product}),
        _event("j-identify-bad", day, "identify", user=INVALID_BIRTHDAY_USER, anonymous="anon-journey-bad",
               traits={"email": "bad.birthday@example.com", "birthday": "2001-02-30"}),
        _event("j-add-anonymous", day + timedelta(minutes=7), event="Product Added", anonymous=ANONYMOUS,
               properties={"cart_id": "cart-anonymous", "product_id": open_product}),
        _event("j-add-known", day + timedelta(minutes=8), event="Product Added", anonymous="anon-journey-known",
               traits={"email": known_email.upper()}, properties={"cart_id": "cart-known", "product_id": open_product}),
    ]
    # Five orders: the fifth is a milestone; the cart bought last was added after the open cart.
    for number in range(1, 6):
        at = day + timedelta(minutes=10 + 10 * number)
        cart = "cart-bought" if number == 5 else f"cart-order-{number}"
        lines.append(_event(f"j-add-{number}", at, event="Product Added", user=NEW_USER,
                            properties={"cart_id": cart, "product_id": bought_product}))
        lines.append(_event(f"j-order-{number}", at + timedelta(minutes=2), event="Order Completed", user=NEW_USER,
                            properties={"cart_id": cart, "order_id": f"R-journey-{number}", "revenue": 20}))
    path = settings.landing_dir / "cdp" / "events-journeys.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    loaded = ingest_source(Warehouse(settings), SOURCES["cdp"], settings.landing_dir)
    assert loaded.rows_loaded == len(lines), "every test event should load (none quarantined)"
    return {"signup": "j-signup"}


def _milestones(settings, as_of: str) -> set[tuple]:
    dbt(settings, "run", "--select", "journey_milestones", as_of=as_of)
    return {(row["customer_id"], row["entry_key"], row["milestone_kind"], row["milestone_number"])
            for row in _rows(settings, "journeys.journey_milestones")}


def test_the_fast_path_admits_new_signups_provisionally_and_equals_a_full_refresh(built_warehouse):
    settings = built_warehouse.settings
    with Warehouse(settings).connect() as conn:
        known_customer, known_email = conn.fetchall(
            "SELECT customer_id, email FROM marts.dim_customers WHERE email IS NOT NULL "
            "ORDER BY customer_id LIMIT 1")[0]
        products = [p for (p,) in conn.fetchall(
            "SELECT DISTINCT product_id FROM staging.stg_catalog__products ORDER BY product_id LIMIT 2")]
    _land_new_events(settings, known_email, products)
    new_customer = provisional_id("user_id", NEW_USER)

    dbt(settings, "run", *FAST_PATH)
    events = {row["message_id"]: row for row in _rows(settings, "journeys.journey_events",
                                                      "WHERE message_id LIKE 'j-%'")}
    assert "j-viewed" not in events and "j-identify" not in events  # only the journeys' track events
    assert events["j-signup"]["is_provisional"] and events["j-signup"]["customer_id"] == new_customer
    assert events["j-signup"]["email"] == "new.person@example.com"
    assert events["j-add-anonymous"]["is_provisional"]
    assert events["j-add-anonymous"]["customer_id"] == provisional_id("anonymous_id", ANONYMOUS)
    assert not events["j-add-known"]["is_provisional"]  # resolved by its (normalized) email
    assert events["j-add-known"]["customer_id"] == known_customer

    welcome = _rows(settings, "journeys.journey_welcome", "WHERE customer_id = ?", [new_customer])
    assert [(r["entry_key"], r["first_name"], r["is_provisional"]) for r in welcome] == [("j-signup", "Nova", True)]
    carts = _rows(settings, "journeys.journey_cart_abandonment", "WHERE message_id LIKE 'j-%'")
    assert {(r["customer_id"], r["entry_key"]) for r in carts} >= {
        (new_customer, "cart-open"), (new_customer, "cart-bought"), (known_customer, "cart-known"),
        (provisional_id("anonymous_id", ANONYMOUS), "cart-anonymous")}
    items = _rows(settings, "journeys.journey_cart_items", "WHERE customer_id = ?", [new_customer])
    # The cart bought last is not the latest open cart: the one left open is.
    assert [(r["cart_id"], r["product_id"], r["item_rank"]) for r in items] == [("cart-open", products[0], 1)]

    with Warehouse(settings).connect() as conn:
        incremental = {table: table_rows(conn, table) for table in FAST_PATH_TABLES}
    dbt(settings, "run", "--full-refresh", *FAST_PATH)
    with Warehouse(settings).connect() as conn:
        for table in FAST_PATH_TABLES:
            assert table_rows(conn, table) == incremental[table], f"{table}: incremental != full refresh"

    # The daily build later gives the new customer exactly the provisional id, with the valid birthday.
    dbt(settings, "run", "--select", "+journey_milestones")
    customers = {row["customer_id"]: row for row in _rows(settings, "marts.dim_customers")}
    assert str(customers[new_customer]["birth_date"]) == "2000-02-29"
    assert customers[provisional_id("user_id", INVALID_BIRTHDAY_USER)]["birth_date"] is None
    ours = {row for row in _milestones(settings, "2026-11-01") if row[0] == new_customer}
    assert ours == {(new_customer, "orders:5", "nth_order", 5)}  # the fifth order, placed the day before
    # A February 29 birthday: on February 28 in a year without February 29, on February 29 otherwise.
    assert (new_customer, "birthday:2027", "birthday", None) in _milestones(settings, "2027-02-28")
    leap = {row for row in _milestones(settings, "2028-02-28") if row[0] == new_customer}
    assert leap == set()
    anniversary = {row for row in _milestones(settings, "2027-10-31") if row[0] == new_customer}
    assert anniversary == {(new_customer, "anniversary:2027", "anniversary", 1)}


def test_reengagement_admits_exactly_the_eligible_lapsed_customers(built_warehouse):
    settings = built_warehouse.settings
    as_of = datetime.fromisoformat(settings.as_of)
    with Warehouse(settings).connect() as conn:
        features = conn.fetchall(
            "SELECT f.customer_id, f.last_purchase_at, f.last_open_at, f.last_click_at, c.is_eligible "
            "FROM marts.customer_features AS f JOIN marts.campaign_candidates AS c ON c.customer_id = f.customer_id")
    expected = {
        (customer, f"lapsed:{last_order.date().isoformat()}")
        for customer, last_order, opened, clicked, eligible in features
        if eligible and last_order is not None and last_order < as_of - timedelta(days=120)
        and all(seen is None or seen < as_of - timedelta(days=60) for seen in (opened, clicked))
    }
    rows = _rows(settings, "journeys.journey_reengagement")
    assert {(row["customer_id"], row["entry_key"]) for row in rows} == expected
    assert expected, "the sample should have lapsed customers"
    assert {row["entry_at"] for row in rows} == {as_of}


@pytest.mark.parametrize("warehouse_kind", ["duckdb"])
def test_milestones_without_a_birthday_trait_have_no_birthday(built_warehouse):
    settings = built_warehouse.settings
    with Warehouse(settings).connect() as conn:
        with_birthday = conn.fetchall("SELECT count(*) FROM marts.dim_customers WHERE birth_date IS NOT NULL")[0][0]
        total = conn.fetchall("SELECT count(*) FROM marts.dim_customers")[0][0]
        # not February 28 or 29 (their milestones move with leap years)
        (birthday,) = conn.fetchall("SELECT min(birth_date) FROM marts.dim_customers WHERE NOT "
                                    "(extract(month FROM birth_date) = 2 AND extract(day FROM birth_date) >= 28)")[0]
    assert 0.4 * total < with_birthday < 0.8 * total  # about 60% of the sample give the trait
    as_of = f"2027-{birthday.month:02d}-{birthday.day:02d}"
    rows = _milestones(settings, as_of)
    with Warehouse(settings).connect() as conn:
        born_today = {customer for (customer,) in conn.fetchall(
            "SELECT customer_id FROM marts.dim_customers WHERE birth_date IS NOT NULL "
            "AND extract(month FROM birth_date) = ? AND extract(day FROM birth_date) = ?",
            [birthday.month, birthday.day])}
    assert {row[0] for row in rows if row[2] == "birthday"} == born_today != set()
    assert all(row[1] == "birthday:2027" for row in rows if row[2] == "birthday")
