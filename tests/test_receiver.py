"""The webhook and unsubscribe receiver (reverse_etl/receiver), over real HTTP on 127.0.0.1: signed
SendGrid webhooks are landed exactly as received and only when the signature, timestamp and body are
right; a burst of 10,000 events loses and duplicates none after ingest (DuckDB and PostgreSQL); the
one-click unsubscribe records an opt-out that the consent ingest loads, and nothing else does."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.sources import SOURCES
from dagster_project.ingest.values import Clock, Rejected
from dagster_project.personalization.render import sign_unsubscribe_token
from dagster_project.settings import ReceiverSettings, Settings, SettingsError, load_receiver_settings
from dagster_project.warehouse import Warehouse
from reverse_etl.receiver import create_app

SECRET = b"receiver-test-secret-of-32-bytes+"
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
EVENT_TIME = 1761955200  # 2025-11-01, in the past for the ingest's clock
WEBHOOK_FILE = re.compile(r"webhook-\d{8}T\d{6}-[0-9a-f]{32}\.jsonl")
UNSUBSCRIBE_FILE = re.compile(r"unsubscribe-\d{8}T\d{6}-[0-9a-f]{32}\.jsonl")


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def verification_key(private_key: ec.EllipticCurvePrivateKey, pem: bool = False) -> str:
    """The public key as SendGrid shows it (base64 DER SubjectPublicKeyInfo), or as PEM."""
    public = private_key.public_key()
    if pem:
        return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def signed_headers(private_key, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Sign like SendGrid: ECDSA P-256 / SHA-256 over the timestamp header value + the raw body."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = private_key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: stamp, "Content-Type": "application/json"}


def event(number: int, **fields) -> dict:
    return {"email": f"person{number}@example.com", "timestamp": EVENT_TIME, "event": "delivered",
            "sg_event_id": f"sg-{number:06d}", "sg_message_id": f"msg-{number}.filter0001", **fields}


@contextmanager
def serving(settings: Settings, receiver: ReceiverSettings, secret: bytes = SECRET) -> Iterator[str]:
    """The real app under uvicorn on 127.0.0.1 and a free port; yields the base URL."""
    config = uvicorn.Config(create_app(settings, receiver, secret), host="127.0.0.1", port=0,
                            log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the receiver did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def request(url: str, body: bytes | None = None, headers: dict | None = None,
            method: str | None = None) -> tuple[int, str]:
    call = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(call, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def landed(settings: Settings, source: str) -> list[Path]:
    folder = settings.landing_dir / source
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
def local_settings(tmp_path) -> Settings:
    return Settings(warehouse="duckdb", data_dir=tmp_path / "data")


@pytest.fixture
def receiver(signing_key) -> ReceiverSettings:
    return ReceiverSettings(sendgrid_public_key=verification_key(signing_key), max_age_seconds=300)


@pytest.fixture
def base_url(local_settings, receiver) -> Iterator[str]:
    with serving(local_settings, receiver) as url:
        yield url


# --- the signed Event Webhook ---------------------------------------------------------------------

def test_a_signed_webhook_is_landed_exactly_as_received(base_url, local_settings, signing_key):
    events = [event(1), event(2, event="open", sg_machine_open=True, useragent="Mozilla/5.0 (é)"),
              event(3, event="click", url="https://shop.example.com/?a=1&b=2", category=["weekly", "picks"])]
    body = json.dumps(events).encode()
    status, answer = request(f"{base_url}/webhooks/sendgrid", body, signed_headers(signing_key, body))
    assert (status, json.loads(answer)) == (200, {"accepted": 3})
    files = landed(local_settings, "esp")
    assert len(files) == 1 and WEBHOOK_FILE.fullmatch(files[0].name)  # no temporary file left behind
    assert files[0].read_text(encoding="utf-8").splitlines() == [json.dumps(e) for e in events]


def test_each_event_stays_on_one_line_when_the_body_is_pretty_printed(base_url, local_settings, signing_key):
    events = [event(1, reason="550 5.1.1 \"unknown\"\nuser"), event(2)]
    body = json.dumps(events, indent=2).encode()
    assert request(f"{base_url}/webhooks/sendgrid", body, signed_headers(signing_key, body))[0] == 200
    lines = landed(local_settings, "esp")[0].read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == events


def test_every_webhook_request_gets_its_own_file(base_url, local_settings, signing_key):
    for number in range(3):
        body = json.dumps([event(number)]).encode()
        assert request(f"{base_url}/webhooks/sendgrid", body, signed_headers(signing_key, body))[0] == 200
    files = landed(local_settings, "esp")
    assert len(files) == 3 and len({path.name for path in files}) == 3


def _tampered(key, body):
    headers = signed_headers(key, body)
    return body.replace(b"delivered", b"bounce"), headers


def _wrong_key(key, body):
    return body, signed_headers(ec.generate_private_key(ec.SECP256R1()), body)


def _missing_signature(key, body):
    headers = signed_headers(key, body)
    del headers[SIGNATURE]
    return body, headers


def _missing_timestamp(key, body):
    headers = signed_headers(key, body)
    del headers[TIMESTAMP]
    return body, headers


def _stale(key, body):
    return body, signed_headers(key, body, timestamp=int(time.time()) - 301)


def _future(key, body):
    return body, signed_headers(key, body, timestamp=int(time.time()) + 3600)


def _timestamp_swapped(key, body):
    headers = signed_headers(key, body, timestamp=int(time.time()) - 10)
    headers[TIMESTAMP] = str(int(time.time()))  # a fresh timestamp on an old signature
    return body, headers


def _garbage_signature(key, body):
    headers = signed_headers(key, body)
    headers[SIGNATURE] = "not base64!"
    return body, headers


def _padded_timestamp(key, body):
    """A correctly signed timestamp with leading zeros: a number, but longer than Unix seconds are."""
    stamp = str(int(time.time())).zfill(13)
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: stamp}


def _huge_timestamp(key, body):
    headers = signed_headers(key, body)
    headers[TIMESTAMP] = "9" * 5000  # int() of it raises past Python's 4,300-digit limit: was a 500
    return body, headers


def _huge_signature(key, body):
    headers = signed_headers(key, body)
    headers[SIGNATURE] += "A" * 4000
    return body, headers


@pytest.mark.parametrize("forge", [_tampered, _wrong_key, _missing_signature, _missing_timestamp, _stale, _future,
                                   _timestamp_swapped, _garbage_signature, _padded_timestamp, _huge_timestamp,
                                   _huge_signature])
def test_unsigned_tampered_or_replayed_webhooks_are_refused(base_url, local_settings, signing_key, forge):
    body, headers = forge(signing_key, json.dumps([event(1)]).encode())
    status, answer = request(f"{base_url}/webhooks/sendgrid", body, headers)
    assert status == 401 and json.loads(answer)["error"]
    assert landed(local_settings, "esp") == []


@pytest.mark.parametrize("body", [b"not json", b'{"event": "open"}', b"[1, 2]", b'[{"a": 1}, ]', b'[{"a": 1}] x',
                                  b'[{"a": 1}', b"\xff\xfe[]", b'[{"a": NaN}]', b"", b'[{"a": 1}, "b"]'])
def test_malformed_bodies_are_refused_with_400(base_url, local_settings, signing_key, body):
    status, _ = request(f"{base_url}/webhooks/sendgrid", body, signed_headers(signing_key, body), method="POST")
    assert status == 400
    assert landed(local_settings, "esp") == []


def test_an_empty_batch_is_acknowledged_without_a_file(base_url, local_settings, signing_key):
    body = b"[]"
    status, answer = request(f"{base_url}/webhooks/sendgrid", body, signed_headers(signing_key, body))
    assert (status, json.loads(answer)) == (200, {"accepted": 0})
    assert landed(local_settings, "esp") == []


def test_an_oversized_body_is_refused_with_413(local_settings, receiver, signing_key):
    body = json.dumps([event(n) for n in range(50)]).encode()
    with serving(local_settings, replace(receiver, max_body_bytes=len(body) - 1)) as url:
        assert request(f"{url}/webhooks/sendgrid", body, signed_headers(signing_key, body))[0] == 413
        small = json.dumps([event(1)]).encode()
        assert request(f"{url}/webhooks/sendgrid", small, signed_headers(signing_key, small))[0] == 200
    assert len(landed(local_settings, "esp")) == 1


def test_without_a_configured_key_every_webhook_is_refused(local_settings, signing_key):
    body = json.dumps([event(1)]).encode()
    with serving(local_settings, ReceiverSettings(sendgrid_public_key="")) as url:
        status, answer = request(f"{url}/webhooks/sendgrid", body, signed_headers(signing_key, body))
    assert status == 401 and "MAILROOM_SENDGRID_WEBHOOK_PUBLIC_KEY" in json.loads(answer)["error"]
    assert landed(local_settings, "esp") == []


def test_a_pem_key_works_and_a_bad_key_fails_at_startup(local_settings, signing_key):
    body = json.dumps([event(1)]).encode()
    with serving(local_settings, ReceiverSettings(sendgrid_public_key=verification_key(signing_key, pem=True))) as url:
        assert request(f"{url}/webhooks/sendgrid", body, signed_headers(signing_key, body))[0] == 200
    with pytest.raises(SettingsError, match="MAILROOM_SENDGRID_WEBHOOK_PUBLIC_KEY"):
        create_app(local_settings, ReceiverSettings(sendgrid_public_key="bm90IGEga2V5"), SECRET)
    p384 = verification_key(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(SettingsError, match="P-256"):
        create_app(local_settings, ReceiverSettings(sendgrid_public_key=p384), SECRET)


def test_a_burst_of_ten_thousand_events_loses_and_duplicates_none(settings, signing_key):
    receiver = ReceiverSettings(sendgrid_public_key=verification_key(signing_key))
    batches = [json.dumps([event(batch * 100 + n) for n in range(100)]).encode() for batch in range(100)]
    # SendGrid retries: some batches arrive twice, and two events again inside another batch. A retry is
    # a new delivery, signed with its own (later) timestamp; the very same signed request would be a replay.
    retried = batches[:10] + [json.dumps([event(5), event(9_999)]).encode()]
    now = int(time.time())
    with serving(settings, receiver) as url:
        def post(item: tuple[bytes, int]) -> int:
            body, stamp = item
            return request(f"{url}/webhooks/sendgrid", body, signed_headers(signing_key, body, stamp))[0]

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(post, [(b, now - 30) for b in batches] + [(b, now) for b in retried]))
    assert statuses == [200] * 111
    assert len(landed(settings, "esp")) == 111

    warehouse = Warehouse(settings)
    ingest_source(warehouse, SOURCES["esp"], settings.landing_dir, workers=1)
    with warehouse.connect() as conn:
        assert conn.scalar("select count(*) from raw.esp_events") == 10_000
        ids = {row[0] for row in conn.fetchall("select sg_event_id from raw.esp_events")}
        # Every re-delivered copy is accounted for: 1,000 + 2 duplicates kept with their reason.
        reasons = conn.fetchall("select reason, count(*) from raw.quarantine where source = 'esp' group by reason")
    assert reasons == [("duplicate key: sg_event_id seen before", 1_002)]
    assert ids == {f"sg-{n:06d}" for n in range(10_000)}


# --- one-click unsubscribe ------------------------------------------------------------------------

def token_for(email: str = "ada@example.com", campaign: str = "weekly-2026-45", secret: bytes = SECRET) -> str:
    return sign_unsubscribe_token(secret, "5f4dcc3b5aa765d61d8327deb882cf99", campaign, email)


def unsubscribe_url(base_url: str, token: str | None) -> str:
    return f"{base_url}/unsubscribe" + (f"?token={urllib.parse.quote(token)}" if token is not None else "")


ONE_CLICK = (b"List-Unsubscribe=One-Click", {"Content-Type": "application/x-www-form-urlencoded"})


def test_one_click_unsubscribe_lands_an_opt_out_that_ingests(settings, caplog):
    caplog.set_level(logging.INFO)
    token = token_for("Ada.Lovelace@example.com")
    with serving(settings, ReceiverSettings()) as url:
        status, page = request(unsubscribe_url(url, token), *ONE_CLICK)
    assert status == 200 and "You are unsubscribed" in page
    files = landed(settings, "consent")
    assert len(files) == 1 and UNSUBSCRIBE_FILE.fullmatch(files[0].name)
    [line] = files[0].read_text().splitlines()
    record = json.loads(line)
    assert {k: v for k, v in record.items() if k not in ("event_id", "occurred_at")} == {
        "email": "Ada.Lovelace@example.com", "channel": "email", "status": "opt_out", "lawful_basis": "consent",
        "source": "unsubscribe_link:weekly-2026-45"}
    assert "jurisdiction" not in record
    occurred = datetime.fromisoformat(record["occurred_at"])
    assert abs((datetime.now(timezone.utc) - occurred).total_seconds()) < 600

    warehouse = Warehouse(settings)
    report = ingest_source(warehouse, SOURCES["consent"], settings.landing_dir, workers=1)
    assert report.rows_quarantined == 0
    with warehouse.connect() as conn:
        rows = conn.fetchall("select event_id, email, channel, status, jurisdiction, lawful_basis, source "
                             "from raw.consent_events")
    assert rows == [(record["event_id"], "Ada.Lovelace@example.com", "email", "opt_out", None, "consent",
                     "unsubscribe_link:weekly-2026-45")]
    # Neither the address nor the token reaches a log line.
    assert "unsubscribe recorded" in caplog.text
    assert "lovelace" not in caplog.text.lower() and token not in caplog.text


@pytest.mark.parametrize("token", [None, "", "garbage", token_for()[:-3], token_for(secret=b"other-secret"),
                                   token_for()[:20] + ("A" if token_for()[20] != "A" else "B") + token_for()[21:]])
def test_an_invalid_token_is_refused_and_changes_nothing(base_url, local_settings, token):
    status, page = request(unsubscribe_url(base_url, token), *ONE_CLICK)
    assert status == 400 and "not valid" in page
    assert request(unsubscribe_url(base_url, token))[0] == 400  # the confirmation page too
    assert landed(local_settings, "consent") == []


def test_the_confirmation_page_offers_the_choice_escapes_and_changes_nothing(base_url, local_settings):
    token = token_for("<b>o'neil</b>@ex&ample.com")
    status, page = request(unsubscribe_url(base_url, token))
    assert status == 200
    assert 'name="choice" value="all"' in page and "Unsubscribe from all marketing email" in page
    assert 'name="choice" value="keep"' in page and "Keep me subscribed" in page
    assert f'action="/unsubscribe?token={token}"' in page and 'method="post"' in page
    assert "&lt;***@ex&amp;ample.com" in page  # masked, escaped
    assert "<b>" not in page and "o'neil" not in page and "ex&ample" not in page
    assert "<script" not in page and "http" not in page.split("<body>")[1]  # self-contained
    assert landed(local_settings, "consent") == []


def test_keep_me_subscribed_records_nothing_and_unsubscribe_all_records_one(base_url, local_settings):
    token = token_for()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, page = request(unsubscribe_url(base_url, token), b"choice=keep", form)
    assert status == 200 and "still subscribed" in page
    assert landed(local_settings, "consent") == []
    assert request(unsubscribe_url(base_url, token), b"choice=maybe", form)[0] == 400
    assert landed(local_settings, "consent") == []
    status, page = request(unsubscribe_url(base_url, token), b"choice=all", form)
    assert status == 200 and "You are unsubscribed" in page
    [path] = landed(local_settings, "consent")
    assert json.loads(path.read_text())["status"] == "opt_out"


def test_a_multipart_one_click_post_also_unsubscribes(base_url, local_settings):
    body = (b"--b\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b--\r\n")
    status, _ = request(unsubscribe_url(base_url, token_for()), body,
                        {"Content-Type": "multipart/form-data; boundary=b"})
    assert status == 200 and len(landed(local_settings, "consent")) == 1


def test_healthz(base_url):
    assert request(f"{base_url}/healthz") == (200, '{"status":"ok"}')


# --- the consent format the receiver writes -------------------------------------------------------

def test_an_opt_out_needs_no_jurisdiction_but_an_opt_in_does():
    clock = Clock(datetime(2026, 11, 1, tzinfo=timezone.utc))
    base = {"event_id": "c1", "email": "a@example.com", "channel": "email", "lawful_basis": "consent",
            "source": "unsubscribe_link:weekly", "occurred_at": "2026-10-01T00:00:00Z"}
    parse = SOURCES["consent"].parse
    assert parse({**base, "status": "opt_out"}, clock)[5] is None
    assert parse({**base, "status": "opt_out", "jurisdiction": "EU"}, clock)[5] == "EU"
    with pytest.raises(Rejected, match="jurisdiction"):
        parse({**base, "status": "opt_out", "jurisdiction": "MARS"}, clock)
    with pytest.raises(Rejected, match="missing required field: jurisdiction"):
        parse({**base, "status": "opt_in"}, clock)


def test_an_unsubscribe_through_the_endpoint_suppresses_the_customers_next_message(settings, tmp_path, monkeypatch):
    """The List-Unsubscribe link of a rendered message, clicked before the send: the opt-out lands,
    is ingested, and the last look before sending suppresses exactly that customer."""
    from reverse_etl.run import send_campaigns

    import activation_helpers as activation

    RECEIVER_SECRET = b"activation-and-receiver-secret-32b"

    # The receiver wants a secret of at least 32 bytes; render the links with the same one.
    monkeypatch.setattr(activation, "SECRET", RECEIVER_SECRET)
    warehouse = Warehouse(settings)
    customers = activation.customer_ids(5)
    activation.seed_customers(warehouse, customers)
    activation.seed_messages(warehouse, "weekly", customers)
    with warehouse.connect() as conn:
        headers = conn.scalar("SELECT headers_json FROM ops.campaign_messages WHERE customer_id = ?", [customers[2]])
    link = json.loads(headers)["List-Unsubscribe"].strip("<>")
    with serving(settings, ReceiverSettings(), secret=RECEIVER_SECRET) as url:
        status, _ = request(url + link[link.index("/unsubscribe"):], *ONE_CLICK)
    assert status == 200

    ingest_source(warehouse, SOURCES["consent"], settings.landing_dir, workers=1)
    [report] = send_campaigns(settings, activation.activation_settings(tmp_path), log=lambda m: None)

    assert report.suppressed == {"opted_out": 1} and report.handed_over == 4
    with warehouse.connect() as conn:
        assert conn.fetchall("SELECT customer_id FROM ops.send_ledger WHERE state = 'suppressed'") == [(customers[2],)]


# --- secrets, replays, floods and repeats ---------------------------------------------------------

def request_with_headers(url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict, str]:
    call = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(call, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read().decode()


def malleated(signature_b64: str) -> str:
    """The other valid ECDSA signature of the same message: (r, s) -> (r, n - s)."""
    r, s = decode_dss_signature(base64.b64decode(signature_b64))
    return base64.b64encode(encode_dss_signature(r, P256_ORDER - s)).decode()


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def test_a_replayed_signed_request_is_refused_even_with_a_malleated_signature(local_settings, receiver, signing_key):
    body = json.dumps([event(1)]).encode()
    headers = signed_headers(signing_key, body)
    twin = {**headers, SIGNATURE: malleated(headers[SIGNATURE])}
    with serving(local_settings, receiver) as url:
        assert request(f"{url}/webhooks/sendgrid", body, headers)[0] == 200
        for replay in (headers, twin):
            status, answer = request(f"{url}/webhooks/sendgrid", body, replay)
            assert status == 401 and "replay" in json.loads(answer)["error"]
        other = json.dumps([event(2)]).encode()  # a new request in the same second is no replay
        assert request(f"{url}/webhooks/sendgrid", other, signed_headers(signing_key, other))[0] == 200
    assert len(landed(local_settings, "esp")) == 2
    # The malleated signature is valid in itself: a receiver that has not seen the request takes it.
    with serving(local_settings, receiver) as url:
        assert request(f"{url}/webhooks/sendgrid", body, twin)[0] == 200


def test_a_request_that_could_not_be_landed_is_accepted_when_retried(local_settings, receiver, signing_key):
    body = json.dumps([event(1)]).encode()
    headers = signed_headers(signing_key, body)
    blocker = local_settings.landing_dir / "esp"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the esp folder should be")
    with serving(local_settings, receiver) as url:
        assert request(f"{url}/webhooks/sendgrid", body, headers)[0] == 500
        blocker.unlink()
        assert request(f"{url}/webhooks/sendgrid", body, headers)[0] == 200  # SendGrid's retry, same signature
    assert len(landed(local_settings, "esp")) == 1


def test_requests_beyond_the_concurrency_limit_get_503_with_retry_after(local_settings, receiver):
    with serving(local_settings, replace(receiver, max_concurrent_requests=1)) as url:
        port = int(url.rsplit(":", 1)[1])
        probe = unsubscribe_url(url, "garbage")  # answers 400 and writes nothing when served
        with socket.create_connection(("127.0.0.1", port), timeout=30) as slow:
            # A client that sends its headers and dribbles its body: the one request in progress.
            slow.sendall(b"POST /unsubscribe?token=garbage HTTP/1.1\r\nHost: receiver\r\nContent-Length: 40\r\n"
                         b"Content-Type: application/x-www-form-urlencoded\r\n\r\nchoice=")
            deadline = time.monotonic() + 15
            while (answer := request_with_headers(probe))[0] != 503:
                assert time.monotonic() < deadline, "the slow request was never counted"
                time.sleep(0.05)
            status, headers, body = answer
            assert int(headers["retry-after"]) > 0 and "busy" in json.loads(body)["error"]
            assert request(f"{url}/healthz")[0] == 200  # the load balancer still sees a live receiver
            slow.sendall(b"all".ljust(33, b"&"))
            assert slow.recv(65536).startswith(b"HTTP/1.1 400")
        deadline = time.monotonic() + 15
        while (status := request(probe)[0]) == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status == 400  # the slot is free again
    assert landed(local_settings, "consent") == []


def test_a_repeated_one_click_for_the_same_token_writes_nothing_new(base_url, local_settings):
    token = token_for("grace@example.com", "weekly-2026-45")
    for _ in range(3):  # a double click, then a mail scanner following the link
        status, page = request(unsubscribe_url(base_url, token), *ONE_CLICK)
        assert status == 200 and "You are unsubscribed" in page
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert request(unsubscribe_url(base_url, token), b"choice=all", form)[0] == 200  # the page's button too
    assert len(landed(local_settings, "consent")) == 1
    other_campaign = token_for("grace@example.com", "cart-2026-45")  # another campaign's link is its own opt-out
    assert request(unsubscribe_url(base_url, other_campaign), *ONE_CLICK)[0] == 200
    sources = sorted(json.loads(path.read_text())["source"] for path in landed(local_settings, "consent"))
    assert sources == ["unsubscribe_link:cart-2026-45", "unsubscribe_link:weekly-2026-45"]


def test_an_opt_out_repeated_after_the_window_is_written_again(local_settings):
    """After the window the person may have re-subscribed: their new click must count."""
    token = token_for()
    with serving(local_settings, ReceiverSettings(opt_out_repeat_window_seconds=0)) as url:
        for _ in range(2):
            assert request(unsubscribe_url(url, token), *ONE_CLICK)[0] == 200
    assert len(landed(local_settings, "consent")) == 2


@pytest.mark.parametrize("secret", [b"", b"x" * 31])
def test_the_app_refuses_a_missing_or_short_secret(local_settings, receiver, secret):
    with pytest.raises(ValueError, match="MAILROOM_UNSUBSCRIBE_SECRET"):
        create_app(local_settings, receiver, secret)


@pytest.mark.parametrize("value, expected", [
    (None, "MAILROOM_UNSUBSCRIBE_SECRET is not set"),
    ("too-short-secret", "MAILROOM_UNSUBSCRIBE_SECRET is 16 bytes long; use at least 32"),
])
def test_the_receiver_does_not_start_without_an_explicit_secret(tmp_path, value, expected):
    """Not even with a key file in the data directory: the receiver must verify the pipeline's links."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / ".unsubscribe_secret").write_text("a" * 64)
    environment = {name: v for name, v in os.environ.items() if not name.startswith("MAILROOM_")}
    environment.update(MAILROOM_DATA_DIR=str(tmp_path / "data"), MAILROOM_RECEIVER_PORT="1")
    if value is not None:
        environment["MAILROOM_UNSUBSCRIBE_SECRET"] = value
    started = subprocess.run([sys.executable, "-m", "reverse_etl.receiver"], env=environment, capture_output=True,
                             text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert started.returncode == 2 and expected in started.stderr
    assert "secrets.token_urlsafe" in started.stderr  # and how to make one
    assert "Mailroom receiver listening" not in started.stdout


# --- campaign previews (GET /preview/) ------------------------------------------------------------

OUTSIDE = "TOP-SECRET-OUTSIDE-THE-PREVIEWS"


def write_previews(settings: Settings) -> dict[str, bytes]:
    """Previews of two messages of campaign weekly_picks as the pipeline writes them, a secret file
    beside the previews directory, and traps inside it (a symlink out, a file of another kind, a dot
    file); returns what each served URL path may answer."""
    from dagster_project.personalization.ops_tables import bulk_insert, ensure_ops_tables
    from dagster_project.personalization.previews import write_campaign_previews

    warehouse = Warehouse(settings)
    with warehouse.connect() as conn:
        ensure_ops_tables(conn)
        bulk_insert(conn, "ops.campaign_messages", [
            (f"m{n}", "weekly_picks", "2026-11-01", f"c{n}", variant, "active:apparel", "k", f"p{n}@example.com",
             f"Subject {variant}", "Pre", f"<p>Hi <b>{variant}</b></p><script>alert(1)</script>", f"Hi {variant}",
             "{}", datetime(2026, 11, 1), datetime(2026, 11, 1))
            for n, variant in enumerate(["a", "b"])])
    previews = write_campaign_previews(warehouse, "weekly_picks", "2026-11-01", settings.previews_dir)
    (settings.data_dir / "secret.txt").write_text(OUTSIDE)
    folder = settings.previews_dir / "weekly_picks"
    (folder / "leak.html").symlink_to(settings.data_dir / "secret.txt")
    (folder / "leak-dir").symlink_to(settings.data_dir, target_is_directory=True)
    (settings.previews_dir / "out").symlink_to(settings.data_dir, target_is_directory=True)
    (folder / "notes.md").write_text(OUTSIDE)
    (folder / ".index.html.tmp").write_text(OUTSIDE)
    served = {f"/preview/weekly_picks/{p.html_path.name}": p.html_path.read_bytes() for p in previews}
    served |= {f"/preview/weekly_picks/{p.text_path.name}": p.text_path.read_bytes() for p in previews}
    served["/preview/weekly_picks/index.html"] = served["/preview/weekly_picks/"] = (folder / "index.html").read_bytes()
    return served


def raw_get(base_url: str, target: bytes) -> tuple[int, dict, bytes]:
    """GET with the request target exactly as given (no client normalizes or refuses it)."""
    port = int(base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: receiver\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def test_previews_are_served_read_only_and_scripts_cannot_run(local_settings, receiver):
    served = write_previews(local_settings)
    with serving(local_settings, receiver) as url:
        for path, content in served.items():
            status, headers, body = raw_get(url, path.encode())
            assert (status, body) == (200, content), path
            csp = headers["content-security-policy"]
            assert "script-src 'none'" in csp and "sandbox" in csp and "allow-scripts" not in csp
            assert headers["content-type"] == ("text/plain; charset=utf-8" if path.endswith(".txt")
                                               else "text/html; charset=utf-8")
            assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-store"
        status, headers, listing = raw_get(url, b"/preview/")
        assert status == 200 and b'href="weekly_picks/"' in listing and b"out" not in listing
        assert "script-src 'none'" in headers["content-security-policy"]
        assert request(f"{url}/preview/weekly_picks/index.html", b"x", method="POST")[0] == 405
        assert request(f"{url}/preview/weekly_picks/index.html", method="DELETE")[0] == 405
        assert request(f"{url}/preview/nope/index.html")[0] == 404


def test_an_empty_previews_directory_is_a_page_not_an_error(base_url):
    status, page = request(f"{base_url}/preview/")
    assert status == 200 and "No previews yet" in page


TRAVERSALS = [
    b"/preview/weekly_picks/../../secret.txt", b"/preview/../secret.txt", b"/preview/..", b"/preview/../",
    b"/preview/%2e%2e/secret.txt", b"/preview/%2E%2E/%2e%2e/secret.txt", b"/preview/weekly_picks/%2e%2e%2fsecret.txt",
    b"/preview/weekly_picks/%2e%2e%2f%2e%2e%2fsecret.txt", b"/preview/weekly_picks/..%2f..%2fsecret.txt",
    b"/preview/%2e%2e%2f%2e%2e%2fsecret.txt", b"/preview/weekly_picks/..%5c..%5csecret.txt",
    b"/preview/weekly_picks/%252e%252e%252fsecret.txt", b"/preview/%2fetc%2fpasswd", b"/preview//etc/passwd",
    b"/preview/weekly_picks//etc/passwd", b"/preview/weekly_picks/%2Fetc%2Fpasswd",
    b"/preview/weekly_picks/leak.html", b"/preview/weekly_picks/leak-dir/secret.txt", b"/preview/out/secret.txt",
    b"/preview/weekly_picks/notes.md", b"/preview/weekly_picks/.index.html.tmp", b"/preview/weekly_picks/%00.html",
    b"/preview/weekly_picks/index.html%00.txt", b"/preview/weekly_picks/index.html/.", b"/preview/./weekly_picks/",
    b"http://receiver/preview/../secret.txt", b"/preview/weekly_picks/INDEX.HTML", b"/preview/~/secret.txt",
]


def test_no_path_reaches_a_file_outside_the_previews_or_one_the_writer_did_not_make(local_settings, receiver):
    write_previews(local_settings)
    secret = urllib.parse.quote(str(local_settings.data_dir / "secret.txt"), safe="").encode()  # %2Ftmp%2F...
    absolute = [b"/preview/" + secret, b"/preview/weekly_picks/" + secret, b"/preview/" + secret + b"/index.html",
                b"/preview" + secret.replace(b"%2F", b"/")]
    with serving(local_settings, receiver) as url:
        for target in TRAVERSALS + absolute:
            status, _, body = raw_get(url, target)
            assert status in (307, 400, 404) and OUTSIDE.encode() not in body, target  # 307: a slash added


@pytest.fixture(scope="module")
def preview_server(tmp_path_factory, signing_key):
    settings = Settings(warehouse="duckdb", data_dir=tmp_path_factory.mktemp("previews") / "data")
    served = write_previews(settings)
    with serving(settings, ReceiverSettings(sendgrid_public_key=verification_key(signing_key))) as url:
        yield url, served, settings


# Names that exist inside and outside the previews, and pieces of traversal, mostly; any text too.
NAMES = st.sampled_from(["..", "%2e%2e", ".%2E", ".", "", "weekly_picks", "index.html", "secret.txt", "leak.html",
                         "leak-dir", "out", "data", "notes.md", ".index.html.tmp", "%2f", "\\", "%00", "~", "%25"])
SEGMENT = st.one_of(NAMES, NAMES, NAMES, st.text(max_size=8))
PATHS = st.one_of(st.lists(SEGMENT, min_size=1, max_size=3).map("/".join), st.lists(SEGMENT, min_size=2, max_size=2)
                  .map("/".join), st.text(max_size=40))


@hypothesis_settings(max_examples=1500, deadline=None)
@given(PATHS)
def test_any_path_is_answered_with_a_preview_or_refused(preview_server, path):
    url, served, _ = preview_server
    target = "/preview/" + urllib.parse.quote(path, safe="/%\\.~:")
    status, _, body = raw_get(url, target.encode("ascii"))
    assert OUTSIDE.encode() not in body, target
    if status == 200:  # a preview the writer made, or the listing of campaigns
        assert body in served.values() or b"<h1>Campaign previews</h1>" in body, target
    else:
        assert status in (307, 400, 404), target


@hypothesis_settings(max_examples=2000, deadline=None)
@given(st.one_of(SEGMENT, PATHS), st.one_of(SEGMENT, PATHS))
def test_any_campaign_and_file_name_resolve_inside_the_previews_or_to_nothing(preview_server, campaign, name):
    from reverse_etl.receiver.previews import preview_file

    settings = preview_server[2]
    for pair in ((campaign, name), (urllib.parse.unquote(campaign), urllib.parse.unquote(name))):
        found = preview_file(settings.previews_dir, *pair)
        if found is not None:
            assert found.is_relative_to(settings.previews_dir.resolve()) and found.suffix in (".html", ".txt")
            assert OUTSIDE not in found.read_text()


def test_previews_are_served_to_this_machine_only():
    from starlette.requests import Request

    from reverse_etl.receiver.previews import from_this_machine

    def request(host, headers=()):
        return Request({"type": "http", "method": "GET", "path": "/preview/", "headers": list(headers),
                        "client": (host, 40000) if host else None})

    assert from_this_machine(request("127.0.0.1")) and from_this_machine(request("::1"))
    for outside in ("203.0.113.9", "10.0.0.5", "testclient", "", None):
        assert not from_this_machine(request(outside)), outside
    # A proxy on this host relays requests from elsewhere: whatever it says about them, they are not local.
    for header in (b"x-forwarded-for", b"forwarded", b"x-real-ip"):
        assert not from_this_machine(request("127.0.0.1", [(header, b"127.0.0.1")])), header


def test_previews_are_served_only_by_a_loopback_receiver_unless_switched_on(local_settings):
    write_previews(local_settings)
    facing_out = load_receiver_settings({"MAILROOM_RECEIVER_HOST": "0.0.0.0"})
    assert not facing_out.previews_served
    with serving(local_settings, facing_out) as url:
        assert request(f"{url}/preview/weekly_picks/index.html")[0] == 404
        assert request(f"{url}/healthz")[0] == 200
    switched_on = load_receiver_settings({"MAILROOM_RECEIVER_HOST": "0.0.0.0", "MAILROOM_RECEIVER_PREVIEWS": "on"})
    with serving(local_settings, switched_on) as url:
        assert request(f"{url}/preview/weekly_picks/index.html")[0] == 200
    assert load_receiver_settings({}).previews_served  # 127.0.0.1, a laptop
    assert not load_receiver_settings({"MAILROOM_RECEIVER_PREVIEWS": "off"}).previews_served
    with pytest.raises(SettingsError, match="MAILROOM_RECEIVER_PREVIEWS='maybe' is not a switch; use on or off"):
        load_receiver_settings({"MAILROOM_RECEIVER_PREVIEWS": "maybe"})
