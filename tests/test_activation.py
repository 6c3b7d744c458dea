"""Activation through the send ledger on both warehouses: exactly one handover per message, the last
look before sending (consent, suppressions, frequency cap, expiry, one message per address), quiet
hours on the wall clock whatever MAILROOM_AS_OF says, per-message failures, and the dry run."""

from __future__ import annotations

import email
import json
from dataclasses import replace
from datetime import datetime, timedelta
from email import policy

import pytest

from dagster_project.addresses import normalized_address
from reverse_etl.dry_run import private_ledger
from reverse_etl.ledger import ledger_columns
from reverse_etl.run import send_campaigns, summary_lines

from activation_helpers import (
    AS_OF,
    activation_settings,
    customer_ids,
    email_of,
    ledger_states,
    seed_customers,
    seed_messages,
    wall_clock,
)


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
    """Expiry counts from the send time, or from when the message was written if later: with
    MAILROOM_AS_OF set, send times lie on the as-of day, and a message is not stale before it exists."""
    customers = customer_ids(4)
    seed_customers(warehouse, customers)
    send_at = AS_OF - timedelta(hours=49)
    seed_messages(warehouse, "cart", customers[:2], send_at=send_at, rendered_at=send_at)
    seed_messages(warehouse, "cart", customers[2:], send_at=send_at, rendered_at=AS_OF)
    [report] = send_campaigns(settings, activation_settings(tmp_path), log=lambda m: None, clock=lambda: AS_OF)
    assert report.suppressed == {"expired": 2} and report.handed_over == 2


def _deliver_at(warehouse) -> dict:
    with warehouse.connect() as conn:
        return dict(conn.fetchall("SELECT customer_id, deliver_at FROM ops.send_ledger"))


def test_quiet_hours_follow_the_wall_clock_not_the_as_of_day(settings, warehouse, tmp_path):
    """The as-of day (Nov 1) moves data rules, never delivery: at 21:30 UTC on Nov 10 it is 22:30 in
    Berlin and 06:30 next morning in Tokyo (both quiet: 08:00 local), 16:30 in New York."""
    customers = customer_ids(4)  # timezones New York, Berlin, Los Angeles, Tokyo
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "weekly", customers, send_at=AS_OF)
    wall = datetime(2026, 11, 10, 21, 30)
    assert settings.as_of == "2026-11-01"

    [report] = send_campaigns(settings, activation_settings(tmp_path, quiet_hours=(21, 8)), log=lambda m: None,
                              clock=lambda: wall)

    assert report.handed_over == 4  # the outbox holds messages up to 72 hours ahead
    deliver_at = _deliver_at(warehouse)
    assert deliver_at[customers[1]] == datetime(2026, 11, 11, 7)  # 08:00 CET
    assert deliver_at[customers[3]] == datetime(2026, 11, 10, 23)  # 08:00 JST on the 11th
    assert deliver_at[customers[0]] == deliver_at[customers[2]] == wall  # afternoon in the Americas: now


def test_without_a_clock_given_the_sender_delivers_by_the_wall_clock(settings, warehouse, tmp_path):
    """No message is scheduled into the past of the as-of day, and none lands in local quiet hours."""
    from zoneinfo import ZoneInfo

    customers = customer_ids(8)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "weekly", customers, send_at=AS_OF)
    started = wall_clock()

    send_campaigns(settings, activation_settings(tmp_path, quiet_hours=(21, 8)), log=lambda m: None)

    with warehouse.connect() as conn:
        rows = conn.fetchall("SELECT deliver_at, timezone FROM ops.send_ledger")
    assert len(rows) == 8
    for deliver_at, tz_name in rows:
        assert deliver_at >= started.replace(microsecond=0)
        local_hour = deliver_at.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(tz_name)).hour
        assert 8 <= local_hour < 21, (deliver_at, tz_name)


def test_one_message_per_address_per_campaign_run(settings, warehouse, tmp_path):
    """Two customers sharing an address in different letter case (and padding) get one message."""
    customers = customer_ids(3)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers, addresses={customers[0]: "A@x.com", customers[1]: "a@x.com "})

    [report] = send_campaigns(settings, activation_settings(tmp_path), log=lambda m: None)
    [again] = send_campaigns(settings, activation_settings(tmp_path), log=lambda m: None)

    assert report.handed_over == 2 and report.suppressed == {"duplicate_address": 1}
    assert again.handed_over == 0 and again.suppressed == {}
    with warehouse.connect() as conn:
        states = dict(conn.fetchall("SELECT message_id, coalesce(reason, state) FROM ops.send_ledger"))
    assert sorted(states[i] for i in ids[:2]) == ["accepted", "duplicate_address"]
    assert states[ids[2]] == "accepted"


