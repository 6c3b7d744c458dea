"""A small warehouse ready to send from: customers in marts, rendered messages in ops, raw consent
and provider-event tables - the tables activation reads, without running dbt (real DuckDB or
PostgreSQL all the same)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from dagster_project.ingest.loader import ensure_raw_tables
from dagster_project.personalization.content import ContentUnit
from dagster_project.personalization.ops_tables import bulk_insert, ensure_ops_tables
from dagster_project.personalization.render import MessageRenderer
from dagster_project.settings import ActivationSettings, project_root
from dagster_project.warehouse import Warehouse

AS_OF = datetime(2026, 11, 1)
TIMEZONES = ("America/New_York", "Europe/Berlin", "America/Los_Angeles", "Asia/Tokyo")
SECRET = b"test-unsubscribe-secret"


def customer_ids(count: int, prefix: str = "cus_") -> list[str]:
    return [f"{prefix}{n:06d}" for n in range(count)]


def email_of(customer_id: str) -> str:
    return f"{customer_id.replace('_', '.')}@example.org"


def seed_customers(warehouse: Warehouse, customers: list[str]) -> None:
    ensure_raw_tables(warehouse)
    with warehouse.connect() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS marts")
        conn.execute("CREATE TABLE IF NOT EXISTS marts.dim_customers "
                     "(customer_id VARCHAR, user_id VARCHAR, email VARCHAR, timezone VARCHAR)")
        conn.execute("CREATE TABLE IF NOT EXISTS marts.customer_identities "
                     "(customer_id VARCHAR, identifier_type VARCHAR, identifier_value VARCHAR)")
        conn.execute("CREATE TABLE IF NOT EXISTS marts.send_eligibility "
                     "(customer_id VARCHAR, is_eligible BOOLEAN, ineligible_reason VARCHAR)")
        people = [(customer, f"u{customer[4:]}", email_of(customer), TIMEZONES[n % len(TIMEZONES)])
                  for n, customer in enumerate(customers)]
        for start in range(0, len(people), 500):
            chunk = people[start:start + 500]
            marks = ", ".join("(?, ?, ?, ?)" for _ in chunk)
            conn.execute(f"INSERT INTO marts.dim_customers VALUES {marks}", [v for p in chunk for v in p])
            marks = ", ".join("(?, ?, ?), (?, ?, ?)" for _ in chunk)
            conn.execute(f"INSERT INTO marts.customer_identities VALUES {marks}",
                         [v for c, u, e, _ in chunk for v in (c, "email", e, c, "user_id", u)])
            marks = ", ".join("(?, TRUE, NULL)" for _ in chunk)
            conn.execute(f"INSERT INTO marts.send_eligibility VALUES {marks}", [c for c, *_ in chunk])


def wall_clock() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def seed_messages(warehouse: Warehouse, campaign_id: str, customers: list[str], send_at: datetime = AS_OF,
                  run_key: str = "2026-11-01", rendered_at: datetime | None = None,
                  addresses: dict[str, str] | None = None) -> list[str]:
    """Render one message per customer into ops.campaign_messages; returns the message ids.

    send_at defaults to the as-of day, as personalization plans it with MAILROOM_AS_OF set;
    rendered_at to now, as the render step stamps it (the wall clock). `addresses` overrides the
    address of some customers."""
    rendered_at = rendered_at or wall_clock()
    addresses = addresses or {}
    renderer = MessageRenderer(project_root() / "content" / "templates", "1 Test Street, Springfield", "Test Shop",
                               "http://127.0.0.1:8025/unsubscribe", SECRET, "mail.example.com")
    unit = ContentUnit(subject="Picked for you", preheader="New this week", headline="Your edit",
                       body_paragraphs=["A few things we think you will like."], call_to_action="Browse")
    rows, ids = [], []
    for customer in customers:
        message = renderer.render(template="picks_for_you", campaign_id=campaign_id, run_key=run_key,
                                  customer_id=customer, email=addresses.get(customer, email_of(customer)),
                                  first_name="Sam", content=unit, products=[
                                      {"product_id": "p1", "name": "Lamp", "category": "home", "price": 20,
                                       "currency": "USD"}])
        ids.append(message.message_id)
        rows.append((message.message_id, campaign_id, run_key, customer, "a", "seg", "content-1",
                     addresses.get(customer, email_of(customer)), message.subject, message.preheader, message.html,
                     message.text, json.dumps(message.headers), send_at, rendered_at))
    with warehouse.connect() as conn:
        ensure_ops_tables(conn)
        bulk_insert(conn, "ops.campaign_messages", rows)
    return ids


def activation_settings(tmp_path: Path, **overrides) -> ActivationSettings:
    values = dict(destinations=("outbox",), outbox_dir=tmp_path / "outbox", backoff_seconds=0.0,
                  breaker_reset_seconds=0.05, rate_per_second={"sendgrid": 0.0, "smtp": 0.0, "outbox": 0.0},
                  quiet_hours=None, reconcile_after_minutes=0.0, timeout_seconds=5.0)
    values.update(overrides)
    return ActivationSettings(**values)


def ledger_states(warehouse: Warehouse, campaign_id: str | None = None) -> dict[str, int]:
    from reverse_etl.ledger import counts

    with warehouse.connect() as conn:
        return counts(conn, campaign_id)
