"""Activation building blocks without a warehouse: pacing, backoff, circuit breaker, quiet hours,
settings from the environment, the MIME message and the SendGrid request body."""

from __future__ import annotations

import email
import email.policy
import random
from datetime import datetime, timedelta, timezone

import pytest

from dagster_project.settings import SettingsError, load_activation_settings, smtp_password
from reverse_etl.destinations.sendgrid import HTML_TAG, SUBSTITUTIONS_LIMIT_BYTES, TEXT_TAG, SendGridDestination
from reverse_etl.outgoing import OutgoingMessage
from reverse_etl.presend import delivery_time
from reverse_etl.throttle import Backoff, CircuitBreaker, TokenBucket

from doubles.sendgrid_double import SendGridDouble

NOW = datetime(2026, 11, 1, 12, 0)
BERLIN_QUIET = (21, 8)


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps (or the test says so)."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        # Fail instead of hanging when the code under test keeps asking for waits the clock cannot show.
        assert len(self.sleeps) < 10_000, f"still sleeping after {len(self.sleeps)} sleeps (last {seconds!r}s)"


def message(n: int = 0, to: str | None = None, html: str = "<p>hi</p>", text: str = "hi", campaign: str = "c1",
            deliver_at: datetime | None = None, headers: dict | None = None) -> OutgoingMessage:
    return OutgoingMessage(message_id=f"<m{n}@mail.example.com>", campaign_id=campaign, variant_id="a",
                           to_email=to or f"person{n}@example.org", subject=f"Hello {n}", html=html, text=text,
                           headers=headers or {}, deliver_at=deliver_at)


# --- TokenBucket -------------------------------------------------------------------------------------

