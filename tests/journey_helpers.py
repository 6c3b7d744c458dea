"""A small journey world without dbt: customers and a journey campaign's audience in marts, its
content in ops, journeys.journey_events and an entry table - the tables a journey tick reads (real
DuckDB or PostgreSQL all the same)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from dagster_project.demo_journeys import land  # noqa: F401 (the tests land files as the demo does)
from dagster_project.journeys.spec import ENTRY_COLUMNS, Journey, parse_journey
from dagster_project.personalization.campaigns import Campaign, campaigns_from_manifest
from dagster_project.personalization.ops_tables import ensure_ops_tables
from dagster_project.personalization.render import MessageRenderer
from dagster_project.settings import project_root
from dagster_project.warehouse import Warehouse

from activation_helpers import SECRET, TIMEZONES, email_of, seed_customers

AUDIENCE = "marts.journey_audience"
SEGMENT = "active:home"
WRITTEN = datetime(2026, 1, 1)
EVENT_COLUMNS = ("message_id", "event_name", "event_at", "customer_id", "cart_id", "order_id")


def renderer() -> MessageRenderer:
    return MessageRenderer(project_root() / "content" / "templates", "1 Test Street, Springfield", "Test Shop",
                           "http://127.0.0.1:8025/unsubscribe", SECRET, "mail.example.com")


def journey_campaigns(*campaign_ids: str) -> dict[str, Campaign]:
    nodes = {}
    for campaign_id in campaign_ids:
        nodes[f"model.mailroom.{campaign_id}"] = {
            "resource_type": "model", "name": f"campaign_{campaign_id}", "schema": "marts",
            "alias": "journey_audience",
            "config": {"meta": {"campaign": {
                "id": campaign_id, "type": "journey", "brief": f"The {campaign_id} message.",
                "template": "picks_for_you", "variants": [{"id": "a"}]}}}}
    return {campaign.campaign_id: campaign for campaign in campaigns_from_manifest({"nodes": nodes})}


def make_journey(spec: dict, campaigns: dict[str, Campaign], entry_kind: str = "event",
                 context: tuple[str, ...] = ("cart_id",), table: str = "journey_entry") -> Journey:
    node = {"resource_type": "model", "name": table, "schema": "journeys",
            "config": {"materialized": "incremental" if entry_kind == "event" else "table"},
            "columns": {name: {} for name in (*ENTRY_COLUMNS, *context)}}
    return parse_journey(node, {"entry": {"type": entry_kind}, **spec},
                         {campaign_id: campaign.campaign_type for campaign_id, campaign in campaigns.items()})


def seed_world(warehouse: Warehouse, customers: list[str], campaigns: dict[str, Campaign],
               context: tuple[str, ...] = ("cart_id",), table: str = "journey_entry") -> None:
    seed_customers(warehouse, customers)
    with warehouse.connect() as conn:
        ensure_ops_tables(conn)
        conn.execute("CREATE SCHEMA IF NOT EXISTS journeys")
        conn.execute(f"CREATE TABLE {AUDIENCE} (customer_id VARCHAR, email VARCHAR, first_name VARCHAR, "
                     "timezone VARCHAR, segment_key VARCHAR, is_eligible BOOLEAN, ineligible_reason VARCHAR)")
        for n, customer in enumerate(customers):
            conn.execute(f"INSERT INTO {AUDIENCE} VALUES (?, ?, 'Sam', ?, ?, TRUE, NULL)",
                         [customer, email_of(customer), TIMEZONES[n % len(TIMEZONES)], SEGMENT])
        conn.execute("CREATE TABLE journeys.journey_events (message_id VARCHAR, event_name VARCHAR, "
                     "event_at TIMESTAMP, customer_id VARCHAR, cart_id VARCHAR, order_id VARCHAR, product_id VARCHAR)")
        extra = "".join(f", {column} VARCHAR" for column in context)
        conn.execute(f"CREATE TABLE journeys.{table} (customer_id VARCHAR, entry_key VARCHAR, "
                     f"entry_at TIMESTAMP{extra})")
        for campaign_id in campaigns:
            key = f"content-{campaign_id}"
            conn.execute(
                "INSERT INTO ops.content (content_key, campaign_id, segment_key, variant_id, writer, subject, "
                "preheader, headline, body_paragraphs, call_to_action, created_at) "
                "VALUES (?, ?, ?, 'a', 'rules', ?, 'Hello', 'Hi', ?, 'Shop now', ?)",
                [key, campaign_id, SEGMENT, f"About {campaign_id}", json.dumps(["A short note."]), WRITTEN])
            conn.execute("INSERT INTO ops.campaign_content VALUES (?, ?, 'a', ?, ?)",
                         [campaign_id, SEGMENT, key, WRITTEN])


def add_entries(warehouse: Warehouse, rows: list[tuple], table: str = "journey_entry") -> None:
    """rows: (customer_id, entry_key, entry_at, *context values)."""
    with warehouse.connect() as conn:
        for row in rows:
            conn.execute(f"INSERT INTO journeys.{table} VALUES ({', '.join('?' for _ in row)})", list(row))


def add_event(warehouse: Warehouse, message_id: str, event_name: str, at: datetime, customer_id: str,
              cart_id: str | None = None, order_id: str | None = None) -> None:
    with warehouse.connect() as conn:
        conn.execute("INSERT INTO journeys.journey_events VALUES (?, ?, ?, ?, ?, ?, NULL)",
                     [message_id, event_name, at, customer_id, cart_id, order_id])


def journey_messages(warehouse: Warehouse) -> list[tuple]:
    """(campaign, run_key, customer, ledger state) of every journey message, in order."""
    with warehouse.connect() as conn:
        return conn.fetchall(
            "SELECT m.campaign_id, m.run_key, m.customer_id, l.state FROM ops.campaign_messages AS m "
            "LEFT JOIN ops.send_ledger AS l ON l.message_id = m.message_id ORDER BY m.customer_id, m.run_key")


def journey_row(warehouse: Warehouse, journey_id: str, customer_id: str) -> tuple:
    """(status, step, next due, exit reason) of a customer's journey state."""
    with warehouse.connect() as conn:
        rows = conn.fetchall("SELECT status, step_id, next_due_at, exit_reason FROM ops.journey_state "
                             "WHERE journey_id = ? AND customer_id = ?", [journey_id, customer_id])
    return rows[0] if rows else None


def segment_event(message_id: str, at: datetime, kind: str = "track", event: str | None = None,
                  user: str | None = None, traits: dict | None = None, properties: dict | None = None) -> dict:
    """A Segment spec event as a CDP drop carries it."""
    record = {"messageId": message_id, "type": kind, "anonymousId": f"anon-{message_id}",
              "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
              "receivedAt": (at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
              "context": {"timezone": "Europe/Berlin"}}
    for key, value in (("userId", user), ("event", event), ("traits", traits), ("properties", properties)):
        if value is not None:
            record[key] = value
    return record
