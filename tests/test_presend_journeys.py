"""The last look's additions for journeys (reverse_etl/presend.py), on both warehouses, through the
outbox with the sender's clock: a message over the frequency cap that says 'delay' waits for the cap
to clear (never handed over before, expired past its window); a sunset holds until the customer
orders or clicks; a customer the marts do not know yet needs an explicit opt-in."""

from __future__ import annotations

from datetime import datetime, timedelta

from dagster_project.personalization.ops_tables import CAMPAIGN_MESSAGES, ensure_ops_tables
from reverse_etl.ledger import ensure_ledger
from reverse_etl.run import send_campaigns
from reverse_etl.suppressions import record_sunset

from activation_helpers import activation_settings, customer_ids, email_of, seed_customers, seed_messages

NOW = datetime(2026, 11, 10, 12, 0)


def _send(settings, tmp_path, at: datetime, campaign: str = "journey", **overrides):
    [report] = send_campaigns(settings, activation_settings(tmp_path, **overrides), [campaign], log=lambda m: None,
                              clock=lambda: at)
    return report


def _handed_over_before(warehouse, customer: str, deliver_at: list[datetime]) -> None:
    """Earlier hand-overs of other campaigns to the customer, as the ledger records them."""
    with warehouse.connect() as conn:
        ensure_ledger(conn)
        for n, when in enumerate(deliver_at):
            conn.execute("INSERT INTO ops.send_ledger (message_id, campaign_id, run_key, customer_id, state, "
                         "deliver_at, finished_at) VALUES (?, 'earlier', ?, ?, 'accepted', ?, ?)",
                         [f"<earlier-{customer}-{n}@x>", f"r{n}", customer, when, when])


def _on_cap(warehouse, choices: dict[str, str]) -> None:
    with warehouse.connect() as conn:
        for customer, choice in choices.items():
            conn.execute("UPDATE ops.campaign_messages SET on_frequency_cap = ? WHERE customer_id = ?",
                         [choice, customer])


def _ledger(warehouse, campaign: str = "journey") -> dict[str, tuple]:
    with warehouse.connect() as conn:
        return {row[0]: row[1:] for row in conn.fetchall(
            "SELECT customer_id, state, reason, deliver_at, on_frequency_cap FROM ops.send_ledger "
            "WHERE campaign_id = ?", [campaign])}


def test_delay_waits_for_the_cap_to_clear_and_skip_is_suppressed(settings, warehouse, tmp_path):
    """Cap 3. The capped customers' hand-overs: 8, 6, 5 and 4 days ago: three in the window, and the
    third most recent (6 days ago) leaves it one day from now - then, and not before, the delayed
    message goes. 'skip' (and no choice) is suppressed; under the cap 'delay' goes at once."""
    delayed, skipped, unset, free = customers = customer_ids(4)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "journey", customers, send_at=NOW, rendered_at=NOW)
    _on_cap(warehouse, {delayed: "delay", skipped: "skip", free: "delay"})
    for customer in (delayed, skipped, unset):
        _handed_over_before(warehouse, customer, [NOW - timedelta(days=d) for d in (8, 6, 5, 4)])
    clears = NOW - timedelta(days=6) + timedelta(days=7)

    first = _send(settings, tmp_path, NOW, frequency_cap=3)

    assert first.accepted == {"outbox": 1} and first.suppressed == {"frequency_cap": 2}
    assert first.held_by_frequency_cap == 1 and first.next_due_at == clears
    ledger = _ledger(warehouse)
    assert ledger[delayed] == ("planned", None, clears, "delay")
    assert ledger[skipped][:2] == ledger[unset][:2] == ("suppressed", "frequency_cap")
    assert ledger[free][0] == "accepted"
    # Never before the cap clears (the outbox would take a message 72 hours ahead): at the moment the
    # third most recent hand-over is exactly 7 days old it still counts.
    for at in (NOW + timedelta(hours=6), NOW + timedelta(hours=23, minutes=59), clears):
        report = _send(settings, tmp_path, at, frequency_cap=3)
        assert report.handed_over == 0 and report.held_by_frequency_cap == 1, at
        assert _ledger(warehouse)[delayed][:3] == ("planned", None, clears)
    after = _send(settings, tmp_path, clears + timedelta(minutes=1), frequency_cap=3)
    assert after.accepted == {"outbox": 1} and after.held_by_frequency_cap == 0
    assert _ledger(warehouse)[delayed][:3] == ("accepted", None, clears + timedelta(minutes=1))