def test_token_bucket_lets_a_burst_through_then_sleeps_for_the_next_token():
    clock = FakeClock()
    bucket = TokenBucket(10, burst=10, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        bucket.acquire()
    assert clock.sleeps == []
    bucket.acquire()
    assert sum(clock.sleeps) == pytest.approx(0.1)


def test_token_bucket_with_rate_zero_never_sleeps():
    clock = FakeClock()
    bucket = TokenBucket(0, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        bucket.acquire()
    assert clock.sleeps == []


def test_token_bucket_long_run_average_stays_under_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(10, burst=10, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(100):
        bucket.acquire()
    # 10 from the initial burst, 90 more at 10/s.
    assert clock.now - start >= 9.0 - 1e-9


# --- Backoff -----------------------------------------------------------------------------------------

def test_backoff_honours_retry_after_up_to_the_cap():
    backoff = Backoff(base_seconds=1, cap_seconds=30, rng=random.Random(1))
    assert backoff.delay(3, retry_after=7.5) == 7.5
    assert backoff.delay(1, retry_after=600) == 30


def test_backoff_delays_are_jittered_within_the_exponential_bound():
    backoff = Backoff(base_seconds=0.5, cap_seconds=10, rng=random.Random(42))
    for attempt in range(1, 8):
        bound = min(10, 0.5 * 2 ** (attempt - 1))
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= bound for d in delays), attempt
        assert len(set(delays)) > 1  # jitter: retries of many senders must not line up


# --- CircuitBreaker ----------------------------------------------------------------------------------

def test_breaker_opens_after_threshold_consecutive_failures_and_a_success_resets_the_count():
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, reset_seconds=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed" and breaker.allows()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allows()


def test_breaker_half_opens_after_the_reset_time_and_a_failed_trial_opens_it_again():
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, reset_seconds=10, clock=clock)
    breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allows()
    clock.now += 0.1
    assert breaker.state == "half_open" and breaker.allows()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allows()


def test_breaker_closes_after_a_successful_trial():
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=2, reset_seconds=5, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 5
    assert breaker.state == "half_open"
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.record_failure()  # the count starts again from zero
    assert breaker.allows()


# --- delivery_time -----------------------------------------------------------------------------------

def test_delivery_time_of_a_past_send_time_is_now():
    assert delivery_time(NOW - timedelta(hours=5), NOW, None, None) == NOW
    assert delivery_time(None, NOW, "Europe/Berlin", None) == NOW


def test_late_evening_in_berlin_moves_to_eight_next_morning():
    # 22:30 CET (UTC+1) on 2026-11-10 is 21:30 UTC; 08:00 CET on the 11th is 07:00 UTC.
    when = datetime(2026, 11, 10, 21, 30)
    assert delivery_time(when, when, "Europe/Berlin", BERLIN_QUIET) == datetime(2026, 11, 11, 7, 0)


def test_quiet_hours_across_the_end_of_daylight_saving_time():
    # 22:30 CEST (UTC+2) on 2026-10-24 is 20:30 UTC; clocks go back that night, so 08:00 on the 25th is
    # CET (UTC+1): 07:00 UTC, not 06:00.
    when = datetime(2026, 10, 24, 20, 30)
    assert delivery_time(when, when, "Europe/Berlin", BERLIN_QUIET) == datetime(2026, 10, 25, 7, 0)


def test_early_morning_moves_to_eight_the_same_day():
    when = datetime(2026, 11, 10, 5, 0)  # 06:00 CET
    assert delivery_time(when, when, "Europe/Berlin", BERLIN_QUIET) == datetime(2026, 11, 10, 7, 0)


def test_outside_quiet_hours_or_without_them_nothing_moves():
    when = datetime(2026, 11, 10, 14, 0)  # 15:00 CET
    assert delivery_time(when, NOW, "Europe/Berlin", BERLIN_QUIET) == when
    night = datetime(2026, 11, 10, 22, 0)
    assert delivery_time(night, NOW, "Europe/Berlin", None) == night


def test_unknown_timezone_falls_back_to_utc():
    when = datetime(2026, 11, 10, 22, 30)  # inside 21-8 in UTC
    assert delivery_time(when, when, "Mars/Olympus_Mons", BERLIN_QUIET) == datetime(2026, 11, 11, 8, 0)


# --- load_activation_settings ------------------------------------------------------------------------

def test_activation_defaults_send_to_the_outbox_only():
    settings = load_activation_settings({})
    assert settings.destinations == ("outbox",)
    assert settings.quiet_hours == (21, 8)


@pytest.mark.parametrize("env, variable", [
    ({"MAILROOM_SMTP_URL": "smtp://u:p@relay.example.com"}, "MAILROOM_SENDGRID_API_KEY"),
    ({"MAILROOM_SENDGRID_API_KEY": "SG.x"}, "MAILROOM_SMTP_URL"),
])
def test_a_chosen_destination_without_its_credentials_is_refused(env, variable):
    with pytest.raises(SettingsError, match=variable):
        load_activation_settings({"MAILROOM_DESTINATIONS": "sendgrid,smtp", **env})


@pytest.mark.parametrize("chain", ["outbox,mailgun", "outbox,outbox", " , "])
def test_unknown_or_repeated_destinations_are_refused(chain):
    with pytest.raises(SettingsError, match="MAILROOM_DESTINATIONS"):
        load_activation_settings({"MAILROOM_DESTINATIONS": chain})


def test_quiet_hours_can_be_turned_off_and_must_be_valid_hours():
    assert load_activation_settings({"MAILROOM_QUIET_HOURS": "off"}).quiet_hours is None
    with pytest.raises(SettingsError, match="MAILROOM_QUIET_HOURS"):
        load_activation_settings({"MAILROOM_QUIET_HOURS": "25-3"})


def test_smtps_url_means_implicit_tls_on_port_465_and_the_password_is_not_kept():
    env = {"MAILROOM_DESTINATIONS": "smtp", "MAILROOM_SMTP_URL": "smtps://mailer:s%40cret@relay.example.com"}
    target = load_activation_settings(env).smtp
    assert (target.host, target.port, target.username, target.security) == ("relay.example.com", 465, "mailer", "ssl")
    assert "s@cret" not in repr(target)
    assert smtp_password(env) == "s@cret"


def test_smtp_url_with_tls_none_connects_in_plain_text():
    env = {"MAILROOM_DESTINATIONS": "smtp", "MAILROOM_SMTP_URL": "smtp://relay.internal:2525?tls=none"}
    target = load_activation_settings(env).smtp
    assert (target.port, target.security, target.username) == (2525, "none", "")


def test_smtp_url_without_port_uses_submission_with_starttls():
    env = {"MAILROOM_DESTINATIONS": "smtp", "MAILROOM_SMTP_URL": "smtp://relay.example.com"}
    target = load_activation_settings(env).smtp
    assert (target.port, target.security) == (587, "starttls")


def test_sendgrid_batch_size_above_the_provider_limit_is_refused():
    with pytest.raises(SettingsError, match="MAILROOM_SENDGRID_BATCH_SIZE"):
        load_activation_settings({"MAILROOM_SENDGRID_BATCH_SIZE": "1001"})


# --- OutgoingMessage ---------------------------------------------------------------------------------

def test_a_long_list_unsubscribe_url_stays_one_plain_header():
    url = "http://127.0.0.1:8025/unsubscribe?token=" + "a" * 150
    outgoing = message(headers={"Message-ID": "<m0@mail.example.com>", "List-Unsubscribe": f"<{url}>"})
    raw = outgoing.to_bytes("news@mail.example.com", "Mailroom")
    assert f"List-Unsubscribe: <{url}>\r\n".encode() in raw  # not folded, not encoded words
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["List-Unsubscribe"] == f"<{url}>"
    assert parsed["Message-ID"] == "<m0@mail.example.com>"


def test_mime_message_carries_text_and_html_alternatives():
    raw = message(html="<p>Hello HTML</p>", text="Hello text").to_bytes("news@mail.example.com", "Mailroom")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.get_body(("plain",)).get_content().strip() == "Hello text"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Hello HTML</p>"
    assert parsed["Message-ID"] == "<m0@mail.example.com>"  # added when the headers lack one


def test_tracking_args_hold_ids_only():
    args = message(to="ann@example.org").tracking_args
    assert args == {"mailroom_message_id": "<m0@mail.example.com>", "campaign_id": "c1", "variant_id": "a"}
    assert not any("@example.org" in value for value in args.values())


# --- SendGrid ----------------------------------------------------------------------------------------

def sendgrid(host: str = "http://127.0.0.1:9", api_key: str = "k", group: int | None = None) -> SendGridDestination:
    return SendGridDestination(host, lambda: api_key, "news@mail.example.com", "Mailroom", unsubscribe_group_id=group)


def test_request_body_substitutes_each_message_and_tracks_ids_only():
    body = sendgrid().request_body([message(1, html="<b>one</b>", text="one", campaign="c2"),
                                    message(2, html="<b>two</b>", text="two", campaign="c1")], NOW)
    assert body["content"] == [{"type": "text/plain", "value": TEXT_TAG}, {"type": "text/html", "value": HTML_TAG}]
    first, second = body["personalizations"]
    assert first["substitutions"] == {HTML_TAG: "<b>one</b>", TEXT_TAG: "one"}
    assert second["substitutions"] == {HTML_TAG: "<b>two</b>", TEXT_TAG: "two"}
    assert first["to"] == [{"email": "person1@example.org"}]
    assert "person1@example.org" not in str(first["custom_args"])
    assert first["custom_args"]["mailroom_message_id"] == "<m1@mail.example.com>"
    assert body["categories"] == ["c1", "c2"]
    assert "asm" not in body


def test_send_at_only_for_messages_due_more_than_a_minute_from_now():
    later = NOW + timedelta(hours=2)
    body = sendgrid().request_body([message(1, deliver_at=later), message(2, deliver_at=NOW + timedelta(seconds=30)),
                                    message(3)], NOW)
    send_ats = [p.get("send_at") for p in body["personalizations"]]
    assert send_ats == [int(later.replace(tzinfo=timezone.utc).timestamp()), None, None]


def test_unsubscribe_group_goes_into_asm():
    assert sendgrid(group=42).request_body([message(1)], NOW)["asm"] == {"group_id": 42}


def test_an_oversized_message_goes_alone_with_its_content_literal():
    big = "x" * SUBSTITUTIONS_LIMIT_BYTES
    body = sendgrid().request_body([message(1, html=big, text="big")], NOW)
    assert body["content"] == [{"type": "text/plain", "value": "big"}, {"type": "text/html", "value": big}]
    assert "substitutions" not in body["personalizations"][0]


def test_deliver_splits_an_oversized_message_into_its_own_request():
    big = "<p>" + "y" * SUBSTITUTIONS_LIMIT_BYTES + "</p>"
    batch = [message(1), message(2, html=big), message(3)]
    with SendGridDouble() as double:
        result = sendgrid(double.url, double.api_key).deliver(batch, NOW)
        requests, deliveries = double.requests, double.deliveries
    assert set(result.accepted) == {m.message_id for m in batch}
    assert sorted(count for _, count in requests) == [1, 2]
    assert {d.to: d.html for d in deliveries}["person2@example.org"] == big


def test_two_messages_to_one_address_never_share_a_request():
    batch = [message(1, to="ann@example.org"), message(2, to="ANN@example.org")]
    destination = None
    with SendGridDouble() as double:
        destination = sendgrid(double.url, double.api_key)
        first = destination.deliver(batch, NOW)
        # The second one is neither accepted nor rejected: the sender hands it over again.
        assert list(first.accepted) == [batch[0].message_id] and not first.rejected
        second = destination.deliver(batch[1:], NOW)
        requests = double.requests
    assert list(second.accepted) == [batch[1].message_id]
    assert requests == [(202, 1), (202, 1)]


# --- headers: folded with CRLF, RFC 2047 only where it is allowed -------------------------------------

def _header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def test_long_headers_fold_with_crlf_and_parse_back_whole():
    subject = "Grüße aus Köln: dein persönlicher Wochenüberblick mit vielen Angeboten und noch mehr"
    unsubscribe = ("<mailto:unsubscribe@mail.example.com?subject=unsubscribe-" + "a" * 40 + ">, "
                   "<https://mail.example.com/unsubscribe?token=" + "b" * 120 + ">")
    note = " ".join(["word"] * 40)
    outgoing = message(headers={"List-Unsubscribe": unsubscribe, "X-Note": note})
    outgoing = OutgoingMessage(**{**outgoing.__dict__, "subject": subject})
    raw = outgoing.to_bytes("news@mail.example.com", "Mailroom")

    block = _header_block(raw)
    assert b"\n" not in block.replace(b"\r\n", b"")  # no bare line feeds
    assert b"\r\n " in block  # folded
    assert all(len(line) <= 998 for line in block.split(b"\r\n"))
    assert b"List-Unsubscribe: <mailto:" in block and b"=?utf-8?" not in block.split(b"List-Unsubscribe")[1]
    assert b"Subject: =?utf-8?q?" in block  # a text header: encoded words
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == subject
    assert parsed["List-Unsubscribe"] == unsubscribe
    assert parsed["X-Note"] == note


def test_a_header_that_cannot_be_written_fails_the_message_with_a_reason():
    from reverse_etl.outgoing import MessageCompositionError

    with pytest.raises(MessageCompositionError, match="List-Unsubscribe.*cannot be RFC 2047-encoded"):
        message(headers={"List-Unsubscribe": "<https://mail.example.com/désabonner>"}).to_bytes("n@example.com", "N")
    with pytest.raises(MessageCompositionError, match="longer than 998"):
        message(headers={"List-Unsubscribe": "<https://x.example/" + "u" * 1000 + ">"}).to_bytes("n@example.com", "N")
    with pytest.raises(MessageCompositionError, match="UTF-8"):
        message(text="broken \udc80 template").to_bytes("n@example.com", "N")


def test_an_internationalized_recipient_makes_a_utf8_message():
    raw = message(to="zoë@exämple.org").to_bytes("news@mail.example.com", "Mailroom")
    assert "To: zoë@exämple.org\r\n".encode() in raw
    assert message(to="zoë@exämple.org").needs_smtputf8 and not message().needs_smtputf8


# --- ownership and unknown-outcome settings ----------------------------------------------------------

def test_ownership_defaults_hold_unknown_outcomes_with_a_ten_minute_lease():
    settings = load_activation_settings({})
    assert (settings.unknown_outcome, settings.lease_seconds) == ("hold", 600.0)


@pytest.mark.parametrize("env, variable", [
    ({"MAILROOM_UNKNOWN_OUTCOME": "retry"}, "MAILROOM_UNKNOWN_OUTCOME"),
    ({"MAILROOM_SEND_LEASE_SECONDS": "0"}, "MAILROOM_SEND_LEASE_SECONDS"),
    # a recovering run needs the lease to run out, and SendGrid 10 minutes before send_at, to cancel
    ({"MAILROOM_UNKNOWN_OUTCOME": "cancel_and_resend", "MAILROOM_SENDGRID_CANCEL_MARGIN_MINUTES": "15"},
     "MAILROOM_SENDGRID_CANCEL_MARGIN_MINUTES"),
])
def test_ownership_settings_that_cannot_work_are_refused(env, variable):
    with pytest.raises(SettingsError, match=variable):
        load_activation_settings(env)


def test_cancel_and_resend_schedules_sendgrid_messages_ahead_in_batches():
    from reverse_etl.chain import build_destination

    env = {"MAILROOM_UNKNOWN_OUTCOME": "cancel-and-resend", "MAILROOM_SENDGRID_CANCEL_MARGIN_MINUTES": "45"}
    destination = build_destination("sendgrid", load_activation_settings(env))
    assert destination.cancellable and destination.minimum_lead == timedelta(minutes=45)
    assert not build_destination("sendgrid", load_activation_settings({})).cancellable


# --- SendGrid batches --------------------------------------------------------------------------------

def test_one_request_per_cancellable_hand_over():
    big = "<p>" + "y" * SUBSTITUTIONS_LIMIT_BYTES + "</p>"
    batch = [message(1), message(2, html=big), message(3, to="PERSON1@example.org "), message(4),
             message(5, to="zoë@example.org")]
    first, rest = sendgrid().split_request(batch)
    # m1 and m4 share a request; m3 is m1's address again, m2 is too big to share; m5 cannot go at all
    assert [m.message_id for m in first] == ["<m1@mail.example.com>", "<m4@mail.example.com>", "<m5@mail.example.com>"]
    assert [m.message_id for m in rest] == ["<m2@mail.example.com>", "<m3@mail.example.com>"]


def test_a_batch_cancelled_in_time_is_discarded_and_a_late_cancel_is_not_honoured():
    with SendGridDouble() as double:
        destination = sendgrid(double.url, double.api_key)
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        early, late = destination.new_batch(), destination.new_batch()
        destination.deliver([message(1, deliver_at=now + timedelta(minutes=30))], now, batch_id=early)
        destination.deliver([message(2, deliver_at=now + timedelta(minutes=5))], now, batch_id=late)
        body = destination.request_body([message(3)], now, batch_id=early)
        assert destination.cancel_batch(early) and destination.cancel_batch(early)  # again: PATCH
        assert destination.cancel_batch(late)
        assert not destination.cancel_batch("never-issued")
        delivered = [d.to for d in double.delivered]
        statuses = double.batch_statuses
        calls = double.batch_calls
    assert body["batch_id"] == early
    assert delivered == ["person2@example.org"]  # within 10 minutes of its send_at: SendGrid sends it anyway
    assert statuses == {early: "cancel", late: "cancel"}
    assert [c[2] for c in calls] == [201, 201, 201, 400, 204, 201, 400, 404]


# --- the outbox ----------------------------------------------------------------------------------------

def _outbox_batch() -> list[OutgoingMessage]:
    """Two campaigns, and one message that cannot be composed (a non-ASCII URL) in the middle."""
    batch = [message(n, campaign="c1" if n % 3 else "c2") for n in range(40)]
    batch[17] = message(17, headers={"List-Unsubscribe": "<https://mail.example.com/désabonner>"})
    return batch


def _eml_files(directory) -> dict[str, str]:
    """Every file under `directory` (temporary ones too) -> the Message-ID it holds."""
    return {str(path.relative_to(directory)): email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            ["Message-ID"] for path in directory.rglob("*") if path.is_file()}


@pytest.mark.parametrize("workers", [0, 2])
def test_the_outbox_writes_each_message_once_and_answers_in_the_batch_order(tmp_path, workers):
    """Written here or by a pool of two processes (each its own share), the answers come back in the
    batch's order, a message that cannot be composed fails alone, and writing the batch again - a run
    recovering from a crash - leaves exactly one file per message and no temporary file."""
    from reverse_etl.destinations.outbox import OutboxDestination

    batch = _outbox_batch()
    outbox = OutboxDestination(tmp_path, "news@mail.example.com", "Mailroom", workers=workers, pool_min=1)
    try:
        first = outbox.deliver(batch, NOW)
        again = outbox.deliver(batch, NOW)
    finally:
        outbox.close()

    sendable = [m for m in batch if m.message_id != "<m17@mail.example.com>"]
    assert list(first.accepted) == [m.message_id for m in sendable]
    assert list(first.unsendable) == ["<m17@mail.example.com>"] and first.unsendable["<m17@mail.example.com>"][0] \
        == "compose_failed"
    assert first.accepted == again.accepted and first.accepted == outbox.find_accepted(batch)
    assert _eml_files(tmp_path) == {name: message_id for message_id, name in first.accepted.items()}
    assert {name.split("/")[0] for name in first.accepted.values()} == {"c1", "c2"}


def test_an_outbox_file_is_on_disk_before_its_name_and_every_name_before_the_answer(tmp_path, monkeypatch):
    """fsync of each file's contents before it is renamed into place, one fsync of each folder after the
    last rename and before deliver() answers (then the ledger records it); no sync of the whole machine."""
    import os

    from reverse_etl.destinations.outbox import OutboxDestination

    events, real_fsync, real_replace = [], os.fsync, os.replace
    monkeypatch.setattr(os, "sync", lambda: events.append(("sync",)))

    def fsync(descriptor):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def replace(source, target):
        events.append(("replace", str(source), str(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    batch = [message(n, campaign="c1" if n % 2 else "c2") for n in range(12)]
    result = OutboxDestination(tmp_path, "news@mail.example.com", "Mailroom", workers=0).deliver(batch, NOW)
    events.append(("answered",))

    assert len(result.accepted) == 12 and ("sync",) not in events
    renames = [i for i, event in enumerate(events) if event[0] == "replace"]
    assert len(renames) == 12
    for i in renames:
        _, partial, final = events[i]
        assert partial == final + ".partial" and events.index(("fsync", partial)) < i
    folders = [i for i, event in enumerate(events) if event[0] == "fsync" and os.path.isdir(event[1])]
    assert sorted(events[i][1] for i in folders) == [str(tmp_path / "c1"), str(tmp_path / "c2")]
    assert min(folders) > max(renames) and max(folders) < events.index(("answered",))


def test_an_outbox_whose_pool_breaks_writes_the_batch_itself(tmp_path, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    from reverse_etl.destinations import outbox as outbox_module

    class BrokenPool:
        def __init__(self, *args, **kwargs):
            pass

        def submit(self, *args, **kwargs):
            raise BrokenProcessPool("a worker died")

        def shutdown(self, **kwargs):
            pass

    monkeypatch.setattr(outbox_module, "ProcessPoolExecutor", BrokenPool)
    outbox = outbox_module.OutboxDestination(tmp_path, "news@mail.example.com", "Mailroom", workers=2, pool_min=1)
    batch = [message(n) for n in range(10)]
    result = outbox.deliver(batch, NOW)
    assert list(result.accepted) == [m.message_id for m in batch] and outbox.workers == 0
    assert len(_eml_files(tmp_path)) == 10


def test_the_outbox_pool_workers_exit_when_a_killed_sender_never_closes_them(tmp_path):
    import os
    import subprocess
    import sys
    import time

    script = (
        "import os, sys\n"
        "from datetime import datetime\n"
        "from reverse_etl.destinations.outbox import OutboxDestination\n"
        "from reverse_etl.outgoing import OutgoingMessage\n"
        "if __name__ == '__main__':\n"
        "    outbox = OutboxDestination(sys.argv[1], 'news@mail.example.com', 'Mailroom', workers=2, pool_min=1)\n"
        "    batch = [OutgoingMessage(f'<m{n}@x.example>', 'c1', 'a', f'p{n}@example.org', 'Hi', '<p>hi</p>', 'hi')\n"
        "             for n in range(4)]\n"
        "    assert len(outbox.deliver(batch, datetime(2026, 11, 1)).accepted) == 4\n"
        "    print(' '.join(str(pid) for pid in outbox._pool._processes), flush=True)\n"
        "    os._exit(0)  # as SIGKILL would: no close(), no shutdown of the pool\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    workers = [int(pid) for pid in done.stdout.split()]
    assert len(workers) == 2

    def alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers)
    assert len(list((tmp_path / "c1").glob("*.eml"))) == 4 and os.path.isdir(tmp_path / "c1")
