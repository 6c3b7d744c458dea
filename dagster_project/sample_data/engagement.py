"""Provider events for the messages Mailroom sent, so the demo can close the loop without a real
provider: deliveries, human and machine opens, clicks, a few bounces, spam reports and unsubscribes,
in the SendGrid Event Webhook format the receiver writes to landing/esp/.

Deterministic per message (seeded by its Message-ID), and written once per set of messages."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dagster_project.warehouse import Warehouse

APPLE_MAIL_PROXY = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


@dataclass(frozen=True)
class EngagementRates:
    human_open: float = 0.30
    click_given_open: float = 0.35


DEFAULT_RATES = EngagementRates()
# The demo's story: the weekly newsletter's curiosity angle (variant b) truly draws more clicks, so its
# experiment has a winner to find. Every other (campaign, variant) engages at the default rates.
DEMO_RATES = {("weekly_picks", "b"): EngagementRates(human_open=0.45, click_given_open=0.7)}


def simulate_engagement(warehouse: Warehouse, landing_dir: Path, latest: datetime | None = None,
                        rates: Mapping[tuple[str, str], EngagementRates] = DEMO_RATES) -> Path | None:
    """Write events for every accepted message into one new landing file; None when there is nothing
    new. Event times are capped at `latest` (default now), so none is in the future. `rates` gives
    (campaign, variant) pairs their own open and click rates."""
    latest = latest or datetime.now(timezone.utc).replace(tzinfo=None)
    with warehouse.connect() as conn:
        if not conn.table_exists("ops", "send_ledger"):
            return None
        sent = conn.fetchall(
            "SELECT l.message_id, l.campaign_id, l.variant_id, m.to_email, coalesce(l.deliver_at, l.finished_at) "
            "FROM ops.send_ledger AS l JOIN ops.campaign_messages AS m ON m.message_id = l.message_id "
            "WHERE l.state = 'accepted' ORDER BY l.message_id"
        )
    if not sent:
        return None
    digest = hashlib.sha256(("".join(row[0] for row in sent) + repr(sorted(rates.items()))).encode()).hexdigest()[:16]
    path = landing_dir / "esp" / f"demo-engagement-{digest}.jsonl"
    if path.exists():
        return None
    lines = []
    for message_id, campaign_id, variant_id, email, sent_at in sent:
        lines.extend(json.dumps(event) for event in _events(
            message_id, campaign_id, variant_id, email, min(sent_at or latest, latest), latest,
            rates.get((campaign_id, variant_id), DEFAULT_RATES)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


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
