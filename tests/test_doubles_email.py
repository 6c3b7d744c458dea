"""The email doubles speak the real protocols: the real `sendgrid` client and `smtplib` see what they
would see from SendGrid and from an SMTP relay, errors included."""

from __future__ import annotations

import json
import smtplib
import time
from email.message import EmailMessage

import pytest
from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient

from doubles.sendgrid_double import SendGridDouble
from doubles.smtp_server import LocalSmtpServer


def mail(*addresses: str, **extra) -> dict:
    return {
        "personalizations": [{"to": [{"email": a}]} for a in addresses],
        "from": {"email": "news@shop.example"},
        "subject": "Hello",
        "content": [{"type": "text/plain", "value": "hi"}, {"type": "text/html", "value": "<p>hi</p>"}],
        **extra,
    }


def send(sg: SendGridDouble, body: dict, api_key: str | None = None):
    client = SendGridAPIClient(api_key or sg.api_key, host=sg.url)
    return client.client.mail.send.post(request_body=body, timeout=5)


def errors_of(error: http_errors.HTTPError) -> list[dict]:
    return json.loads(error.body)["errors"]


def test_accepts_personalizations_with_their_substitutions_and_writes_processed_events(tmp_path):
    body = mail(subject="Hi -name-", custom_args={"campaign": "c1"}, categories=["weekly"],
                content=[{"type": "text/plain", "value": "Hello -name-"},
                         {"type": "text/html", "value": "<p>Hello -name-</p>"}])
    body["personalizations"] = [
        {"to": [{"email": "ann@example.com"}], "substitutions": {"-name-": "Ann"},
         "custom_args": {"send_id": "s1"}, "headers": {"Message-ID": "<s1@mailroom>"}},
        {"to": [{"email": "bob@example.com"}], "substitutions": {"-name-": "Bob"},
         "custom_args": {"send_id": "s2"}},
    ]
    with SendGridDouble(events_dir=tmp_path) as sg:
        response = send(sg, body)
        deliveries = sg.deliveries

    assert response.status_code == 202 and response.body == b""
    message_id = response.headers["X-Message-Id"]
    assert len(message_id) == 22
    assert [(d.to, d.subject, d.text, d.html) for d in deliveries] == [
        ("ann@example.com", "Hi Ann", "Hello Ann", "<p>Hello Ann</p>"),
        ("bob@example.com", "Hi Bob", "Hello Bob", "<p>Hello Bob</p>"),
    ]
    assert deliveries[0].custom_args == {"campaign": "c1", "send_id": "s1"}
    assert {d.x_message_id for d in deliveries} == {message_id}
    assert len({d.sg_message_id for d in deliveries}) == 2
    assert sg.requests == [(202, 2)]

    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [f"sendgrid-{message_id}.jsonl"]
    events = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert [(e["email"], e["event"], e["send_id"], e["campaign"], e["category"]) for e in events] == [
        ("ann@example.com", "processed", "s1", "c1", ["weekly"]),
        ("bob@example.com", "processed", "s2", "c1", ["weekly"]),
    ]
    assert events[0]["smtp-id"] == "<s1@mailroom>"
    assert [e["sg_message_id"] for e in events] == [d.sg_message_id for d in deliveries]
    assert len({e["sg_event_id"] for e in events}) == 2 and isinstance(events[0]["timestamp"], int)


def test_a_wrong_key_is_unauthorized():
    with SendGridDouble() as sg:
        with pytest.raises(http_errors.UnauthorizedError) as raised:
            send(sg, mail("ann@example.com"), api_key="SG.wrong")
    assert errors_of(raised.value)[0]["message"].startswith("The provided authorization grant is invalid")
    assert sg.deliveries == []


def test_more_than_1000_personalizations_are_refused():
    with SendGridDouble() as sg:
        with pytest.raises(http_errors.BadRequestsError) as raised:
            send(sg, mail(*(f"c{n}@example.com" for n in range(1001))))
    [error] = errors_of(raised.value)
    assert error["field"] == "personalizations" and "limited to 1000 personalizations" in error["message"]
    assert "You have provided 1001 personalizations" in error["message"]
    assert sg.requests == [(400, 1001)]


