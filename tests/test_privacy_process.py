"""A whole erasure and an access request, on a copy of the session's campaigned sample (both engines): the
requests arrive as a landing file and are worked through (on PostgreSQL by two `privacy process` processes
started together, so exactly one holds each request; on DuckDB in two runs with HubSpot and SendGrid configured,
the first meeting a HubSpot outage: the request stays open with that step failed and is completed by the next
run, never before), and afterwards no table and no file Mailroom owns holds
any identifier of the erased person, the other person's export holds their data, every step ran once, the audit
chain verifies and names nobody, a message to the erased address is suppressed `erased` at the last look, and
their old CRM and CDP exports dropped again load nothing of them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.sources import SOURCES
from dagster_project.privacy.audit import verify
from dagster_project.privacy.process import privacy_context, process_requests
from dagster_project.privacy.rewrite import IdentifierMatcher, files_holding
from dagster_project.privacy.runner import STEPS
from dagster_project.privacy.steps import erasure_steps
from dagster_project.privacy.subjects import resolve, scan
from dagster_project.settings import load_activation_settings, privacy_export_dir, project_root
from dagster_project.warehouse import Warehouse
from reverse_etl.outgoing import OutgoingMessage
from reverse_etl.presend import last_look

from conftest import settings_environment
from doubles.hubspot_double import ACCESS_TOKEN, HubSpotDouble
from doubles.sendgrid_double import API_KEY, SendGridDouble

NOW = datetime.now(timezone.utc).replace(tzinfo=None)


def _two_customers(conn) -> tuple[str, str]:
    """Two customers with sent messages and a phone (the most places a person can be)."""
    return tuple(row[0] for row in conn.fetchall(
        "SELECT customer_id FROM ops.send_ledger WHERE customer_id IN (SELECT customer_id FROM "
        "marts.customer_identities WHERE identifier_type = 'phone') GROUP BY customer_id ORDER BY customer_id LIMIT 2"))


def _write_requests(landing: Path, ann_email: str, bob_email: str) -> None:
    folder = landing / "privacy"
    folder.mkdir(parents=True, exist_ok=True)
    received = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    lines = [{"request_id": "req-erase-ann", "type": "erase", "email": ann_email.upper(), "received_at": received},
             {"request_id": "req-access-bob", "type": "access", "email": bob_email, "received_at": received}]
    (folder / "requests.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def _old_exports_dropped_again_bring_nobody_back(settings, warehouse, working, old_exports: dict) -> None:
    """The CRM and CDP files as they were before the erasure, dropped again under new names: the person's
    records are dropped at ingest (counted, not quarantined); everyone else's are the duplicates they are."""
    assert set(old_exports) == {"crm", "cdp"}
    for source, content in old_exports.items():
        suffix = ".csv" if source == "crm" else ".jsonl"
        (settings.landing_dir / source / f"redelivered{suffix}").write_bytes(content)
        report = ingest_source(warehouse, SOURCES[source], settings.landing_dir)
        [loaded] = report.files_loaded
        assert loaded.rows_loaded == 0 and loaded.erased_subject > 0
    with warehouse.connect() as conn:
        assert scan(conn, working) == []


def _erase_through_a_hubspot_outage(settings, warehouse, email: str, monkeypatch) -> None:
    with HubSpotDouble() as hubspot, SendGridDouble() as sendgrid:
        for name, value in {"MAILROOM_CRM_DESTINATION": "hubspot", "MAILROOM_HUBSPOT_HOST": hubspot.url,
                            "MAILROOM_HUBSPOT_ACCESS_TOKEN": ACCESS_TOKEN, "MAILROOM_DESTINATIONS": "sendgrid",
                            "MAILROOM_SENDGRID_HOST": sendgrid.url, "MAILROOM_SENDGRID_API_KEY": API_KEY}.items():
            monkeypatch.setenv(name, value)
        hubspot.add_contact(email)
        sendgrid.add_contact(email)
        hubspot.script(["503"])
        first = process_requests(privacy_context(settings))
        with warehouse.connect() as conn:
            state = conn.scalar("SELECT state FROM ops.privacy_requests WHERE request_id = 'req-erase-ann'")
            hubspot_step = conn.fetchall(f"SELECT state, attempts FROM {STEPS} WHERE request_id = 'req-erase-ann' "
                                         "AND step IN ('hubspot', 'forget') ORDER BY step")
        assert state == "in_progress" and hubspot_step == [("pending", 0), ("failed", 1)], first.lines()
        assert hubspot.contacts and sendgrid.global_suppressions == {email.lower()} and not sendgrid.contacts
        again_too_soon = process_requests(privacy_context(settings))  # backing off: nothing is tried
        assert [o.steps_done for o in again_too_soon.outcomes] == [[s.name for s in erasure_steps()
                                                                    if s.name not in ("hubspot", "forget")]]
        later = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(minutes=2)
        second = process_requests(privacy_context(settings, clock=lambda: later))
        assert [o.state for o in second.outcomes] == ["completed"], second.lines()
        assert hubspot.contacts == {} and hubspot.gdpr_deletes[-1] == {"objectId": email.lower(), "idProperty": "email"}


