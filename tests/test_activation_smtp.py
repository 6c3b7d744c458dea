"""The SMTP destination through the sender, against a real SMTP server on loopback and a real
warehouse: one connection for a whole run, retries on 4xx, refusals on 5xx, login, due times,
internationalized addresses (SMTPUTF8 or a reason), failover - and every message handed over
exactly once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from dagster_project.settings import SmtpTarget
from reverse_etl.run import send_campaigns

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
from doubles.smtp_server import LocalSmtpServer

CAMPAIGN = "smtp_test"


@pytest.fixture
def smtp_server():
    with LocalSmtpServer() as server:
        yield server


def seeded(warehouse, count: int, send_at=AS_OF) -> list[str]:
    customers = customer_ids(count)
    seed_customers(warehouse, customers)
    return seed_messages(warehouse, CAMPAIGN, customers, send_at=send_at)


def smtp_settings(tmp_path, server: LocalSmtpServer, username: str = "", chain=("smtp",)):
    return activation_settings(tmp_path, destinations=chain,
                               smtp=SmtpTarget(server.host, server.port, username, "none"))


def send(settings, activation):
    [report] = send_campaigns(settings, activation, [CAMPAIGN], log=lambda line: None)
    return report


def ledger_rows(warehouse) -> dict[str, tuple]:
    """message_id -> (state, reason, destination, provider_message_id, last_error, is_retryable)."""
    with warehouse.connect() as conn:
        return {row[0]: tuple(row[1:]) for row in conn.fetchall(
            "SELECT message_id, state, reason, destination, provider_message_id, last_error, is_retryable "
            "FROM ops.send_ledger WHERE campaign_id = ?", [CAMPAIGN])}


def received_ids(server: LocalSmtpServer) -> Counter:
    return Counter(m.message_id for m in server.messages)


def test_a_run_sends_each_message_once_over_one_connection(settings, warehouse, smtp_server, tmp_path):
    ids = seeded(warehouse, 30)
    activation = smtp_settings(tmp_path, smtp_server)

    report = send(settings, activation)

    assert smtp_server.connections == 1
    assert received_ids(smtp_server) == Counter(ids)  # the Message-ID header is the ledger's key
    rows = ledger_rows(warehouse)
    assert {state for state, *_ in rows.values()} == {"accepted"}
    # The provider id is the server's reply to DATA.
    assert {provider_id for *_, provider_id, _, _ in rows.values()} == {"Message accepted for delivery"}
    assert report.accepted == Counter({"smtp": 30})

    again = send(settings, activation)
    assert again.handed_over == 0 and len(smtp_server.messages) == 30


def test_transient_4xx_replies_are_retried_without_duplicates(settings, warehouse, smtp_server, tmp_path):
    ids = seeded(warehouse, 5)
    smtp_server.fail_next(2, 451)

    report = send(settings, smtp_settings(tmp_path, smtp_server))

    assert received_ids(smtp_server) == Counter(ids)
    assert report.retries >= 1
    assert ledger_states(warehouse, CAMPAIGN) == {"accepted": 5}


def test_a_refused_recipient_fails_alone_with_the_servers_reply(settings, warehouse, smtp_server, tmp_path):
    customers = customer_ids(4)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, CAMPAIGN, customers)
    smtp_server.reject_recipient(email_of(customers[2]), 550)

    report = send(settings, smtp_settings(tmp_path, smtp_server))

    state, reason, _, _, last_error, retryable = ledger_rows(warehouse)[ids[2]]
    assert (state, reason, retryable) == ("failed", "rejected_by_provider", False)
    assert "550" in last_error and "Mailbox unavailable" in last_error
    assert received_ids(smtp_server) == Counter(ids[:2] + ids[3:])
    assert report.failed == Counter({"rejected_by_provider": 1})


def test_login_with_username_and_password(settings, warehouse, tmp_path, monkeypatch):
    ids = seeded(warehouse, 3)
    with LocalSmtpServer(username="mailer", password="s3cret") as server:
        monkeypatch.setenv("MAILROOM_SMTP_URL", f"smtp://mailer:s3cret@{server.host}:{server.port}?tls=none")
        send(settings, smtp_settings(tmp_path, server, username="mailer"))
        assert received_ids(server) == Counter(ids)
    assert ledger_states(warehouse, CAMPAIGN) == {"accepted": 3}


def test_a_wrong_password_fails_the_run_retryably_and_the_fixed_one_delivers_once(
        settings, warehouse, tmp_path, monkeypatch):
    ids = seeded(warehouse, 3)
    with LocalSmtpServer(username="mailer", password="s3cret") as server:
        activation = smtp_settings(tmp_path, server, username="mailer")
        monkeypatch.setenv("MAILROOM_SMTP_URL", f"smtp://mailer:wrong@{server.host}:{server.port}?tls=none")

        report = send(settings, activation)

        assert server.messages == []
        assert report.failed == Counter({"destinations_unavailable": 3})
        rows = ledger_rows(warehouse)
        assert {(state, reason, retryable) for state, reason, _, _, _, retryable in rows.values()} == {
            ("failed", "destinations_unavailable", True)}
        assert all("refused the login" in last_error for *_, last_error, _ in rows.values())

        monkeypatch.setenv("MAILROOM_SMTP_URL", f"smtp://mailer:s3cret@{server.host}:{server.port}?tls=none")
        fixed = send(settings, activation)

        assert fixed.requeued == 3
        assert received_ids(server) == Counter(ids)
    assert ledger_states(warehouse, CAMPAIGN) == {"accepted": 3}


def test_a_message_not_due_yet_stays_planned(settings, warehouse, smtp_server, tmp_path):
    # SMTP cannot hold a message for later: it waits in the ledger until a run finds it due.
    due_at = wall_clock().replace(microsecond=0) + timedelta(days=1)
    seeded(warehouse, 2, send_at=due_at)

    report = send(settings, smtp_settings(tmp_path, smtp_server))

    assert smtp_server.messages == []
    assert (report.deferred, report.next_due_at) == (2, due_at)
    assert ledger_states(warehouse, CAMPAIGN) == {"planned": 2}


def test_with_the_smtp_server_down_everything_fails_over_to_the_outbox(settings, warehouse, smtp_server, tmp_path):
    ids = seeded(warehouse, 6)
    smtp_server.stop()
    activation = smtp_settings(tmp_path, smtp_server, chain=("smtp", "outbox"))

    report = send(settings, activation)

    assert any(switch.startswith("smtp -> outbox") for switch in report.switches)
    rows = ledger_rows(warehouse)
    assert {(state, destination) for state, _, destination, *_ in rows.values()} == {("accepted", "outbox")}
    files = sorted((activation.outbox_dir / CAMPAIGN).glob("*.eml"))
    assert len(files) == len(ids)
    assert report.accepted == Counter({"outbox": 6})


@pytest.mark.parametrize("offers_smtputf8", [True, False])
def test_an_internationalized_address_goes_with_smtputf8_or_fails_alone(settings, warehouse, tmp_path,
                                                                        offers_smtputf8):
    customers = customer_ids(3)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, CAMPAIGN, customers, addresses={customers[1]: "josé@exämple.org"})

    with LocalSmtpServer(smtputf8=offers_smtputf8) as server:
        report = send(settings, smtp_settings(tmp_path, server))
        received = {m.message_id: m for m in server.messages}

    state, reason, _, _, last_error, retryable = ledger_rows(warehouse)[ids[1]]
    if offers_smtputf8:
        assert report.handed_over == 3 and received[ids[1]].rcpt_tos == ["josé@exämple.org"]
        assert "To: josé@exämple.org\r\n".encode() in received[ids[1]].raw  # RFC 6532: a UTF-8 header, not encoded
        assert state == "accepted"
    else:
        assert report.handed_over == 2 and set(received) == {ids[0], ids[2]}  # the batch went on
        assert (state, reason, retryable) == ("failed", "smtputf8_unsupported", False) and "SMTPUTF8" in last_error
