"""Provider events for the messages Mailroom sent, so the demo can close the loop without a real
provider: deliveries, human and machine opens, clicks, a few bounces, spam reports and unsubscribes,
in the SendGrid Event Webhook format the receiver writes to landing/esp/. Some clicks lead to a
purchase: a Segment "Order Completed" track event in landing/cdp/, as the shop's CDP would send it.

Deterministic per message (seeded by its Message-ID), and written once per set of messages."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dagster_project.sample_data import behaviour as behaviours
from dagster_project.sample_data.writers import JsonLines
from dagster_project.warehouse import Warehouse

APPLE_MAIL_PROXY = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
ORDER_PRODUCTS = 3  # a buyer picks from the customer's top recommendations (what the email showed)
ORDER_DELAY_MINUTES = (5, 240)  # from the click to the order, well inside the conversion window


@dataclass(frozen=True)
class EngagementRates:
    human_open: float = 0.30
    click_given_open: float = 0.35
    purchase_given_click: float = 0.30


DEFAULT_RATES = EngagementRates()
# The demo's story: the weekly newsletter's curiosity angle (variant b) truly draws more clicks, so its
# experiment has a winner to find. Every other (campaign, variant) engages at the default rates.
DEMO_RATES = {("weekly_picks", "b"): EngagementRates(human_open=0.45, click_given_open=0.7)}


def orders_path(events_path: Path) -> Path:
    """The CDP file with the purchases that follow the clicks in `events_path` (landing/esp/...):
    landing/cdp/demo-orders-<the same digest>.jsonl. It exists only when somebody bought."""
    digest = events_path.name.removeprefix("demo-engagement-").removesuffix(".jsonl")
    return events_path.parent.parent / "cdp" / f"demo-orders-{digest}.jsonl"


def after_every_delivery(warehouse: Warehouse, now: datetime | None = None) -> datetime:
    """An hour after the last accepted message is delivered (or now, if later): the moment the demo
    pretends the provider reports back, so every message has been delivered, clicked and bought from.
    Messages are scheduled for each customer's best hour, up to a day ahead."""
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    with warehouse.connect() as conn:
        last = conn.scalar("SELECT max(coalesce(deliver_at, finished_at)) FROM ops.send_ledger "
                           "WHERE state = 'accepted'") \
            if conn.table_exists("ops", "send_ledger") else None
    return max(now, last + timedelta(hours=1)) if last else now


def simulate_engagement(warehouse: Warehouse, landing_dir: Path, latest: datetime | None = None,
                        rates: Mapping[tuple[str, str], EngagementRates] = DEMO_RATES,
                        by_send_time: bool = False) -> Path | None:
    """Write events for every accepted message into one new landing file and return its path; None
    when there is nothing new. A share of the customers who click a delivered message buy
    (`purchase_given_click`): their orders go to orders_path(<that file>), keyed by the customer's
    CDP user_id so identity resolution finds the same customer, between the click and `latest`. Event
    times are capped at `latest` (default now), so none is in the future. `rates` gives (campaign,
    variant) pairs their own open, click and purchase rates. With `by_send_time`, a person opens as the
    sample's truth says (truth/engagement.csv, behaviour.py): the rate times the customer's attention
    at the local delivery time relative to their daytime average, so a well-timed message does better."""
    latest = latest or datetime.now(timezone.utc).replace(tzinfo=None)
    with warehouse.connect() as conn:
        if not conn.table_exists("ops", "send_ledger"):
            return None
        sent = conn.fetchall(
            "SELECT l.message_id, l.campaign_id, l.variant_id, m.to_email, coalesce(l.deliver_at, l.finished_at), "
            "m.customer_id "
            "FROM ops.send_ledger AS l JOIN ops.campaign_messages AS m ON m.message_id = l.message_id "
            "WHERE l.state = 'accepted' ORDER BY l.message_id"
        )
    if not sent:
        return None
    digest = hashlib.sha256(("".join(row[0] for row in sent) + repr(sorted(rates.items())) + repr(by_send_time))
                            .encode()).hexdigest()[:16]
    path = landing_dir / "esp" / f"demo-engagement-{digest}.jsonl"
    if path.exists():
        return None
    truth = behaviours.load_truth(landing_dir / "truth" / "engagement.csv") if by_send_time else {}
    lines, clicks = [], []
    for message_id, campaign_id, variant_id, email, sent_at, customer_id in sent:
        rate = rates.get((campaign_id, variant_id), DEFAULT_RATES)
        if email in truth and sent_at is not None:
            behaviour, tz = truth[email]
            rate = replace(rate, human_open=min(0.95, rate.human_open
                                                * behaviours.relative_attention(behaviour, tz, sent_at)))
        events = _events(message_id, campaign_id, variant_id, email, min(sent_at or latest, latest), latest, rate)
        lines.extend(json.dumps(event) for event in events)
        click = next((event for event in events if event["event"] == "click"), None)
        # Only a message already delivered can be bought from: one the provider holds for a later
        # delivery time gets its events squeezed in before `latest`, but an order then would come
        # before the message went out, and no attribution counts it.
        if click is not None and sent_at is not None and sent_at <= latest:
            clicks.append((message_id, campaign_id, customer_id, click["timestamp"], rate))

    # The orders land first: the engagement file is the mark that this set of messages is done, so a
    # crash in between is repaired by running again, and an orders file once written is never rewritten.
    orders = orders_path(path)
    if not orders.exists():
        buyers = _buyers(warehouse, clicks)
        order_lines = [json.dumps(event) for event in (
            _order(message_id, campaign_id, click_at, latest, rate, buyers.get(customer_id))
            for message_id, campaign_id, customer_id, click_at, rate in clicks) if event is not None]
        if order_lines:
            _write(landing_dir, orders.relative_to(landing_dir), order_lines)
    _write(landing_dir, path.relative_to(landing_dir), lines)
    return path