def test_an_erasure_leaves_no_trace_and_an_access_request_exports_the_person(campaigned_warehouse, monkeypatch):
    settings = campaigned_warehouse.settings
    warehouse = Warehouse(settings)
    with warehouse.connect() as conn:
        ann, bob = _two_customers(conn)
        ann_email, bob_email = (conn.scalar("SELECT email FROM marts.dim_customers WHERE customer_id = ?", [c])
                                for c in (ann, bob))
        ann_working = resolve(conn, [("email", ann_email)])
        bob_messages = conn.scalar("SELECT count(*) FROM ops.send_ledger WHERE customer_id = ?", [bob])
    matcher = IdentifierMatcher(ann_working.identifiers)
    roots = [settings.landing_dir, settings.previews_dir]
    held = files_holding(roots, matcher)
    assert held, "the person is in the landing files to begin with"
    old_exports = {source: Path(hit.path).read_bytes() for hit in held for source in ("crm", "cdp")
                   if Path(hit.path).parent.name == source}
    _write_requests(settings.landing_dir, ann_email, bob_email)

    if settings.warehouse == "postgres":  # two runs at once: each request is worked by one of them
        environment = {**settings_environment(settings), "PATH": "/usr/bin:/bin"}
        runs = [subprocess.Popen([sys.executable, "-m", "dagster_project.privacy", "process"], env=environment,
                                 cwd=project_root(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for _ in range(2)]
        outputs = [run.communicate(timeout=600)[0] for run in runs]
        assert all(run.returncode == 0 for run in runs), outputs
    else:
        _erase_through_a_hubspot_outage(settings, warehouse, ann_email, monkeypatch)

    with warehouse.connect() as conn:
        states = dict(conn.fetchall("SELECT request_id, state FROM ops.privacy_requests"))
        steps = conn.fetchall(f"SELECT step, state, attempts FROM {STEPS} WHERE request_id = 'req-erase-ann' "
                              "ORDER BY step")
        remaining = scan(conn, ann_working)
        bob_after = conn.scalar("SELECT count(*) FROM ops.send_ledger WHERE customer_id = ?", [bob])
        chain = verify(conn)
        entries = [row[0] for row in conn.fetchall("SELECT payload_json FROM ops.audit_log WHERE kind IN "
                                                   "('erasure_started', 'erasure', 'access')")]
        working_left = conn.scalar("SELECT count(*) FROM ops.privacy_subjects")
        look = last_look(conn, [OutgoingMessage("<new@mail.example.com>", "weekly_picks", "a", ann_email.title(), "s",
                                                "<p>h</p>", "t", customer_id="c-new")],
                         datetime.now(timezone.utc).replace(tzinfo=None), 0, timedelta(days=1))
    assert states == {"req-erase-ann": "completed", "req-access-bob": "completed"}
    assert {step for step, _, _ in steps} == {step.name for step in erasure_steps()}
    retried = {"hubspot"} if settings.warehouse == "duckdb" else set()
    assert all(attempts == (2 if step in retried else 1) and state in ("done", "skipped")
               for step, state, attempts in steps), steps
    assert remaining == [], remaining
    assert files_holding([*roots, privacy_export_dir(settings.data_dir), load_activation_settings().outbox_dir],
                         matcher) == []
    assert bob_after == bob_messages > 0
    assert chain.ok, chain.describe()
    assert len(entries) == 3 and not any(value in entry for entry in entries for _, value in ann_working.identifiers)
    assert working_left == 0
    assert look.suppressed == {"<new@mail.example.com>": "erased"}

    _old_exports_dropped_again_bring_nobody_back(settings, warehouse, ann_working, old_exports)

    export = json.loads((privacy_export_dir(settings.data_dir) / "req-access-bob" / "access.json").read_text())
    assert export["subject"]["customer_ids"] == [bob]
    assert export["sections"]["messages"]["rows"]
    assert ann_email not in json.dumps(export)