def test_matching_uses_one_address_normalization(settings, warehouse, tmp_path):
    """Events that arrived after the marts were built, padded or in upper case, match the address;
    non-ASCII letters are not folded (their case depends on the database's locale) - exactly when
    dagster_project.addresses.normalized_address says two spellings are one address."""
    customers = customer_ids(5)
    seed_customers(warehouse, customers)
    addresses = {customers[3]: "zoë@example.org", customers[4]: "ZOË@example.org"}
    seed_messages(warehouse, "weekly", customers, addresses=addresses)
    spelled = {customers[0]: "  " + email_of(customers[0]).upper() + " ", customers[1]: email_of(customers[1]).title(),
               customers[2]: " " + email_of(customers[2]), customers[3]: "  ZOË@EXAMPLE.ORG",
               customers[4]: "ZOË@example.org "}
    with warehouse.connect() as conn:
        _consent(conn, "late", "opt_out", AS_OF, address=spelled[customers[0]])
        for n, (event, customer) in enumerate([("bounce", customers[1]), ("spamreport", customers[2]),
                                               ("unsubscribe", customers[3]), ("unsubscribe", customers[4])]):
            conn.execute("INSERT INTO raw.esp_events (sg_event_id, event, email, event_at, bounce_type) "
                         "VALUES (?, ?, ?, ?, 'bounce')", [f"late{n}", event, spelled[customer], AS_OF])

    [report] = send_campaigns(settings, activation_settings(tmp_path), log=lambda m: None)

    with warehouse.connect() as conn:
        reasons = dict(conn.fetchall("SELECT customer_id, coalesce(reason, state) FROM ops.send_ledger"))
    expected = {customer: normalized_address(spelled[customer]) == normalized_address(
        addresses.get(customer, email_of(customer))) for customer in customers}
    assert expected == {customers[0]: True, customers[1]: True, customers[2]: True, customers[3]: False,
                        customers[4]: True}
    assert {c: reasons[c] != "accepted" for c in customers} == expected
    assert report.suppressed == {"opted_out": 1, "hard_bounced": 1, "spam_complaint": 1, "unsubscribed": 1}


def test_a_message_that_cannot_go_fails_alone_with_its_reason(settings, warehouse, tmp_path):
    """An invalid address, unreadable headers and a header no folding can carry each fail that one
    message; the rest of the batch is delivered."""
    customers = customer_ids(6)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers, addresses={customers[0]: "not-an-address"})
    with warehouse.connect() as conn:
        conn.execute("UPDATE ops.campaign_messages SET headers_json = '[not json' WHERE customer_id = ?",
                     [customers[1]])
        headers = json.loads(conn.scalar("SELECT headers_json FROM ops.campaign_messages WHERE customer_id = ?",
                                         [customers[2]]))
        headers["List-Unsubscribe"] = "<http://127.0.0.1:8025/unsubscribe?t=" + "x" * 1000 + ">"
        conn.execute("UPDATE ops.campaign_messages SET headers_json = ? WHERE customer_id = ?",
                     [json.dumps(headers), customers[2]])

    [report] = send_campaigns(settings, activation_settings(tmp_path), log=lambda m: None)

    assert report.handed_over == 3 and len(_outbox_files(tmp_path)) == 3
    assert report.failed == {"invalid_address": 1, "unreadable_message": 1, "compose_failed": 1}
    with warehouse.connect() as conn:
        rows = {r[0]: r[1:] for r in conn.fetchall(
            "SELECT message_id, state, reason, last_error, is_retryable FROM ops.send_ledger")}
    assert rows[ids[0]][:2] == ("failed", "invalid_address") and "local@domain" in rows[ids[0]][2]
    assert rows[ids[1]][:2] == ("failed", "unreadable_message") and "JSONDecodeError" in rows[ids[1]][2]
    assert rows[ids[2]][:2] == ("failed", "compose_failed") and "List-Unsubscribe" in rows[ids[2]][2]
    assert {rows[i][3] for i in ids[:3]} == {False}


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


