"""Builds ops.phone_numbers: every distinct phone spelling in raw CDP traits and CRM contacts, with
its E.164 form or the reason it has none. dbt joins this table to match customers by phone."""

from __future__ import annotations

import csv
import tempfile
from collections import Counter
from pathlib import Path

from dagster_project.identity.phones import normalize_phone
from dagster_project.warehouse import Column, Warehouse

PHONE_COLUMNS = (
    Column("raw_phone", "VARCHAR"),
    Column("country_hint", "VARCHAR"),
    Column("phone_e164", "VARCHAR"),
    Column("invalid_reason", "VARCHAR"),
)


def distinct_phone_spellings(conn) -> list[tuple[str, str | None]]:
    phone, country = conn.json_text("traits", "phone"), conn.json_text("traits", "country")
    sources = [
        f"SELECT {phone} AS raw_phone, {country} AS country_hint FROM raw.cdp_events",
        "SELECT phone, country FROM raw.crm_contacts",
        "SELECT mobile_phone, country FROM raw.crm_contacts",
    ]
    union = " UNION ".join(sources)
    return conn.fetchall(f"SELECT DISTINCT raw_phone, country_hint FROM ({union}) AS p WHERE raw_phone IS NOT NULL")


def build_phone_numbers(warehouse: Warehouse, default_region: str) -> Counter:
    """Rebuild the contents of ops.phone_numbers; returns counts of valid and invalid spellings."""
    outcome: Counter = Counter()
    with tempfile.TemporaryDirectory(prefix="mailroom-phones-") as scratch:
        path = Path(scratch) / "phones.csv"
        with warehouse.connect() as conn:
            spellings = distinct_phone_spellings(conn)
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([c.name for c in PHONE_COLUMNS])
            for raw_phone, country in spellings:
                phone = normalize_phone(raw_phone, country, default_region)
                outcome["valid" if phone.phone_e164 else "invalid"] += 1
                writer.writerow([raw_phone, country or "", phone.phone_e164 or "", phone.invalid_reason or ""])
        with warehouse.connect() as conn:
            conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
            conn.create_table("ops.phone_numbers", PHONE_COLUMNS)
            # Replaced in one transaction (not dropped): dbt's staging view depends on the table.
            conn.execute("DELETE FROM ops.phone_numbers")
            conn.load_csv("ops.phone_numbers", PHONE_COLUMNS, path)
    return outcome
