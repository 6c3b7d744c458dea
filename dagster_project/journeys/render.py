"""Render one journey step's message for one customer into ops.campaign_messages.

The run key is `<journey>.<entry>.<step>`, so the unique key (campaign, run, customer) of the messages
table - and the ledger's after it - is exactly one message per journey, customer, entry and step: a
re-run after a crash finds the message and renders nothing twice. The customer's profile comes from
the step campaign's audience model; a customer the marts do not know yet (a signup minutes old,
`is_provisional` in the entry) is written to with what their event carried and their campaign's
content for new customers. The pre-send check then insists on an explicit opt-in for them.
"""

from __future__ import annotations

import json
from datetime import datetime

from dagster_project.journeys.spec import Step
from dagster_project.journeys.state import Held
from dagster_project.personalization.campaigns import Campaign
from dagster_project.personalization.content import ContentUnit
from dagster_project.personalization.messages_step import current_content
from dagster_project.personalization.ops_tables import CAMPAIGN_MESSAGES
from dagster_project.personalization.render import MessageRenderer
from dagster_project.personalization.variants import PHASE_FULL, assign_variant
from dagster_project.warehouse import Connection

NEW_CUSTOMER_SEGMENT = "new:"  # the content a provisional customer gets: a new-customer segment's


def run_key(row: Held) -> str:
    return f"{row.journey_id}.{row.entry_no}.{row.step_id}"


def render_step_message(conn: Connection, campaign: Campaign, step: Step, row: Held, renderer: MessageRenderer,
                        now: datetime, content_cache: dict | None = None) -> tuple[str, str | None]:
    """(outcome, message id): ("planned", id) once the message exists, else why there is none -
    "skipped:<reason>" (the journey goes on) or "exit:<reason>" (the customer may not be mailed)."""
    key = run_key(row)
    existing = conn.scalar("SELECT message_id FROM ops.campaign_messages WHERE campaign_id = ? AND run_key = ? "
                           "AND customer_id = ?", [campaign.campaign_id, key, row.customer_id])
    if existing:
        return "planned", existing
    profile = _profile(conn, campaign, row)
    if profile is None:
        return "skipped:not_in_audience", None
    email, first_name, segment_key, eligible, reason = profile
    if not eligible:
        return f"exit:ineligible:{reason or 'ineligible'}", None
    variant = assign_variant(campaign.salt, row.customer_id, campaign.weighted_variants, 0.0)
    if content_cache is None:
        content_cache = {}
    if campaign.campaign_id not in content_cache:
        content_cache[campaign.campaign_id] = current_content(conn, campaign.campaign_id)
    content = _content_for(content_cache[campaign.campaign_id], segment_key, variant)
    if content is None:
        return "skipped:no_content", None
    content_key, unit, segment_key = content
    message = renderer.render(template=campaign.template, campaign_id=campaign.campaign_id, run_key=key,
                              customer_id=row.customer_id, email=email, first_name=first_name, content=unit,
                              products=_products(conn, campaign, row.customer_id))
    values = {
        "message_id": message.message_id, "campaign_id": campaign.campaign_id, "run_key": key,
        "customer_id": row.customer_id, "variant_id": variant, "segment_key": segment_key, "content_key": content_key,
        "to_email": email, "subject": message.subject, "preheader": message.preheader, "html_body": message.html,
        "text_body": message.text, "headers_json": json.dumps(message.headers), "send_at": now, "rendered_at": now,
        "on_frequency_cap": step.settings.get("on_frequency_cap"),
    }
    names = [column.name for column in CAMPAIGN_MESSAGES if column.name in values]
    conn.execute(f"INSERT INTO ops.campaign_messages ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
                 "ON CONFLICT DO NOTHING", [values[name] for name in names])
    # The experiment unit, as a campaign run records it: performance marts count journey sends too.
    conn.execute("INSERT INTO ops.campaign_assignments (campaign_id, run_key, customer_id, arm, phase, anchor_at, "
                 "assigned_at, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                 [campaign.campaign_id, key, row.customer_id, variant, PHASE_FULL, now, now, now])
    return "planned", conn.scalar("SELECT message_id FROM ops.campaign_messages WHERE campaign_id = ? AND run_key = ? "
                                  "AND customer_id = ?", [campaign.campaign_id, key, row.customer_id])


def _profile(conn: Connection, campaign: Campaign, row: Held) -> tuple | None:
    """(email, first name, segment, eligible, reason) from the campaign's audience, or from the entry
    event for a customer the marts do not know yet."""
    if conn.table_exists(*campaign.relation.split(".")):
        found = conn.fetchall(f"SELECT email, first_name, segment_key, is_eligible, ineligible_reason "
                              f"FROM {campaign.relation} WHERE customer_id = ?", [row.customer_id])
        if found:
            return found[0]
    context = row.context
    if _truthy(context.get("is_provisional")) and context.get("email"):
        return context["email"], context.get("first_name"), None, True, None
    return None


def _truthy(value) -> bool:
    return value is True or str(value).lower() in ("true", "1", "t")


def _content_for(content: dict, segment_key: str | None, variant: str) -> tuple[str, ContentUnit, str] | None:
    """(content key, unit, segment) for the customer's segment, else a new-customer segment's."""
    if segment_key is not None and (segment_key, variant) in content:
        key, unit = content[(segment_key, variant)]
        return key, unit, segment_key
    fallbacks = sorted(segment for segment, arm in content if arm == variant)
    preferred = [segment for segment in fallbacks if segment.startswith(NEW_CUSTOMER_SEGMENT)] or fallbacks
    if segment_key is not None or not preferred:
        return None  # a known customer whose segment has no content yet waits for the content asset
    key, unit = content[(preferred[0], variant)]
    return key, unit, preferred[0]


def _products(conn: Connection, campaign: Campaign, customer_id: str) -> list[dict]:
    source = campaign.product_source
    if not source or not conn.table_exists(*source[0].split(".")):
        return []
    relation, rank = source
    return [{"product_id": product_id, "name": name, "category": category,
             "price": float(price) if price is not None else None, "currency": currency, "url": url}
            for product_id, name, category, price, currency, url in conn.fetchall(
                f"SELECT product_id, product_name, product_category, price, currency, product_url FROM {relation} "
                f"WHERE customer_id = ? AND {rank} <= ? ORDER BY {rank}", [customer_id, campaign.products_per_message])]