def test_a_delayed_message_expires_when_the_cap_clears_too_late(settings, warehouse, tmp_path):
    """Hand-overs 1 day ago: the cap (1) clears in 6 days, past the 48-hour expiry window."""
    [customer] = customer_ids(1)
    seed_customers(warehouse, [customer])
    seed_messages(warehouse, "journey", [customer], send_at=NOW, rendered_at=NOW)
    _on_cap(warehouse, {customer: "delay"})
    _handed_over_before(warehouse, customer, [NOW - timedelta(days=1)])

    for at in (NOW, NOW + timedelta(hours=47)):
        report = _send(settings, tmp_path, at, frequency_cap=1)
        assert report.held_by_frequency_cap == 1 and report.handed_over == 0
    late = _send(settings, tmp_path, NOW + timedelta(hours=48, minutes=1), frequency_cap=1)

    assert late.suppressed == {"expired": 1} and late.handed_over == 0
    assert _ledger(warehouse)[customer][:2] == ("suppressed", "expired")


def _order(conn, event_id: str, user_id: str, at: datetime) -> None:
    conn.execute("INSERT INTO raw.cdp_events (message_id, event_type, event_name, user_id, event_at) "
                 "VALUES (?, 'track', 'Order Completed', ?, ?)", [event_id, user_id, at])


def _click(conn, event_id: str, address: str, at: datetime) -> None:
    conn.execute("INSERT INTO raw.esp_events (sg_event_id, event, email, event_at) VALUES (?, 'click', ?, ?)",
                 [event_id, address, at])


def test_a_sunset_holds_until_the_customer_orders_or_clicks(settings, warehouse, tmp_path):
    """Customers (user ids u000000, ...) sunset a day ago: one did nothing since, one ordered and one
    clicked (in another spelling of the address) since, one ordered only before. The mart's stale
    'sunset' does not outvote the live check."""
    quiet, ordered, clicked, ordered_before = customers = customer_ids(4)
    seed_customers(warehouse, customers)
    sunset_at = NOW - timedelta(days=1)
    with warehouse.connect() as conn:
        assert record_sunset(conn, customers, "reengagement", sunset_at) == 4
        assert record_sunset(conn, customers, "reengagement", NOW) == 0  # holds: nothing changes
        _order(conn, "o1", "u000001", NOW - timedelta(hours=2))
        _click(conn, "k2", email_of(clicked).upper() + " ", NOW - timedelta(hours=3))
        _order(conn, "o3", "u000003", sunset_at - timedelta(minutes=1))
        conn.execute("UPDATE marts.send_eligibility SET is_eligible = FALSE, ineligible_reason = 'sunset' "
                     "WHERE customer_id = ?", [ordered])
        assert conn.fetchall("SELECT DISTINCT journey_id, recorded_at FROM ops.marketing_suppressions") == [
            ("reengagement", sunset_at)]
    seed_messages(warehouse, "weekly", customers, send_at=NOW, rendered_at=NOW)

    report = _send(settings, tmp_path, NOW, campaign="weekly")

    assert report.suppressed == {"sunset": 2} and report.handed_over == 2
    ledger = _ledger(warehouse, "weekly")
    assert {c: ledger[c][1] or ledger[c][0] for c in customers} == {
        quiet: "sunset", ordered: "accepted", clicked: "accepted", ordered_before: "sunset"}

    # A later order lifts it for the next run; a later sunset of a customer who came back starts again.
    with warehouse.connect() as conn:
        _order(conn, "o0", "u000000", NOW + timedelta(hours=1))
    seed_messages(warehouse, "weekly", [quiet], run_key="2026-11-11", send_at=NOW, rendered_at=NOW)
    assert _send(settings, tmp_path, NOW + timedelta(hours=2), campaign="weekly").accepted == {"outbox": 1}
    with warehouse.connect() as conn:
        assert record_sunset(conn, [quiet, ordered_before], "reengagement", NOW + timedelta(hours=3)) == 1
    seed_messages(warehouse, "weekly", [quiet], run_key="2026-11-12", send_at=NOW, rendered_at=NOW)
    assert _send(settings, tmp_path, NOW + timedelta(hours=4), campaign="weekly").suppressed == {"sunset": 1}