def test_a_dry_run_reads_an_older_ledger_as_it_is_and_writes_nothing_but_its_copy(settings, warehouse, tmp_path):
    """A ledger from before leases: the dry run does not upgrade it (a real send does, under its own
    lock), plans from it, and can write nothing but its private copy."""
    from dagster_project.warehouse import columns

    customers = customer_ids(3)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers)
    old = columns("message_id:VARCHAR campaign_id:VARCHAR run_key:VARCHAR customer_id:VARCHAR state:VARCHAR "
                  "send_at:TIMESTAMP deliver_at:TIMESTAMP")
    with warehouse.connect() as conn:
        conn.create_table("ops.send_ledger", old)
        conn.execute("INSERT INTO ops.send_ledger SELECT message_id, campaign_id, run_key, customer_id, 'accepted', "
                     "send_at, send_at FROM ops.campaign_messages WHERE message_id = ?", [ids[0]])

    [plan] = send_campaigns(settings, activation_settings(tmp_path), dry_run=True, log=lambda m: None)

    assert plan.accepted == {"outbox": 2} and plan.ledger == {"accepted": 3}
    with warehouse.connect() as conn:
        assert ledger_columns(conn) == {c.name for c in old}
        private = private_ledger(conn, "weekly", wall_clock())
        assert private.execute("UPDATE ops.send_ledger SET state = 'failed'") == 1  # the copy's row
        with pytest.raises(RuntimeError, match="nothing but its private copy"):
            private.execute("DELETE FROM ops.campaign_messages")
    assert ledger_states(warehouse) == {"accepted": 1} and _outbox_files(tmp_path) == []


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
    assert report.awaiting == 0 and "0 awaiting reconciliation" in summary_lines(report)[0]


def test_the_outbox_pool_hands_every_page_over_once_and_the_ledger_matches_the_files(settings, warehouse, tmp_path):
    """Through the sender, with the outbox writing each batch in a pool of two processes: the ledger
    records exactly the files written (provider ids are the files' names), and a second run sends nothing."""
    from reverse_etl.chain import send_policy
    from reverse_etl.destinations.outbox import OutboxDestination
    from reverse_etl.sender import Route, Sender
    from reverse_etl.throttle import CircuitBreaker, TokenBucket

    customers = customer_ids(70)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers)
    activation = activation_settings(tmp_path)
    outbox = OutboxDestination(activation.outbox_dir, "news@mail.example.com", "Mailroom", workers=2, pool_min=1)
    outbox.max_batch = 20  # pages of 30, 30 and 10: hand-overs of 20, 10, 20, 10 and 10
    rules = replace(send_policy(activation), page_size=30)
    try:
        reports = [Sender(warehouse, [Route(outbox, TokenBucket(0), CircuitBreaker(5, 60))], rules,
                          finders={"outbox": outbox}).send_campaign("weekly") for _ in range(2)]
    finally:
        outbox.close()

    assert reports[0].accepted == {"outbox": 70} and reports[0].requests == {"outbox": 5}
    assert reports[1].handed_over == 0 and ledger_states(warehouse) == {"accepted": 70}
    files = {str(path.relative_to(activation.outbox_dir)): path for path in _outbox_files(tmp_path)}
    with warehouse.connect() as conn:
        recorded = dict(conn.fetchall("SELECT provider_message_id, message_id FROM ops.send_ledger"))
    assert set(recorded) == set(files) and sorted(recorded.values()) == sorted(ids)
    assert all(email.message_from_bytes(path.read_bytes(), policy=policy.default)["Message-ID"]
               == recorded[name] for name, path in files.items())
    assert not list(activation.outbox_dir.rglob("*.partial"))


def test_a_ledger_from_before_leases_is_upgraded_and_its_rows_have_no_owner(settings, warehouse, tmp_path):
    """A warehouse whose ledger predates leases: the columns are added, and a row it left in `sending`
    (no lease: its run is long gone) is settled like any row whose owner is gone."""
    from dagster_project.warehouse import columns

    customers = customer_ids(3)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers)
    old = columns("message_id:VARCHAR campaign_id:VARCHAR run_key:VARCHAR customer_id:VARCHAR variant_id:VARCHAR "
                  "timezone:VARCHAR state:VARCHAR reason:VARCHAR destination:VARCHAR attempts:INTEGER "
                  "last_error:VARCHAR is_retryable:BOOLEAN provider_message_id:VARCHAR send_at:TIMESTAMP "
                  "deliver_at:TIMESTAMP planned_at:TIMESTAMP sending_at:TIMESTAMP finished_at:TIMESTAMP")
    with warehouse.connect() as conn:
        conn.create_table("ops.send_ledger", old)
        conn.execute("CREATE UNIQUE INDEX send_ledger__message_id ON ops.send_ledger (message_id)")
        conn.execute("CREATE INDEX send_ledger__state ON ops.send_ledger (state, campaign_id)")
        conn.execute("INSERT INTO ops.send_ledger (message_id, campaign_id, run_key, customer_id, state, destination, "
                     "attempts, send_at, deliver_at, planned_at, sending_at) "
                     "SELECT message_id, campaign_id, run_key, customer_id, 'sending', 'outbox', 1, send_at, send_at, "
                     "rendered_at, rendered_at FROM ops.campaign_messages WHERE message_id = ?", [ids[0]])

    [report] = send_campaigns(settings, activation_settings(tmp_path), log=lambda m: None)

    assert report.reconciled == {"resend": 1} and report.handed_over == 3
    assert ledger_states(warehouse) == {"accepted": 3} and len(_outbox_files(tmp_path)) == 3
