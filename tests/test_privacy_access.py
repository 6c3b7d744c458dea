"""The access export (docs/design/privacy.md, section 4), on the session's campaigned sample (both engines, read
only): one customer's export holds their profile, identifiers, consent with its sources, their messages with
subjects and bodies, and their engagement, and nothing of another customer; written twice it is the same bytes,
private files in a private folder; DuckDB and PostgreSQL give the same document; someone Mailroom does not know,
and a warehouse before its first build, get every section with no rows. Pure: the page escapes what it shows."""

from __future__ import annotations

import hashlib
import json
import re
import stat
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from dagster_project.privacy.access import SECTIONS, build_export, export_json, plain, render_html, write_export
from dagster_project.privacy.subjects import resolve
from dagster_project.settings import Settings
from dagster_project.warehouse import Warehouse

NOW = datetime(2026, 11, 2, 8, 0)
# Customers with a CRM contact, consent, a message of the campaigns run and deliveries of earlier ones, in
# customer id order (the same two on both engines).
PEOPLE = (
    "SELECT m.customer_id FROM ops.campaign_messages m WHERE m.customer_id IN (SELECT customer_id FROM "
    "marts.customer_identities WHERE identifier_type = 'crm_contact_id') AND m.customer_id IN (SELECT customer_id "
    "FROM marts.fct_email_deliveries) AND m.customer_id IN (SELECT customer_id FROM marts.consent_status) "
    "GROUP BY m.customer_id ORDER BY m.customer_id LIMIT 2"
)


def _export(conn, customer_id: str) -> dict:
    email = conn.scalar("SELECT email FROM marts.dim_customers WHERE customer_id = ?", [customer_id])
    return build_export(conn, resolve(conn, [("email", email)]), "req-access-1", NOW)


def _rows(document: dict, section: str, table: str) -> list[dict]:
    return [row for row in document["sections"][section]["rows"] if row["table"] == table]


def _holds(text: str, value: str) -> bool:
    """`value` appears in `text` as a whole token (a short id only as a whole JSON string)."""
    if len(value) < 6:
        return f'"{value}"' in text
    return re.search(rf"(^|[^A-Za-z0-9._@+-]){re.escape(value)}($|[^A-Za-z0-9._@+-])", text, re.IGNORECASE) is not None


