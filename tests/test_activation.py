"""Activation through the send ledger on both warehouses: exactly one handover per message, the last
look before sending (consent, suppressions, frequency cap, expiry), quiet hours, and the dry run."""

from __future__ import annotations

import email
from datetime import datetime, timedelta
from email import policy

from activation_helpers import (
    AS_OF,
    activation_settings,
    customer_ids,
    email_of,
    ledger_states,
    seed_customers,
    seed_messages,
)

from reverse_etl.run import send_campaigns


def _outbox_files(tmp_path) -> list:
    return sorted((tmp_path / "outbox").rglob("*.eml"))


def test_every_message_lands_in_the_outbox_once_and_a_rerun_sends_nothing(settings, warehouse, tmp_path):
    customers = customer_ids(40)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers)
    activation = activation_settings(tmp_path)

    [first] = send_campaigns(settings, activation, log=lambda m: None)
    [second] = send_campaigns(settings, activation, log=lambda m: None)

    files = _outbox_files(tmp_path)
    assert first.accepted == {"outbox": 40} and second.handed_over == 0
    assert len(files) == 40
    parsed = [email.message_from_bytes(path.read_bytes(), policy=policy.default) for path in files]
    assert sorted(m["Message-ID"] for m in parsed) == sorted(ids)
    assert {m["To"] for m in parsed} == {email_of(c) for c in customers}
    assert all(m["List-Unsubscribe"].startswith("<http") and m.get_body(("html",)) for m in parsed)
    assert ledger_states(warehouse) == {"accepted": 40}


def _consent(conn, event_id, status, occurred_at, user_id=None, address=None):
    conn.execute(
        "INSERT INTO raw.consent_events (event_id, user_id, email, channel, status, jurisdiction, lawful_basis, "
        "source, occurred_at) VALUES (?, ?, ?, 'email', ?, 'US', 'consent', 'preference_center', ?)",
        [event_id, user_id, address, status, occurred_at],
    )


def test_the_latest_data_is_checked_right_before_sending(settings, warehouse, tmp_path):
    """Opt-outs, bounces and complaints that arrived after the audience was built suppress with a reason."""
    customers = customer_ids(8)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "weekly", customers)
    with warehouse.connect() as conn:
        # by user id, for a customer whose message goes to their email address
        _consent(conn, "c0", "opt_out", AS_OF - timedelta(hours=1), user_id="u000000")
        # by address; a later opt-in wins over an earlier opt-out
        _consent(conn, "c1", "opt_out", AS_OF - timedelta(days=3), address=email_of(customers[1]))
        _consent(conn, "c1b", "opt_in", AS_OF - timedelta(days=1), address=email_of(customers[1]))
        _consent(conn, "c2", "opt_out", AS_OF - timedelta(minutes=5), address=email_of(customers[2]).upper())
        for n, (event, bounce_type) in enumerate([("bounce", "bounce"), ("spamreport", None), ("unsubscribe", None),
                                                  ("bounce", "blocked")]):
            conn.execute(
                "INSERT INTO raw.esp_events (sg_event_id, event, email, event_at, bounce_type) VALUES (?, ?, ?, ?, ?)",
                [f"e{n}", event, email_of(customers[3 + n]), AS_OF - timedelta(hours=2), bounce_type],
            )
        conn.execute("UPDATE marts.send_eligibility SET is_eligible = FALSE, ineligible_reason = 'no_explicit_consent' "
                     "WHERE customer_id = ?", [customers[7]])

    [report] = send_campaigns(settings, activation_settings(tmp_path), log=lambda m: None)

    assert report.suppressed == {"opted_out": 2, "hard_bounced": 1, "spam_complaint": 1, "unsubscribed": 1,
                                 "no_explicit_consent": 1}
    with warehouse.connect() as conn:
        states = dict(conn.fetchall("SELECT customer_id, coalesce(reason, state) FROM ops.send_ledger"))
    assert states[customers[0]] == states[customers[2]] == "opted_out"
    assert states[customers[1]] == "accepted"  # opted back in
    assert states[customers[6]] == "accepted"  # a soft bounce (blocked) does not suppress
    assert len(_outbox_files(tmp_path)) == 2