def test_every_validation_error_names_its_field():
    body = mail("ann@example.com", "not-an-address", "ANN@example.com",
                content=[{"type": "text/html", "value": ""}])
    del body["subject"]
    body["personalizations"][0]["send_at"] = int(time.time()) + 73 * 3600
    body["personalizations"][1]["headers"] = {"Reply-To": "x@example.com"}
    with SendGridDouble() as sg:
        with pytest.raises(http_errors.BadRequestsError) as raised:
            send(sg, body)
    fields = {e["field"]: e["message"] for e in errors_of(raised.value)}
    assert fields["personalizations.1.to.0.email"] == "Does not contain a valid address."
    assert "You have included ANN@example.com more than once" in fields["personalizations.2.to.0.email"]
    assert set(fields) == {"personalizations.0.send_at", "personalizations.1.to.0.email",
                           "personalizations.1.headers", "personalizations.2.to.0.email", "subject", "content"}
    assert sg.deliveries == []


def test_rate_limited_requests_carry_the_reset_time():
    with SendGridDouble() as sg:
        sg.script(["429"])
        with pytest.raises(http_errors.TooManyRequestsError) as raised:
            send(sg, mail("ann@example.com"))
        assert send(sg, mail("ann@example.com")).status_code == 202
    assert raised.value.headers["X-RateLimit-Remaining"] == "0"
    assert int(raised.value.headers["X-RateLimit-Reset"]) >= int(time.time())
    assert [status for status, _ in sg.requests] == [429, 202]


def test_a_body_over_the_size_limit_is_too_large():
    with SendGridDouble(max_body_bytes=2_000) as sg:
        with pytest.raises(http_errors.PayloadTooLargeError):
            send(sg, mail("ann@example.com", content=[{"type": "text/plain", "value": "x" * 5_000}]))
    assert sg.deliveries == []


def test_transient_failures_are_reproducible_from_the_seed():
    def statuses(seed: int) -> list[int]:
        with SendGridDouble() as sg:
            sg.transient_failure_rate(0.5, seed)
            for n in range(12):
                try:
                    send(sg, mail(f"c{n}@example.com"))
                except http_errors.HTTPError:
                    pass
            return [status for status, _ in sg.requests]

    first = statuses(7)
    assert first == statuses(7) and {202} < set(first) <= {202, 429, 500, 503}


def test_a_connection_dropped_before_acceptance_records_nothing():
    with SendGridDouble() as sg:
        sg.script(["drop_before"])
        with pytest.raises(OSError):  # URLError or a reset: never an HTTP status
            send(sg, mail("ann@example.com"))
    assert sg.deliveries == []


def test_a_connection_dropped_after_acceptance_still_delivers(tmp_path):
    with SendGridDouble(events_dir=tmp_path) as sg:
        sg.script(["drop_after"])
        with pytest.raises(OSError):
            send(sg, mail("ann@example.com"))
    assert [d.to for d in sg.deliveries] == ["ann@example.com"]
    assert len(list(tmp_path.glob("sendgrid-*.jsonl"))) == 1


def message(n: int) -> EmailMessage:
    built = EmailMessage()
    built["From"], built["To"], built["Subject"] = "news@shop.example", f"c{n}@example.com", f"Note {n}"
    built["Message-ID"] = f"<m{n}@mailroom>"
    built.set_content("hello")
    return built


def test_smtp_messages_share_one_connection():
    with LocalSmtpServer() as server, smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.send_message(message(1))
        client.send_message(message(2))
    assert [(m.message_id, m.subject, m.rcpt_tos) for m in server.messages] == [
        ("<m1@mailroom>", "Note 1", ["c1@example.com"]), ("<m2@mailroom>", "Note 2", ["c2@example.com"])]
    assert server.connections == 1


def test_smtp_transient_failure_then_success():
    with LocalSmtpServer() as server, smtplib.SMTP(server.host, server.port, timeout=5) as client:
        server.fail_next(1)
        with pytest.raises(smtplib.SMTPDataError) as raised:
            client.send_message(message(1))
        client.send_message(message(1))
    assert raised.value.smtp_code == 451
    assert [m.message_id for m in server.messages] == ["<m1@mailroom>"]


def test_smtp_rejected_recipient_and_auth():
    with LocalSmtpServer(username="mailroom", password="secret") as server:
        server.reject_recipient("c1@example.com")
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("mailroom", "wrong")
            client.login("mailroom", "secret")
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.send_message(message(1))
            client.send_message(message(2))
    assert [m.rcpt_tos for m in server.messages] == [["c2@example.com"]]


def test_a_stopped_smtp_server_refuses_connections():
    with LocalSmtpServer() as server:
        server.stop()
        with pytest.raises(ConnectionRefusedError):
            smtplib.SMTP(server.host, server.port, timeout=2)
        server.start()
        with smtplib.SMTP(server.host, server.port, timeout=2) as client:
            client.send_message(message(1))
    assert len(server.messages) == 1
