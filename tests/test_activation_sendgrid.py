"""SendGrid through the official client against the local double, on both warehouses: batching,
tracking fields without PII, every failure SendGrid answers with, unknown outcomes reconciled from
the provider's events, and failover to SMTP."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from activation_helpers import activation_settings, customer_ids, email_of, ledger_states, seed_customers, seed_messages
from doubles.sendgrid_double import SendGridDouble
from doubles.smtp_server import LocalSmtpServer

from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.sources import SOURCES
from dagster_project.settings import SmtpTarget
from reverse_etl.chain import build_finders, build_routes, send_policy
from reverse_etl.run import send_campaigns
from reverse_etl.sender import Sender
from reverse_etl.throttle import Backoff


@pytest.fixture
def sendgrid(settings, monkeypatch):
    # Accepted requests come back as Event Webhook files in the landing directory, as the receiver writes them.
    with SendGridDouble(events_dir=settings.landing_dir / "esp") as double:
        monkeypatch.setenv("MAILROOM_SENDGRID_API_KEY", double.api_key)
        yield double


def _sendgrid_settings(tmp_path, sendgrid, **overrides):
    return activation_settings(tmp_path, **{"destinations": ("sendgrid",), "sendgrid_host": sendgrid.url, **overrides})


def _send(settings, activation, sleeps=None):
    return send_campaigns(settings, activation, log=lambda m: None) if sleeps is None else [
        Sender(_warehouse(settings), build_routes(activation), send_policy(activation), now=settings.reference_time(),
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
    if mode == "429":  # X-RateLimit-Reset (epoch seconds) says when to come back
        assert all(0 < seconds <= sendgrid.rate_limit_reset_seconds + 1 for seconds in sleeps)


def test_a_bad_address_fails_alone_with_sendgrids_reason(settings, warehouse, tmp_path, sendgrid):
    customers = customer_ids(20)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "weekly", customers)
    with warehouse.connect() as conn:
        conn.execute("UPDATE ops.campaign_messages SET to_email = 'not-an-address' WHERE customer_id = ?", [customers[5]])

    [report] = _send(settings, _sendgrid_settings(tmp_path, sendgrid))

    assert report.accepted == {"sendgrid": 19} and report.failed == {"rejected_by_provider": 1}
    with warehouse.connect() as conn:
        state, reason, error = conn.fetchall("SELECT state, reason, last_error FROM ops.send_ledger WHERE customer_id = ?",
                                             [customers[5]])[0]
    assert (state, reason) == ("failed", "rejected_by_provider") and "to.0.email" in error


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


@pytest.mark.parametrize("mode, accepted_first_time", [("drop_after", True), ("slow", True), ("drop_before", False)])
def test_an_unknown_outcome_is_reconciled_before_any_resend(settings, warehouse, tmp_path, sendgrid, mode,
                                                            accepted_first_time):
    customers = customer_ids(40)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers)
    sendgrid.script([mode])
    sendgrid.slow_seconds = 1.5
    activation = _sendgrid_settings(tmp_path, sendgrid, timeout_seconds=0.5)

    [first] = _send(settings, activation)
    assert first.unknown == 40 and ledger_states(warehouse) == {"sending": 40}

    if mode == "slow":  # SendGrid finishes the request the client gave up on, and its events follow
        deadline = time.monotonic() + 10
        while len(sendgrid.deliveries) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
    _ingest_provider_events(settings)  # what the Event Webhook delivered meanwhile
    [second] = _send(settings, activation)

    assert second.reconciled == ({"accepted": 40} if accepted_first_time else {"resend": 40})
    assert _deliveries_per_message(sendgrid) == Counter({message_id: 1 for message_id in ids})
    assert ledger_states(warehouse) == {"accepted": 40}


def test_without_provider_events_a_resend_waits_for_the_reconcile_window(settings, warehouse, tmp_path, sendgrid):
    customers = customer_ids(10)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "weekly", customers)
    sendgrid.script(["drop_before"])
    activation = _sendgrid_settings(tmp_path, sendgrid, reconcile_after_minutes=30)

    _send(settings, activation)
    [second] = _send(settings, activation)

    assert second.reconciled == {"waiting": 10} and second.handed_over == 0
    assert sendgrid.deliveries == [] and ledger_states(warehouse) == {"sending": 10}


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
