"""SendGrid through the official client against the local double, on both warehouses: batching,
tracking fields without PII, every failure SendGrid answers with, unknown outcomes reconciled from
the provider's events - or, without events, settled by MAILROOM_UNKNOWN_OUTCOME (hold for an
operator, cancel the scheduled batch and resend, or resend) - and failover to SMTP."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest

from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.sources import SOURCES
from dagster_project.settings import SmtpTarget
from reverse_etl.chain import build_finders, build_routes, send_policy
from reverse_etl.destinations.sendgrid import SUBSTITUTIONS_LIMIT_BYTES
from reverse_etl.run import resolve_unknown, send_campaigns
from reverse_etl.sender import Sender
from reverse_etl.throttle import Backoff

from activation_helpers import (
    activation_settings,
    customer_ids,
    email_of,
    ledger_states,
    seed_customers,
    seed_messages,
    wall_clock,
)
from doubles.sendgrid_double import SendGridDouble
from doubles.smtp_server import LocalSmtpServer


@pytest.fixture
def sendgrid(settings, monkeypatch):
    # Accepted requests come back as Event Webhook files in the landing directory, as the receiver writes them.
    with SendGridDouble(events_dir=settings.landing_dir / "esp") as double:
        monkeypatch.setenv("MAILROOM_SENDGRID_API_KEY", double.api_key)
        yield double


def _sendgrid_settings(tmp_path, sendgrid, **overrides):
    return activation_settings(tmp_path, **{"destinations": ("sendgrid",), "sendgrid_host": sendgrid.url, **overrides})


def _send(settings, activation, sleeps=None, clock=wall_clock):
    return send_campaigns(settings, activation, log=lambda m: None, clock=clock) if sleeps is None else [
        Sender(_warehouse(settings), build_routes(activation), send_policy(activation), clock=clock,
               finders=build_finders(activation), backoff=Backoff(base_seconds=0), sleep=sleeps.append)
        .send_campaign("weekly")]


def _warehouse(settings):
    from dagster_project.warehouse import Warehouse

    return Warehouse(settings)


def _ingest_provider_events(settings) -> None:
    ingest_source(_warehouse(settings), SOURCES["esp"], settings.landing_dir, workers=1)


def _deliveries_per_message(sendgrid) -> Counter:
    return Counter(d.custom_args["mailroom_message_id"] for d in sendgrid.deliveries)


def test_batches_carry_each_rendered_message_and_ids_only_in_tracking_fields(settings, warehouse, tmp_path, sendgrid):
    customers = customer_ids(2300)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers)

    [report] = _send(settings, _sendgrid_settings(tmp_path, sendgrid, sendgrid_unsubscribe_group_id=42))

    assert report.accepted == {"sendgrid": 2300} and sendgrid.requests == [(202, 1000), (202, 1000), (202, 300)]
    assert _deliveries_per_message(sendgrid) == Counter({message_id: 1 for message_id in ids})
    with warehouse.connect() as conn:
        rendered = dict(conn.fetchall("SELECT message_id, html_body FROM ops.campaign_messages"))
        provider_ids = {row[0] for row in conn.fetchall("SELECT DISTINCT provider_message_id FROM ops.send_ledger")}
    for delivery in sendgrid.deliveries:
        assert delivery.html == rendered[delivery.custom_args["mailroom_message_id"]]
        assert set(delivery.custom_args) == {"mailroom_message_id", "campaign_id", "variant_id"}
        assert delivery.to not in repr(delivery.custom_args) + repr(delivery.categories)
        assert delivery.asm_group_id == 42 and delivery.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert provider_ids == {d.x_message_id for d in sendgrid.deliveries}


@pytest.mark.parametrize("mode", ["429", "500", "503"])
def test_transient_answers_are_retried_until_delivered(settings, warehouse, tmp_path, sendgrid, mode):
    customers = customer_ids(50)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "weekly", customers)
    sendgrid.script([mode, mode])
    sleeps = []

    [report] = _send(settings, _sendgrid_settings(tmp_path, sendgrid), sleeps)

    assert report.retries == 2 and report.accepted == {"sendgrid": 50}
    assert set(_deliveries_per_message(sendgrid).values()) == {1} and len(sendgrid.deliveries) == 50
    with warehouse.connect() as conn:  # accepted: the retried attempts' errors no longer describe them
        assert conn.fetchall("SELECT state, count(*), count(last_error), count(reason) FROM ops.send_ledger "
                             "GROUP BY state") == [("accepted", 50, 0, 0)]
    if mode == "429":  # X-RateLimit-Reset (epoch seconds) says when to come back
        assert all(0 < seconds <= sendgrid.rate_limit_reset_seconds + 1 for seconds in sleeps)


def test_an_address_that_cannot_go_fails_alone_with_its_reason(settings, warehouse, tmp_path, sendgrid):
    """Not an address at all: failed before any request. One SendGrid's validator refuses: failed with
    SendGrid's reason. Internationalized: SendGrid would take it and drop it, so it fails here."""
    customers = customer_ids(20)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers, addresses={customers[5]: "not-an-address",
                                                                   customers[6]: "josé@example.org"})
    sendgrid.invalid_addresses.add(email_of(customers[7]))

    [report] = _send(settings, _sendgrid_settings(tmp_path, sendgrid))

    assert report.accepted == {"sendgrid": 17}
    assert report.failed == {"invalid_address": 1, "smtputf8_unsupported": 1, "rejected_by_provider": 1}
    assert set(_deliveries_per_message(sendgrid)) == set(ids) - set(ids[5:8])
    with warehouse.connect() as conn:
        rows = {r[0]: r[1:] for r in conn.fetchall(
            "SELECT customer_id, state, reason, last_error FROM ops.send_ledger")}
    assert rows[customers[5]][:2] == ("failed", "invalid_address")
    assert rows[customers[6]][:2] == ("failed", "smtputf8_unsupported") and "drops" in rows[customers[6]][2]
    assert rows[customers[7]][:2] == ("failed", "rejected_by_provider") and "to.0.email" in rows[customers[7]][2]


