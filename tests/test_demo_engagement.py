"""The demo's simulated provider answer (dagster_project/sample_data/engagement.py) closes the loop all
the way to revenue: some customers who click buy, their Segment "Order Completed" events land in cdp/,
resolve to the same customer, and the next daily run attributes them as conversions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from dagster_project.sample_data.engagement import (
    EngagementRates,
    after_every_delivery,
    orders_path,
    simulate_engagement,
)
from dagster_project.warehouse import Warehouse

from pipeline_helpers import run_daily_pipeline

# A demo-sized build: make test runs it, make test-fast leaves it out.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("warehouse_kind", ["duckdb"], indirect=True)
def test_clicks_lead_to_orders_that_count_as_conversions(campaigned_warehouse, tmp_path):
    settings = campaigned_warehouse.settings
    warehouse = Warehouse(settings)
    with warehouse.connect() as conn:
        pairs = conn.fetchall("SELECT DISTINCT campaign_id, variant_id FROM ops.send_ledger WHERE state = 'accepted'")
        user_ids = dict(conn.fetchall("SELECT customer_id, user_id FROM marts.dim_customers"))
        customers = dict(conn.fetchall("SELECT message_id, customer_id FROM ops.campaign_messages"))
        first_due, last_due = conn.fetchall("SELECT min(coalesce(deliver_at, finished_at)), "
                                            "max(coalesce(deliver_at, finished_at)) FROM ops.send_ledger "
                                            "WHERE state = 'accepted'")[0]
        assert conn.scalar("SELECT count(*) FROM marts.fct_email_conversions") == 0
    assert after_every_delivery(warehouse, now=last_due) == last_due + timedelta(hours=1)
    # Most recipients click; half of the clickers buy.
    rates = {pair: EngagementRates(human_open=0.9, click_given_open=0.9, purchase_given_click=0.5) for pair in pairs}

    # Before any message has arrived (quiet hours hold some until the customer's morning) there are
    # clicks, but nobody can have bought from an email yet.
    early = simulate_engagement(warehouse, tmp_path / "early", latest=first_due - timedelta(seconds=1), rates=rates)
    assert '"event": "click"' in early.read_text() and not orders_path(early).exists()

    # Once every message has arrived (at most the end of the quiet hours away: ingest takes it).
    latest = after_every_delivery(warehouse)
    events_path = simulate_engagement(warehouse, settings.landing_dir, latest=latest, rates=rates)
    assert events_path is not None and orders_path(events_path).parent == settings.landing_dir / "cdp"
    clicks = {}  # customer -> earliest click (epoch seconds)
    for line in events_path.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "click":
            customer = customers[event["mailroom_message_id"]]
            clicks[customer] = min(clicks.get(customer, event["timestamp"]), event["timestamp"])
    orders = [json.loads(line) for line in orders_path(events_path).read_text().splitlines()]
    by_user = {user_id: customer for customer, user_id in user_ids.items() if user_id}
    assert 0 < len(orders) < len(clicks)
    for order in orders:
        assert (order["type"], order["event"]) == ("track", "Order Completed")
        assert "@" not in json.dumps(order)  # keyed by the CDP user_id, never an address
        customer = by_user[order["userId"]]
        ordered = datetime.fromisoformat(order["timestamp"].removesuffix("Z"))
        assert clicks[customer] <= ordered.replace(tzinfo=timezone.utc).timestamp() and ordered <= latest
        assert order["properties"]["revenue"] == order["properties"]["total"] > 0

    # Written once: the same messages give nothing new, and the files stay as they are.
    written = sorted(settings.landing_dir.rglob("demo-*.jsonl"))
    assert simulate_engagement(warehouse, settings.landing_dir, latest=latest, rates=rates) is None
    assert sorted(settings.landing_dir.rglob("demo-*.jsonl")) == written

    assert run_daily_pipeline().success
    with warehouse.connect() as conn:
        assert conn.scalar("SELECT count(*) FROM raw.quarantine WHERE file LIKE '%demo-orders-%'") == 0
        conversions = conn.fetchall(
            "SELECT customer_id, ordered_at, revenue, "
            "  (SELECT min(k.clicked_at) FROM marts.fct_email_clicks AS k WHERE k.customer_id = c.customer_id) "
            "FROM marts.fct_email_conversions AS c")
        units = conn.fetchall("SELECT sum(orders), sum(revenue) FROM marts.experiment_units WHERE is_converted")[0]
    assert len(conversions) == len(orders)  # every order resolved to its customer and was attributed
    assert sum(revenue for _, _, revenue, _ in conversions) > 0
    for customer_id, ordered_at, revenue, first_click in conversions:
        assert first_click is not None and first_click <= ordered_at, customer_id
    assert units[0] > 0 and units[1] > 0