def test_the_export_holds_the_person_and_nobody_else(campaigned_warehouse, tmp_path):
    with Warehouse(campaigned_warehouse.settings).connect() as conn:
        ann, bob = [row[0] for row in conn.fetchall(PEOPLE)]
        document = _export(conn, ann)
        identities = set(conn.fetchall("SELECT identifier_type, identifier_value FROM marts.customer_identities "
                                       "WHERE customer_id = ?", [ann]))
        messages = sorted(conn.fetchall("SELECT message_id, subject, text_body, html_body FROM ops.campaign_messages "
                                        "WHERE customer_id = ?", [ann]))
        deliveries = conn.scalar("SELECT count(*) FROM marts.fct_email_deliveries WHERE customer_id = ?", [ann])
        email = conn.scalar("SELECT email FROM marts.dim_customers WHERE customer_id = ?", [ann])
        consents = conn.scalar(
            "SELECT count(*) FROM raw.consent_events WHERE lower(trim(email)) = ? OR user_id IN (SELECT "
            "identifier_value FROM marts.customer_identities WHERE customer_id = ? AND identifier_type = 'user_id')",
            [email, ann])
        bob_values = {value for (value,) in conn.fetchall(
            "SELECT identifier_value FROM marts.customer_identities WHERE customer_id = ? UNION "
            "SELECT message_id FROM ops.campaign_messages WHERE customer_id = ?", [bob, bob])} | {bob}
    assert list(document["sections"]) == list(SECTIONS)
    assert document["subject"] == {"requested": [{"type": "email", "value": email}], "customer_ids": [ann]}
    assert [row["email"] for row in _rows(document, "profile", "marts.dim_customers")] == [email]
    assert _rows(document, "profile", "raw.crm_contacts")
    assert {(row["identifier_type"], row["identifier_value"])
            for row in _rows(document, "identifiers", "marts.customer_identities")} == identities
    consent = _rows(document, "consent_history", "raw.consent_events")
    assert len(consent) == consents > 0 and all(row["source"] for row in consent)
    assert _rows(document, "consent_history", "marts.consent_status")
    shown = document["sections"]["messages"]["rows"]
    assert sorted((row["message_id"], row["subject"], row["text_body"], row["html_body"]) for row in shown) == messages
    assert all(row["state"] and row["campaign_id"] for row in shown)
    assert len(_rows(document, "engagement", "marts.fct_email_deliveries")) == deliveries > 0
    assert _rows(document, "engagement", "raw.esp_events")
    assert document["sections"]["events"]["rows"] and document["sections"]["eligibility"]["rows"]
    text = export_json(document)
    page = render_html(document)
    assert _holds(text, email) and _holds(page, email)
    assert not [value for value in bob_values if _holds(text, value) or _holds(page, value)]

    first = write_export(tmp_path / "exports", document)
    before = (first.json_path.read_bytes(), first.html_path.read_bytes())
    second = write_export(tmp_path / "exports", json.loads(first.json_path.read_text(encoding="utf-8")))
    assert (second.json_path.read_bytes(), second.html_path.read_bytes()) == before and second == first
    assert first.json_path == tmp_path / "exports" / "req-access-1" / "access.json"
    assert first.sha256 == hashlib.sha256(before[0]).hexdigest()
    assert stat.S_IMODE(first.json_path.parent.stat().st_mode) == 0o700
    assert {stat.S_IMODE(path.stat().st_mode) for path in (first.json_path, first.html_path)} == {0o600}
    assert sorted(path.name for path in first.json_path.parent.iterdir()) == ["access.html", "access.json"]


def test_a_rerun_gives_the_same_bytes_quarantined_lines_are_found_and_an_unknown_person_gets_empty_sections(
        campaigned_warehouse):
    with Warehouse(campaigned_warehouse.settings).connect() as conn:
        ann = conn.fetchall(PEOPLE)[0][0]
        again = [export_json(_export(conn, ann)) for _ in range(2)]
        quarantined_user = conn.scalar(
            "SELECT min(i.identifier_value) FROM marts.customer_identities i JOIN raw.quarantine q ON "
            "strpos(q.payload, '\"' || i.identifier_value || '\"') > 0 WHERE i.identifier_type = 'user_id'")
        working = resolve(conn, [("user_id", quarantined_user)])
        quarantined = build_export(conn, working, "req-access-2", NOW)["sections"]["quarantined"]
        unknown = build_export(conn, resolve(conn, [("email", "nobody@example.invalid")]), "req-access-3", NOW)
    assert again[0] == again[1]
    assert quarantined["sources"] == ["raw.quarantine"] and quarantined["rows"]
    assert all(row["reason"] and any(_holds(row["payload"], value) for _, value in working.identifiers)
               for row in quarantined["rows"])
    assert unknown["subject"] == {"requested": [{"type": "email", "value": "nobody@example.invalid"}],
                                  "customer_ids": []}
    assert list(unknown["sections"]) == list(SECTIONS)
    assert all(section["rows"] == [] for section in unknown["sections"].values())
    assert "raw.consent_events" in unknown["sections"]["consent_history"]["sources"]  # looked, found nothing
    assert "Mailroom holds nothing about you here." in render_html(unknown)


# Made during the campaigns run: times of the run's clock, message ids and unsubscribe links keyed by each build's
# own secret, the CRM table's path. Everything else in those sections, and every other section, must agree.
PER_BUILD = {"experiments": {"assigned_at", "recorded_at"},
             "messages": {"message_id", "headers_json", "html_body", "text_body", "rendered_at", "planned_at",
                          "sending_at", "finished_at", "provider_message_id"},
             "crm_sync": {"destination", "acknowledged_at"}}


