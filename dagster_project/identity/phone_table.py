"""Builds ops.phone_numbers: every distinct phone spelling in raw CDP traits and CRM contacts, with
its E.164 form or the reason it has none. dbt joins this table to match customers by phone.

Incremental: a spelling is normalized once (libphonenumber is the slow part) and kept; each run adds
only the spellings the table does not hold yet. Each row records the default region it was read in
(MAILROOM_PHONE_DEFAULT_REGION); when that setting changes, the table is rebuilt. An erasure removes
a person's spellings from this table like from every other (the raw rows are gone, so they never
come back)."""

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
    Column("default_region", "VARCHAR"),
)
_SAME_SPELLING = ("known.raw_phone = spellings.raw_phone "
                  "AND coalesce(known.country_hint, '') = coalesce(spellings.country_hint, '')")


def distinct_phone_spellings(conn, only_new: bool = False) -> list[tuple[str, str | None]]:
    """Every distinct (spelling, country) in the raw tables; only_new: those ops.phone_numbers lacks."""
    phone, country = conn.json_text("traits", "phone"), conn.json_text("traits", "country")
    sources = [
        f"SELECT {phone} AS raw_phone, {country} AS country_hint FROM raw.cdp_events",
        "SELECT phone, country FROM raw.crm_contacts",
        "SELECT mobile_phone, country FROM raw.crm_contacts",
    ]
    new = (f" AND NOT EXISTS (SELECT 1 FROM ops.phone_numbers AS known WHERE {_SAME_SPELLING})"
           if only_new else "")
    return conn.fetchall(f"SELECT DISTINCT raw_phone, country_hint FROM ({' UNION '.join(sources)}) AS spellings "
                         f"WHERE raw_phone IS NOT NULL{new}")


def build_phone_numbers(warehouse: Warehouse, default_region: str) -> Counter:
    """Add the spellings ops.phone_numbers lacks (all of them when the default region changed);
    returns counts of valid and invalid spellings in the table, and how many were added."""
    with warehouse.connect() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
        conn.create_table("ops.phone_numbers", PHONE_COLUMNS)
        # Tables from before the region was recorded have no such column: they are rebuilt once.
        conn.add_missing_columns("ops.phone_numbers", PHONE_COLUMNS)
        rebuild = bool(conn.scalar("SELECT count(*) FROM ops.phone_numbers WHERE default_region IS NULL "
                                   "OR default_region <> ?", [default_region]))
        spellings = distinct_phone_spellings(conn, only_new=not rebuild)
    with tempfile.TemporaryDirectory(prefix="mailroom-phones-") as scratch:
        path = Path(scratch) / "phones.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([c.name for c in PHONE_COLUMNS])
            for raw_phone, country in spellings:
                phone = normalize_phone(raw_phone, country, default_region)
                writer.writerow([raw_phone, country or "", phone.phone_e164 or "", phone.invalid_reason or "",
                                 default_region])
        with warehouse.connect() as conn:
            if rebuild:  # in one transaction, not dropped: dbt's staging view depends on the table
                conn.execute("DELETE FROM ops.phone_numbers")
            conn.load_csv("ops.phone_numbers", PHONE_COLUMNS, path)
            valid, invalid = conn.fetchall("SELECT count(phone_e164), count(*) - count(phone_e164) "
                                           "FROM ops.phone_numbers")[0]
    return Counter(valid=int(valid), invalid=int(invalid), added=len(spellings))