def test_the_frequency_cap_holds_across_two_campaigns_on_the_same_day(settings, warehouse, tmp_path):
    customers = customer_ids(10)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "weekly", customers)
    seed_messages(warehouse, "cart", customers[:6], send_at=AS_OF + timedelta(hours=2))
    activation = activation_settings(tmp_path, frequency_cap=1)

    weekly, cart = send_campaigns(settings, activation, ["weekly", "cart"], log=lambda m: None)

    assert weekly.handed_over == 10
    assert cart.handed_over == 0 and cart.suppressed == {"frequency_cap": 6}
    # With room for two, the second campaign goes out too.
    seed_messages(warehouse, "welcome", customers[:3], run_key="2026-11-02")
    [welcome] = send_campaigns(settings, activation_settings(tmp_path, frequency_cap=2), ["welcome"],
                               log=lambda m: None)
    assert welcome.handed_over == 3


def test_messages_past_their_expiry_are_suppressed_not_sent(settings, warehouse, tmp_path):
    customers = customer_ids(4)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "cart", customers, send_at=AS_OF - timedelta(hours=49))
    [report] = send_campaigns(settings, activation_settings(tmp_path), log=lambda m: None)
    assert report.suppressed == {"expired": 4} and report.handed_over == 0


def test_quiet_hours_move_the_delivery_time_into_the_morning(settings, warehouse, tmp_path):
    """At 00:00 UTC it is 01:00 in Berlin and 09:00 in Tokyo: Berlin waits for 08:00 local."""
    customers = customer_ids(4)  # timezones New York, Berlin, Los Angeles, Tokyo
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "weekly", customers, send_at=AS_OF)
    activation = activation_settings(tmp_path, quiet_hours=(21, 8))

    [report] = send_campaigns(settings, activation, log=lambda m: None)

    assert report.handed_over == 4  # the outbox holds messages up to 72 hours ahead
    with warehouse.connect() as conn:
        deliver_at = dict(conn.fetchall("SELECT customer_id, deliver_at FROM ops.send_ledger"))
    assert deliver_at[customers[1]] == datetime(2026, 11, 1, 7)  # 08:00 CET
    assert deliver_at[customers[3]] == AS_OF  # 09:00 in Tokyo: no wait
    assert deliver_at[customers[0]] == AS_OF  # 20:00 the evening before in New York: not quiet yet


def test_a_dry_run_reports_the_plan_and_changes_nothing(settings, warehouse, tmp_path):
    customers = customer_ids(12)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "weekly", customers)
    with warehouse.connect() as conn:
        _consent(conn, "c0", "opt_out", AS_OF - timedelta(hours=1), address=email_of(customers[0]))

    [plan] = send_campaigns(settings, activation_settings(tmp_path), dry_run=True, log=lambda m: None)

    assert plan.dry_run and plan.accepted == {"outbox": 11} and plan.suppressed == {"opted_out": 1}
    assert _outbox_files(tmp_path) == []
    assert ledger_states(warehouse) == {}
    [real] = send_campaigns(settings, activation_settings(tmp_path), log=lambda m: None)
    assert real.accepted == plan.accepted and real.suppressed == plan.suppressed


def test_an_interrupted_outbox_run_is_settled_from_the_files(settings, warehouse, tmp_path):
    """Rows left in 'sending' by a crash: a file means accepted, no file means send again."""
    customers = customer_ids(6)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "weekly", customers)
    activation = activation_settings(tmp_path)
    send_campaigns(settings, activation, log=lambda m: None)
    files = _outbox_files(tmp_path)
    files[0].unlink()  # as if the crash came before this file was written
    with warehouse.connect() as conn:
        conn.execute("UPDATE ops.send_ledger SET state = 'sending', destination = 'outbox', finished_at = NULL")

    [report] = send_campaigns(settings, activation, log=lambda m: None)

    assert report.reconciled == {"accepted": 5, "resend": 1}
    assert report.handed_over == 1 and len(_outbox_files(tmp_path)) == 6
    assert ledger_states(warehouse) == {"accepted": 6}