@pytest.mark.postgres
def test_duckdb_and_postgresql_give_the_same_document(built_templates):
    documents = []
    for kind in ("duckdb", "postgres"):  # the session's builds, read only
        with Warehouse(built_templates(kind, "campaigns").settings).connect() as conn:
            documents.append(_export(conn, conn.fetchall(PEOPLE)[0][0]))
    duck, pg = documents
    assert duck["subject"] == pg["subject"]
    for name in SECTIONS:
        assert duck["sections"][name]["sources"] == pg["sections"][name]["sources"], name
        if name not in PER_BUILD:
            assert export_json(duck["sections"][name]) == export_json(pg["sections"][name]), name
            continue
        kept = [sorted(json.dumps({k: v for k, v in row.items() if k not in PER_BUILD[name]}, sort_keys=True)
                       for row in document["sections"][name]["rows"]) for document in documents]
        assert kept[0] == kept[1] and kept[0], name
    assert sum(len(section["rows"]) for section in duck["sections"].values()) > 50


def test_a_warehouse_before_its_first_build_gets_every_section_empty(tmp_path):
    with Warehouse(Settings(warehouse="duckdb", data_dir=tmp_path / "data")).connect() as conn:
        document = build_export(conn, resolve(conn, [("email", "ann@example.com")]), "req-access-4", NOW)
    assert document["sections"] == {name: {"sources": [], "rows": []} for name in SECTIONS}


def test_the_page_shows_values_as_text():
    hostile = "<script>alert('x')</script>"
    document = {
        "format": "mailroom.access_export", "version": 1, "request_id": "req-1", "generated_at": "2026-11-02T08:00:00Z",
        "subject": {"requested": [{"type": "email", "value": "ann@example.com"}], "customer_ids": ["cus_1"]},
        "about": {"recipients": ["SendGrid"]},
        "sections": {
            "profile": {"sources": ["marts.dim_customers"], "rows": [
                {"table": "marts.dim_customers", "customer_id": "cus_1", "first_name": hostile, "is_new": True}]},
            "messages": {"sources": ["ops.campaign_messages"], "rows": [
                {"table": "ops.campaign_messages", "subject": "Hi <b>Ann</b>",
                 "html_body": '<html><img src="https://tracker.example/o.gif"><a href="x">go</a></html>'}]},
            "events": {"sources": [], "rows": []},
        },
    }
    page = render_html(document)
    assert "<script" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;img src=&#34;https://tracker.example/o.gif&#34;&gt;" in page
    assert "Hi &lt;b&gt;Ann&lt;/b&gt;" in page and "<b>Ann" not in page
    assert "default-src 'none'" in page  # nothing in the page may load or run anything
    assert page.count("<table>") == 2 and "Mailroom holds nothing about you here." in page


def test_values_become_the_same_json_from_either_engine():
    assert plain(Decimal("12.50")) == "12.50" and plain(Decimal("7")) == 7 and plain(7) == 7
    assert plain(datetime(2026, 11, 2, 9, 30, tzinfo=timezone(timedelta(hours=1)))) == "2026-11-02T08:30:00.000000Z"
    assert plain(datetime(2026, 11, 2, 8, 0, 0, 5)) == "2026-11-02T08:00:00.000005Z"
    assert plain(0.1 + 0.2) == 0.3 and plain(-0.0) == 0.0 and plain(float("nan")) == "nan"
    assert plain(b"\x00\xff") == "00ff" and plain(True) is True and plain(None) is None


def test_an_export_folder_is_named_only_by_a_valid_request_id(tmp_path):
    with pytest.raises(ValueError, match="cannot name an export folder"):
        write_export(tmp_path, {"request_id": "../elsewhere", "sections": {}})
    assert not list(tmp_path.iterdir())