def test_a_wrong_api_key_sends_nothing_and_the_next_run_sends_everything(settings, warehouse, tmp_path, sendgrid,
                                                                           monkeypatch):
    customers = customer_ids(30)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "weekly", customers)
    monkeypatch.setenv("MAILROOM_SENDGRID_API_KEY", "SG.revoked")

    [refused] = _send(settings, _sendgrid_settings(tmp_path, sendgrid))
    assert refused.failed == {"destinations_unavailable": 30} and sendgrid.deliveries == []
    with warehouse.connect() as conn:
        assert "MAILROOM_SENDGRID_API_KEY" in conn.scalar("SELECT max(last_error) FROM ops.send_ledger")

    monkeypatch.setenv("MAILROOM_SENDGRID_API_KEY", sendgrid.api_key)
    [fixed] = _send(settings, _sendgrid_settings(tmp_path, sendgrid))
    assert fixed.requeued == 30 and fixed.accepted == {"sendgrid": 30}
    assert set(_deliveries_per_message(sendgrid).values()) == {1}


def test_a_request_too_large_is_split(settings, warehouse, tmp_path, sendgrid):
    customers = customer_ids(200)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "weekly", customers)
    sendgrid.max_body_bytes = 150_000  # about 50 of these messages

    [report] = _send(settings, _sendgrid_settings(tmp_path, sendgrid))

    statuses = Counter(status for status, _ in sendgrid.requests)
    assert statuses[413] >= 1 and report.accepted == {"sendgrid": 200}
    assert set(_deliveries_per_message(sendgrid).values()) == {1} and len(sendgrid.deliveries) == 200


@pytest.mark.parametrize("mode", ["drop_after", "slow"])
def test_an_unknown_outcome_is_reconciled_from_events_before_any_resend(settings, warehouse, tmp_path, sendgrid, mode):
    customers = customer_ids(40)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers)
    sendgrid.script([mode])
    sendgrid.slow_seconds = 1.5
    activation = _sendgrid_settings(tmp_path, sendgrid, timeout_seconds=0.5)

    [first] = _send(settings, activation)
    assert first.unknown == first.awaiting == 40 and ledger_states(warehouse) == {"sending": 40}

    if mode == "slow":  # SendGrid finishes the request the client gave up on, and its events follow
        deadline = time.monotonic() + 10
        while len(sendgrid.deliveries) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
    _ingest_provider_events(settings)  # what the Event Webhook delivered meanwhile
    [second] = _send(settings, activation)

    assert second.reconciled == {"accepted": 40} and second.awaiting == 0
    assert _deliveries_per_message(sendgrid) == Counter({message_id: 1 for message_id in ids})
    assert ledger_states(warehouse) == {"accepted": 40}


def test_a_lost_answer_leaves_only_its_own_request_unknown(settings, warehouse, tmp_path, sendgrid):
    """A hand-over of several requests (a message too big to share one goes alone): when the answer to
    one is lost, only its message has an unknown outcome. The later request was never posted: it
    goes, instead of being held for an operator as if SendGrid might have taken it."""
    customers = customer_ids(6)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers)
    with warehouse.connect() as conn:
        conn.execute("UPDATE ops.campaign_messages SET html_body = ? WHERE message_id = ANY(?)",
                     ["<p>" + "x" * SUBSTITUTIONS_LIMIT_BYTES + "</p>", ids[4:]])
    sendgrid.script(["202", "drop_after"])  # the shared request goes through; the first big one's answer is lost
    activation = _sendgrid_settings(tmp_path, sendgrid)

    [first] = _send(settings, activation)
    assert sendgrid.requests == [(202, 4), (None, 1), (202, 1)]
    assert first.unknown == 1 and first.accepted == {"sendgrid": 5}
    assert ledger_states(warehouse) == {"accepted": 5, "sending": 1}

    [second] = _send(settings, activation)  # no events ingested: the lost answer stays unknown, and is held
    assert second.reconciled == {"held": 1} and ledger_states(warehouse) == {"accepted": 5, "failed": 1}
    assert _deliveries_per_message(sendgrid) == Counter(ids)