def _consent(conn, event_id, address, status, at, lawful_basis="consent"):
    conn.execute(
        "INSERT INTO raw.consent_events (event_id, email, channel, status, jurisdiction, lawful_basis, source, "
        "occurred_at) VALUES (?, ?, 'email', ?, 'EU', ?, 'signup_form', ?)",
        [event_id, address, status, lawful_basis, at])


def test_a_customer_the_marts_do_not_know_yet_needs_an_explicit_opt_in(settings, warehouse, tmp_path):
    """Signups newer than the marts: no send_eligibility row. Only a latest consent event that is an
    explicit opt-in (opt_in, lawful basis consent) lets the message go; without the mart, the rule
    does not apply."""
    [known] = customer_ids(1)
    seed_customers(warehouse, [known])  # eligible, and no consent event: the mart's row decides
    opted_in, nothing, legitimate, opted_out, back_in = new = customer_ids(5, prefix="new_")
    with warehouse.connect() as conn:
        _consent(conn, "c1", email_of(opted_in), "opt_in", NOW - timedelta(minutes=1))
        _consent(conn, "c3", email_of(legitimate), "opt_in", NOW - timedelta(minutes=1), "legitimate_interest")
        _consent(conn, "c4a", email_of(opted_out), "opt_in", NOW - timedelta(minutes=2))
        _consent(conn, "c4b", email_of(opted_out), "opt_out", NOW - timedelta(minutes=1))
        _consent(conn, "c5a", email_of(back_in), "opt_out", NOW - timedelta(days=2))
        _consent(conn, "c5b", email_of(back_in), "opt_in", NOW - timedelta(minutes=1))
    seed_messages(warehouse, "journey", [known, *new], send_at=NOW, rendered_at=NOW)

    report = _send(settings, tmp_path, NOW)

    ledger = _ledger(warehouse)
    assert {c: ledger[c][1] or ledger[c][0] for c in [known, *new]} == {
        known: "accepted", opted_in: "accepted", nothing: "no_consent_yet", legitimate: "no_consent_yet",
        opted_out: "opted_out", back_in: "accepted"}
    assert report.suppressed == {"no_consent_yet": 2, "opted_out": 1}

    # Before the first dbt build there is no mart to miss a row in: nobody is held for it.
    with warehouse.connect() as conn:
        conn.execute("DROP TABLE marts.send_eligibility")
    seed_messages(warehouse, "journey", [nothing], run_key="2026-11-11", send_at=NOW, rendered_at=NOW)
    assert _send(settings, tmp_path, NOW).accepted == {"outbox": 1}


def test_tables_from_before_on_frequency_cap_gain_it_and_old_messages_plan_without_it(warehouse):
    """ensure_ops_tables adds the column to an existing messages table; a messages table that lacks
    it still plans (NULL: suppressed over the cap, as before)."""
    from reverse_etl import ledger

    old = [c for c in CAMPAIGN_MESSAGES if c.name != "on_frequency_cap"]
    with warehouse.connect() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
        conn.create_table("ops.campaign_messages", old)
        conn.execute("INSERT INTO ops.campaign_messages (message_id, campaign_id, run_key, customer_id, to_email, "
                     "send_at) VALUES ('<m1@x>', 'old', 'r1', 'cus_1', 'a@x.org', ?)", [NOW])
        ledger.ensure_ledger(conn)
        assert ledger.plan(conn, "old", NOW) == 1
        ensure_ops_tables(conn)
        assert conn.scalar("SELECT count(*) FROM ops.campaign_messages WHERE on_frequency_cap IS NULL") == 1
        assert conn.fetchall("SELECT message_id, on_frequency_cap FROM ops.send_ledger") == [("<m1@x>", None)]
