"""ops.phone_numbers on both engines: each spelling is normalized once, later runs add only new ones,
and a change of the default region rebuilds the table."""

from __future__ import annotations

import json

import pytest

from dagster_project.identity import phone_table
from dagster_project.identity.phone_table import build_phone_numbers
from dagster_project.ingest.loader import ensure_raw_tables


def add_events(warehouse, *phones: tuple[str, str | None]) -> None:
    with warehouse.connect() as conn:
        start = conn.scalar("SELECT count(*) FROM raw.cdp_events")
        for number, (phone, country) in enumerate(phones, start=start):
            traits = json.dumps({"phone": phone, **({"country": country} if country else {})})
            conn.execute("INSERT INTO raw.cdp_events (message_id, event_type, traits) VALUES (?, 'identify', ?)",
                         [f"m{number}", traits])


@pytest.fixture
def normalized(monkeypatch) -> list[str]:
    """The spellings libphonenumber was asked to read, in order."""
    calls = []
    original = phone_table.normalize_phone

    def counting(raw_phone, country, default_region):
        calls.append(raw_phone)
        return original(raw_phone, country, default_region)

    monkeypatch.setattr(phone_table, "normalize_phone", counting)
    return calls


def table(warehouse) -> list[tuple]:
    with warehouse.connect() as conn:
        return conn.fetchall("SELECT raw_phone, country_hint, phone_e164, default_region FROM ops.phone_numbers "
                             "ORDER BY raw_phone")


def test_later_runs_normalize_only_new_spellings_and_a_new_region_rebuilds(warehouse, normalized):
    ensure_raw_tables(warehouse)
    add_events(warehouse, ("+44 20 7946 0958", None), ("020 7946 0959", "GB"), ("(415) 555-0100", None))
    first = build_phone_numbers(warehouse, "US")
    assert (first["valid"], first["added"]) == (3, 3)
    assert len(normalized) == 3

    add_events(warehouse, ("(415) 555-0100", None), ("415-555-0101", None))  # one known, one new
    second = build_phone_numbers(warehouse, "US")
    assert second["added"] == 1 and normalized[3:] == ["415-555-0101"]
    assert second["valid"] == 4
    assert sorted(row[2] for row in table(warehouse)) == ["+14155550100", "+14155550101", "+442079460958",
                                                          "+442079460959"]

    # Read in another default region, the national US numbers mean something else: all read again.
    rebuilt = build_phone_numbers(warehouse, "GB")
    assert rebuilt["added"] == 4 and len(normalized) == 8
    assert {row[3] for row in table(warehouse)} == {"GB"}
    assert len(table(warehouse)) == 4