@pytest.mark.parametrize("mode, policy, settled", [
    ("drop_after", "hold", {"held": 40}),  # SendGrid took them: never resent blind
    ("drop_after", "cancel_and_resend", {"cancelled_resend": 40}),  # the first batch is cancelled, then resent
    ("drop_before", "cancel_and_resend", {"cancelled_resend": 40}),  # the batch never got its request
    ("drop_before", "resend", {"resend": 40}),  # the opt-in that trusts the missing events
])
def test_without_events_the_unknown_outcome_policy_decides(settings, warehouse, tmp_path, sendgrid, mode, policy,
                                                          settled):
    """SendGrid's answer is lost (after accepting, or before the request arrived) and no Event Webhook
    event ever comes: whatever the policy, every recipient gets the message at most once."""
    customers = customer_ids(40)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers)
    sendgrid.script([mode] if policy != "cancel_and_resend" else ["202", mode])  # the batch id comes first
    activation = _sendgrid_settings(tmp_path, sendgrid, unknown_outcome=policy)

    [first] = _send(settings, activation)
    [second] = _send(settings, activation)  # no events ingested: none arrived

    assert first.unknown == 40 and second.reconciled == settled
    delivered = Counter(d.custom_args["mailroom_message_id"] for d in sendgrid.delivered)
    if policy == "hold":
        assert ledger_states(warehouse) == {"failed": 40} and second.handed_over == 0
        assert delivered == Counter(ids)  # the first copies, which SendGrid took
        [settled_by_operator] = resolve_unknown(settings, activation, ["weekly"], "accepted").values()
        assert settled_by_operator == 40
        with warehouse.connect() as conn:
            assert conn.fetchall("SELECT state, count(*), count(reason), count(last_error) FROM ops.send_ledger "
                                 "GROUP BY state") == [("accepted", 40, 0, 0)]
    else:
        assert ledger_states(warehouse) == {"accepted": 40} and second.handed_over == 40
        assert delivered == Counter(ids)
    if policy == "cancel_and_resend":
        first_batches = {d.batch_id for d in sendgrid.deliveries if d.cancelled}
        assert len(first_batches) == (1 if mode == "drop_after" else 0)
        assert "cancel" in sendgrid.batch_statuses.values()
        assert all(d.send_at and d.batch_id for d in sendgrid.deliveries)  # scheduled ahead, in a batch


def test_a_scheduled_message_is_not_resent_before_its_delivery_time_plus_the_window(settings, warehouse, tmp_path,
                                                                                   sendgrid):
    """Handed to SendGrid for delivery 3 hours ahead, no answer, no events (none come before a scheduled
    message goes out): not resent 2 hours later, only after its delivery time plus the window."""
    now = wall_clock().replace(microsecond=0)
    customers = customer_ids(10)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers, send_at=now + timedelta(hours=3))
    sendgrid.script(["drop_before"])
    activation = _sendgrid_settings(tmp_path, sendgrid, unknown_outcome="resend", reconcile_after_minutes=30)

    [first] = _send(settings, activation, clock=lambda: now)
    [early] = _send(settings, activation, clock=lambda: now + timedelta(hours=2))
    [due] = _send(settings, activation, clock=lambda: now + timedelta(hours=3, minutes=31))

    assert first.unknown == 10 and early.reconciled == {"waiting": 10} and early.awaiting == 10
    assert due.reconciled == {"resend": 10} and due.handed_over == 10
    assert _deliveries_per_message(sendgrid) == Counter({message_id: 1 for message_id in ids})


def test_with_30_percent_of_requests_failing_everything_is_delivered_once(settings, warehouse, tmp_path, sendgrid):
    customers = customer_ids(3000)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers)
    sendgrid.transient_failure_rate(0.3, seed=6)

    [report] = _send(settings, _sendgrid_settings(tmp_path, sendgrid, sendgrid_batch_size=50, max_attempts=8))

    failures = sum(1 for status, _ in sendgrid.requests if status != 202)
    assert failures >= 0.2 * len(sendgrid.requests) and report.retries == failures
    assert _deliveries_per_message(sendgrid) == Counter({message_id: 1 for message_id in ids})
    assert ledger_states(warehouse) == {"accepted": 3000}


def test_with_sendgrid_down_everything_fails_over_to_smtp(settings, warehouse, tmp_path, sendgrid):
    customers = customer_ids(60)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers)
    sendgrid.down = True
    with LocalSmtpServer() as smtp:
        activation = _sendgrid_settings(tmp_path, sendgrid, destinations=("sendgrid", "smtp"),
                                        smtp=SmtpTarget(smtp.host, smtp.port, "", "none"))
        [report] = _send(settings, activation)
        received = Counter(message.message_id for message in smtp.messages)

    assert sendgrid.deliveries == [] and report.accepted == {"smtp": 60}
    assert received == Counter({message_id: 1 for message_id in ids})
    assert report.switches and report.switches[0].startswith("sendgrid -> smtp")
    with warehouse.connect() as conn:
        assert conn.fetchall("SELECT DISTINCT destination FROM ops.send_ledger") == [("smtp",)]
    assert {email_of(c) for c in customers} == {m.rcpt_tos[0] for m in smtp.messages}