def _write(landing_dir: Path, relative: Path, lines: list[str]) -> None:
    """Written under a hidden name and renamed when complete: ingest never reads half a file."""
    out = JsonLines(landing_dir, relative.as_posix())
    for line in lines:
        out.write(line)
    out.close()


def _buyers(warehouse: Warehouse, clicks: list) -> dict[str, tuple[str, list[tuple]]]:
    """customer_id -> (CDP user_id, the products recommended to them) for the customers who clicked.
    Customers without a user_id (CRM-only leads) never shopped online and buy nothing here."""
    if not clicks:
        return {}
    with warehouse.connect() as conn:
        if not all(conn.table_exists("marts", table) for table in ("dim_customers", "product_recommendations")):
            return {}
        rows = conn.fetchall(
            "SELECT c.customer_id, c.user_id, r.product_id, r.product_name, r.product_category, r.price, r.currency "
            "FROM marts.dim_customers AS c "
            "JOIN marts.product_recommendations AS r ON r.customer_id = c.customer_id "
            "WHERE c.user_id IS NOT NULL AND r.recommendation_rank <= ? AND r.price IS NOT NULL "
            "AND c.customer_id IN (SELECT m.customer_id FROM ops.send_ledger AS l "
            "    JOIN ops.campaign_messages AS m ON m.message_id = l.message_id WHERE l.state = 'accepted') "
            "ORDER BY c.customer_id, r.recommendation_rank",
            [ORDER_PRODUCTS],
        )
    products: dict[str, list[tuple]] = defaultdict(list)
    user_ids = {}
    for customer_id, user_id, *product in rows:
        user_ids[customer_id] = user_id
        products[customer_id].append(tuple(product))
    return {customer_id: (user_id, products[customer_id]) for customer_id, user_id in user_ids.items()}


def _order(message_id: str, campaign_id: str, click_at: int, latest: datetime, rates: EngagementRates,
           buyer: tuple[str, list[tuple]] | None) -> dict | None:
    """The Segment "Order Completed" event of a customer who bought after clicking, or None. Its own
    random stream, so the provider events stay exactly what they were without purchases."""
    rng = random.Random(f"{message_id}|order")
    if buyer is None or rng.random() >= rates.purchase_given_click:
        return None
    user_id, recommended = buyer
    clicked = datetime.fromtimestamp(click_at, timezone.utc).replace(tzinfo=None)
    ordered = min(clicked + timedelta(minutes=rng.randint(*ORDER_DELAY_MINUTES), seconds=rng.randint(0, 59)), latest)
    items = []
    basket = 2 if len(recommended) > 1 and rng.random() < 0.25 else 1
    for product_id, name, category, price, currency in rng.sample(recommended, basket):
        items.append({"product_id": product_id, "name": name, "category": category, "price": float(price),
                      "currency": currency, "quantity": 1 if rng.random() < 0.85 else 2})
    total = round(sum(item["price"] * item["quantity"] for item in items), 2)
    key = hashlib.sha256(f"{message_id}|order".encode()).digest()
    return {
        "messageId": str(uuid.UUID(bytes=key[:16], version=4)),
        "type": "track",
        "userId": user_id,
        "event": "Order Completed",
        "properties": {"order_id": f"R{int.from_bytes(key[16:24], 'big') % 10**10:010d}", "total": total,
                       "revenue": total, "currency": items[0]["currency"], "products": items},
        # Segment's UTM context: the campaign the shopper came from.
        "context": {"campaign": {"source": "mailroom", "medium": "email", "name": campaign_id}},
        "timestamp": _iso(ordered),
        "receivedAt": _iso(min(ordered + timedelta(milliseconds=rng.randint(40, 2500)), latest)),
    }


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds") + "Z"


def _events(message_id: str, campaign_id: str, variant_id: str, email: str, sent_at: datetime,
            latest: datetime, rates: EngagementRates) -> list[dict]:
    rng = random.Random(message_id)
    events = []

    def add(kind: str, after: timedelta, **fields) -> None:
        at = min(sent_at + after, latest)
        events.append({
            "sg_event_id": hashlib.sha256(f"{message_id}|{kind}|{len(events)}".encode()).hexdigest()[:22],
            "event": kind, "email": email, "timestamp": int(at.replace(tzinfo=timezone.utc).timestamp()),
            "sg_message_id": f"demo.{hashlib.sha256(message_id.encode()).hexdigest()[:16]}",
            "mailroom_message_id": message_id, "campaign_id": campaign_id, "variant_id": variant_id,
            "category": [campaign_id], **fields,
        })

    if rng.random() < 0.02:
        add("bounce", timedelta(minutes=1), type="bounce", reason="550 5.1.1 mailbox unavailable", status="5.1.1")
        return events
    add("delivered", timedelta(minutes=1))
    if rng.random() < 0.25:  # Apple Mail Privacy Protection fetches the pixel at delivery
        add("open", timedelta(minutes=2), useragent=APPLE_MAIL_PROXY, sg_machine_open=True)
    if rng.random() < rates.human_open:
        add("open", timedelta(minutes=rng.randint(10, 600)), useragent=BROWSER, sg_machine_open=False)
        if rng.random() < rates.click_given_open:
            add("click", timedelta(minutes=rng.randint(601, 700)), useragent=BROWSER, url="https://shop.example.com/")
    if rng.random() < 0.005:
        add("unsubscribe", timedelta(minutes=rng.randint(10, 700)))
    elif rng.random() < 0.001:
        add("spamreport", timedelta(minutes=rng.randint(10, 700)))
    return events
