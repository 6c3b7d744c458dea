"""The demo's journeys: fresh signups and carts land as the CDP and consent feeds drop them, the fast
path (ingest, the journeys' models, a tick) takes them in, an order lands between a cart's reminder and
its incentive, and each journey's funnel is printed.

A demo cannot wait two days, so the journeys run on a simulated clock (the tick's `now` run config):
the first run at 10:00 UTC yesterday, the second at 11:00 today, 25 hours on - past the cart journey's
24-hour wait, short of the welcome series' 2 days. That leaves customers at different steps: welcomed
and waiting for day 2, reminded and waiting for the incentive, given the incentive, or gone because
they bought the cart."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dagster_project.settings import Settings
from dagster_project.warehouse import Connection, Warehouse

FAST_PATH_JOB = "journeys_fast_path"
SIGNUPS = 4
CARTS = 6
BOUGHT = 2  # of the carts, ordered between the reminder and the incentive


def journey_clock(today: datetime) -> tuple[datetime, datetime]:
    """The two tick times: 10:00 UTC yesterday and 11:00 today."""
    day = today.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(hours=14), day + timedelta(hours=11)


def known_shoppers(conn: Connection, count: int) -> list[tuple[str, str]]:
    """(customer, user id) of eligible customers with a user id, the same ones on every engine."""
    return [tuple(row) for row in conn.fetchall(
        "SELECT c.customer_id, min(i.identifier_value) FROM marts.campaign_candidates AS c "
        "JOIN marts.customer_identities AS i ON i.customer_id = c.customer_id AND i.identifier_type = 'user_id' "
        "WHERE c.is_eligible GROUP BY c.customer_id ORDER BY c.customer_id LIMIT ?", [count])]


def first_products(conn: Connection, count: int) -> list[str]:
    return [product for (product,) in conn.fetchall(
        "SELECT product_id FROM staging.stg_catalog__products ORDER BY product_id LIMIT ?", [count])]


def first_wave(first_tick: datetime, shoppers: list[tuple[str, str]], products: list[str]) -> tuple[list, list]:
    """CDP and consent records: signups (with their opt-in) an hour before the first tick, and carts
    filled the day before (the first tick finds their 1-hour wait over)."""
    cdp, consent = [], []
    for n in range(SIGNUPS):
        at, email = first_tick - timedelta(minutes=60 - 10 * n), f"demo.signup.{n + 1}@example.com"
        user, traits = f"demo-signup-{n + 1}", {"email": email, "first_name": ("Ada", "Bo", "Cy", "Di")[n % 4]}
        cdp += [_event(f"demo-identify-{n + 1}", at, "identify", user, traits=traits),
                _event(f"demo-signup-{n + 1}", at, "track", user, event="Signed Up", traits=traits,
                       properties={"method": "email"})]
        consent.append({"event_id": f"demo-optin-{n + 1}", "email": email, "channel": "email", "status": "opt_in",
                        "jurisdiction": "EU", "lawful_basis": "consent", "source": "signup_form",
                        "occurred_at": at.isoformat() + "Z"})
    for n, (_, user) in enumerate(shoppers[:CARTS - 1]):
        cdp.append(_cart(n, user, products[n % len(products)], first_tick - timedelta(hours=26)))
    return cdp, consent


def second_wave(first_tick: datetime, shoppers: list[tuple[str, str]], products: list[str]) -> list:
    """Orders of the first carts (after their reminder) and one more cart, landed before the second tick."""
    orders = [_event(f"demo-order-{n + 1}", first_tick + timedelta(hours=6), "track", user, event="Order Completed",
                     properties={"order_id": f"demo-order-{n + 1}", "cart_id": f"demo-cart-{n + 1}",
                                 "revenue": 42.0, "currency": "USD"})
              for n, (_, user) in enumerate(shoppers[:BOUGHT])]
    late = CARTS - 1
    return orders + [_cart(late, shoppers[late][1], products[late % len(products)], first_tick + timedelta(hours=13))]


def _cart(n: int, user: str, product: str, at: datetime) -> dict:
    return _event(f"demo-cart-add-{n + 1}", at, "track", user, event="Product Added",
                  properties={"cart_id": f"demo-cart-{n + 1}", "product_id": product, "price": 24.0, "quantity": 1})


def _event(message_id: str, at: datetime, kind: str, user: str, **fields) -> dict:
    """A Segment spec event as a CDP drop carries it."""
    record = {"messageId": message_id, "type": kind, "userId": user, "anonymousId": f"anon-{message_id}",
              "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
              "receivedAt": (at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
              "context": {"timezone": "Europe/Berlin"}}
    record.update({name: value for name, value in fields.items() if value is not None})
    return record


def land(landing_dir: Path, source: str, name: str, records: list[dict]) -> Path:
    """Write a landing file as a drop does: to a temporary name, then renamed into place."""
    folder = landing_dir / source
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / f".{name}.tmp"
    scratch.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return scratch.replace(folder / name)


def clock_config(journey_ids: list[str], now: datetime) -> dict:
    return {"ops": {f"{journey_id}_tick": {"config": {"now": now.isoformat()}} for journey_id in journey_ids}}


def funnel_lines(conn: Connection, journeys) -> list[str]:
    """Per journey: entries, messages per send step, who waits where, who left and why."""
    from dagster_project.defs.journeys.metadata import step_counts

    lines = []
    for journey in journeys:
        entries = conn.scalar("SELECT count(*) FROM ops.journey_entries WHERE journey_id = ?", [journey.journey_id]) \
            if conn.table_exists("ops", "journey_entries") else 0
        counts = step_counts(conn, journey) if conn.table_exists("ops", "journey_state") else {}
        sent = ", ".join(f"{step} {c['messages']:,}" for step, c in counts.items() if c["messages"])
        waiting = ", ".join(f"{step} {c['waiting']:,}" for step, c in counts.items() if c["waiting"])
        exited = ", ".join(f"{reason} {n:,}" for c in counts.values() for reason, n in sorted(c["exited"].items()))
        lines.append(f"  {journey.journey_id:<17} {entries:>5,} entered; messages: {sent or 'none'}"
                     + (f"; waiting at {waiting}" if waiting else "") + (f"; exited: {exited}" if exited else ""))
    return lines


def show_journeys(demo, settings: Settings) -> list:
    """Land the two waves, run the fast path on each, print the funnels; the runs."""
    from dagster_project.defs.journeys.assets import load_journeys

    journeys = [journey for journey in load_journeys() if journey.status == "live"]
    ids = [journey.journey_id for journey in journeys]
    first, second = journey_clock(datetime.now(timezone.utc).replace(tzinfo=None))
    with Warehouse(settings).connect() as conn:
        shoppers, products = known_shoppers(conn, CARTS), first_products(conn, CARTS)
    if len(shoppers) < CARTS or not products:
        print("\nJourneys: too few eligible customers in the sample to show them")
        return []
    print(f"\nJourneys, on a simulated clock ({first:%Y-%m-%d %H:%M} and {second:%Y-%m-%d %H:%M} UTC): "
          f"{SIGNUPS} signups and {CARTS - 1} carts land, then {BOUGHT} orders and one more cart")
    cdp, consent = first_wave(first, shoppers, products)
    land(settings.landing_dir, "cdp", "demo-journeys-1.jsonl", cdp)
    land(settings.landing_dir, "consent", "demo-journeys-1.jsonl", consent)
    runs = [demo.run("  fast path: the signups and carts", FAST_PATH_JOB, steps=False,
                     run_config=clock_config(ids, first))]
    land(settings.landing_dir, "cdp", "demo-journeys-2.jsonl", second_wave(first, shoppers, products))
    runs.append(demo.run("  fast path: the orders and a late cart", FAST_PATH_JOB, steps=False,
                         run_config=clock_config(ids, second)))
    with Warehouse(settings).connect() as conn:
        for line in funnel_lines(conn, journeys):
            print(line)
    return runs
