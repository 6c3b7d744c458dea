"""The record-level rules that decide between raw.* and raw.quarantine."""

from datetime import datetime, timezone

import pytest

from dagster_project.ingest.sources import SOURCES
from dagster_project.ingest.values import Clock, Rejected

NOW = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)


def parse(source: str, record: dict) -> tuple:
    return SOURCES[source].parse(record, Clock(NOW))


def reason(source: str, record: dict) -> str:
    with pytest.raises(Rejected) as rejected:
        parse(source, record)
    return str(rejected.value)


GOOD_TRACK = {
    "messageId": "m-1", "type": "track", "event": "Order Completed", "userId": 42,
    "timestamp": "2026-10-31T23:30:00-02:00", "properties": {"revenue": 10.5},
}


def test_a_good_track_event_is_normalised_to_utc_and_string_ids():
    row = parse("cdp", GOOD_TRACK)
    columns = [c.name for c in SOURCES["cdp"].columns]
    values = dict(zip(columns, row))
    assert values["user_id"] == "42"
    assert values["event_at"] == "2026-11-01 01:30:00"
    assert values["properties"] == '{"revenue":10.5}'


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"messageId": None}, "missing required field: messageId"),
        ({"event": None}, "missing required field: event"),
        ({"userId": None}, "missing required field: userId or anonymousId"),
        ({"type": "purchase"}, "invalid value: type"),
        ({"timestamp": 1730000000}, "wrong type: timestamp"),
        ({"timestamp": "yesterday"}, "wrong type: timestamp"),
        ({"timestamp": "2099-01-01T00:00:00Z"}, "timestamp in the future"),
        ({"properties": "[1,2]"}, "wrong type: properties"),
        ({"userId": {"id": 1}}, "wrong type: userId"),
        ({"traits": {"email": "jane@"}}, "invalid email: traits.email"),
        ({"context": {"traits": {"email": "not-an-email"}}}, "invalid email: context.traits.email"),
    ],
)
def test_bad_cdp_events_are_rejected_with_a_reason_naming_the_field(change, expected):
    record = {**GOOD_TRACK, **change}
    record = {k: v for k, v in record.items() if v is not None}
    assert reason("cdp", record).startswith(expected)


def test_clock_skew_within_a_day_is_tolerated():
    assert parse("cdp", {**GOOD_TRACK, "timestamp": "2026-11-02T06:00:00Z"})


def test_placeholder_emails_pass_ingest_for_identity_resolution_to_block():
    record = {**GOOD_TRACK, "type": "identify", "traits": {"email": "null"}}
    assert parse("cdp", record)


def test_alias_needs_previous_id_and_user_id():
    alias = {"messageId": "a", "type": "alias", "timestamp": "2026-10-01T00:00:00Z", "anonymousId": "x"}
    assert reason("cdp", {**alias, "previousId": "p"}) == "missing required field: userId (alias)"
    assert reason("cdp", {**alias, "userId": "u"}) == "missing required field: previousId"


def test_consent_events_need_a_known_status_and_someone_to_apply_to():
    event = {
        "event_id": "c1", "user_id": "u1", "channel": "email", "status": "opt_in", "jurisdiction": "EU",
        "lawful_basis": "consent", "source": "signup_form", "occurred_at": "2026-10-01T00:00:00Z",
    }
    assert parse("consent", event)[4] == "opt_in"
    assert reason("consent", {**event, "status": "maybe"}).startswith("invalid value: status")
    assert reason("consent", {**event, "user_id": None}) == "missing required field: user_id or email"


def test_esp_events_take_unix_seconds_and_list_categories():
    event = {"sg_event_id": "e1", "event": "open", "email": "a@b.co", "timestamp": 1761955200,
             "category": ["weekly", "picks"], "sg_machine_open": True}
    row = dict(zip([c.name for c in SOURCES["esp"].columns], parse("esp", event)))
    assert row["event_at"] == "2025-11-01 00:00:00"
    assert row["category"] == "weekly,picks"
    assert row["is_machine_open"] is True
    assert reason("esp", {**event, "timestamp": "2025-11-01"}).startswith("wrong type: timestamp")
    assert reason("esp", {**event, "email": None}) == "missing required field: email"


def test_catalog_rows_need_numeric_prices_and_boolean_flags():
    product = {"product_id": "p1", "name": "Mug", "category": "home", "price": "12.50", "currency": "EUR",
               "is_active": "true", "updated_at": "2026-10-01 00:00:00"}
    assert parse("catalog", product)[3] == 12.5
    assert reason("catalog", {**product, "price": "cheap"}).startswith("wrong type: price")
    assert reason("catalog", {**product, "is_active": "sometimes"}).startswith("wrong type: is_active")


def test_a_catalog_url_is_optional_and_kept_as_given():
    product = {"product_id": "p1", "name": "Mug", "category": "home", "price": "12.50", "currency": "EUR",
               "is_active": "true", "updated_at": "2026-10-01 00:00:00"}
    names = [column.name for column in SOURCES["catalog"].columns]
    assert dict(zip(names, parse("catalog", product)))["url"] is None  # older exports have no url column
    # Kept as given, even when it is no web link: the product still loads, and rendering links only
    # http(s) URLs (dagster_project/personalization/render.py).
    for url in ("https://shop.example.com/p/p1", "javascript:alert(1)"):
        assert dict(zip(names, parse("catalog", {**product, "url": url})))["url"] == url
