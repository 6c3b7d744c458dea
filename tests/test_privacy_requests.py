"""Privacy request intake: each malformed line is rejected with a reason that names the field and never its
value, the next line still counts, any bytes at all are a request or a rejection; requests are recorded once
with keyed hashes (never the identifiers), their deadline, and an audit entry; the deadline check warns a week
ahead and fails once a request is overdue."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta

import dagster as dg
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dagster_project.defs.privacy.assets import privacy_requests
from dagster_project.privacy.keys import SubjectKeys
from dagster_project.privacy.requests import parse_request, read_requests
from dagster_project.privacy.state import take_in_requests
from dagster_project.resources import WarehouseResource
from dagster_project.settings import project_root

from conftest import settings_environment

NOW = datetime(2026, 12, 7, 12, 0)
KEYS = SubjectKeys(b"k" * 32)
GOOD = {"request_id": "req-1", "type": "erase", "email": " Ann@Example.com", "received_at": "2026-12-01T09:00:00+01:00"}


@pytest.mark.parametrize(("change", "reason"), [
    ({"request_id": "ann@example.com"}, "request_id must be 1-64 letters"),
    ({"request_id": 7}, "request_id must be"),
    ({"type": "delete"}, "type must be erase or access (req-1)"),
    ({"email": None}, "needs an email or a user_id"),
    ({"email": "ann.example.com"}, "email is not an address: not of the form local@domain (req-1)"),
    ({"email": 42}, "email must be a string"),
    ({"user_id": "u\x00"}, "user_id must be a non-empty string"),
    ({"user_id": "x" * 256}, "at most 255 characters"),
    ({"received_at": "2026-12-01T09:00:00"}, "received_at must be an ISO 8601 time with its UTC offset"),
    ({"received_at": "yesterday"}, "received_at must be"),
    ({"received_at": "2026-12-07T12:30:00+00:00"}, "received_at is in the future"),
    ({"mail": "x"}, "unknown field(s) 'mail'"),
    ({"ann@example.com": "x"}, "unknown field(s) (a name that is not a plain word)"),
])
def test_a_malformed_request_is_refused_with_a_reason_that_never_repeats_an_address(change, reason):
    record = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    request, problem = parse_request(record, "privacy/a.jsonl", 1, NOW)
    assert request is None and reason in problem
    assert "ann@example.com" not in problem.lower()


def test_a_valid_request_is_normalized_to_utc_and_a_lower_case_address():
    request, problem = parse_request(GOOD, "privacy/a.jsonl", 3, NOW)
    assert problem is None
    assert (request.email, request.received_at, request.source_line) == ("ann@example.com", datetime(2026, 12, 1, 8), 3)
    assert request.identifiers() == [("email", "ann@example.com")]


@hypothesis_settings(max_examples=60, deadline=None)
@given(lines=st.lists(st.one_of(st.binary(max_size=200), st.just(json.dumps(GOOD).encode())), min_size=1, max_size=6))
def test_any_bytes_are_a_request_or_a_rejection_never_a_crash(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("privacy") / "requests.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    accepted, rejected = read_requests(path, "privacy/requests.jsonl", NOW)
    counted = {r.source_line for r in accepted} | {r.source_line for r in rejected}
    non_blank = {number for number, line in enumerate(b"\n".join(lines).split(b"\n"), start=1) if line.strip()}
    assert counted == non_blank  # every line that holds anything is accounted for, once
    assert all(r.reason and "ann@example.com" not in r.reason.lower() for r in rejected)


def write(landing, name: str, records: list) -> None:
    folder = landing / "privacy"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


def test_requests_are_recorded_once_with_keyed_hashes_a_deadline_and_an_audit_entry(warehouse, settings):
    access = {"request_id": "req-2", "type": "access", "user_id": "u_17", "received_at": "2026-12-02T10:00:00Z"}
    write(settings.landing_dir, "a.jsonl", [GOOD, "{not json", access, GOOD])
    write(settings.landing_dir, "b.jsonl", [{**GOOD, "type": "access"}])  # req-1 reused with other content
    report = take_in_requests(warehouse, settings.landing_dir, KEYS, NOW, deadline_days=30)
    assert report.new_requests == ["req-1", "req-2"] and report.already_known == 1
    assert [(r.source_file, r.source_line) for r in report.rejected] == [("privacy/a.jsonl", 2), ("privacy/b.jsonl", 1)]
    assert "received before with other content" in report.rejected[1].reason
    with warehouse.connect() as conn:
        rows = conn.fetchall("SELECT request_id, type, state, due_at, subject_keys_json FROM ops.privacy_requests "
                             "ORDER BY request_id")
        stored = " ".join(str(v) for table in ("privacy_requests", "privacy_request_rejections", "audit_pending")
                          for row in conn.fetchall(f"SELECT * FROM ops.{table}") for v in row)
        entries = [json.loads(r[0]) for r in conn.fetchall(
            "SELECT payload_json FROM ops.audit_pending WHERE kind = 'privacy_request' ORDER BY payload_json")]
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [("req-1", "erase", "received", datetime(2026, 12, 31, 8)),
                                                         ("req-2", "access", "received", datetime(2027, 1, 1, 10))]
    assert json.loads(rows[0][4]) == [KEYS.subject_key("email", "ann@example.com")]
    assert "ann@example.com" not in stored.lower() and "u_17" not in stored
    assert [e["request_id"] for e in entries] == ["req-1", "req-2"] and entries[1]["subject_keys"] == \
        [KEYS.subject_key("user_id", "u_17")]
    again = take_in_requests(warehouse, settings.landing_dir, KEYS, NOW, deadline_days=30)
    assert (again.new_requests, again.already_known, again.rejected) == ([], 3, [])  # nothing new, nothing twice


@pytest.mark.parametrize("warehouse_kind", ["duckdb"])
@pytest.mark.parametrize(("received_days_ago", "passed", "severity"), [
    (10, True, dg.AssetCheckSeverity.WARN), (25, False, dg.AssetCheckSeverity.WARN),
    (31, False, dg.AssetCheckSeverity.ERROR)])
def test_the_deadline_check_warns_a_week_ahead_and_fails_when_overdue(settings, received_days_ago, passed, severity):
    received = datetime.now().astimezone() - timedelta(days=received_days_ago)
    write(settings.landing_dir, "a.jsonl", [{**GOOD, "received_at": received.isoformat()}])
    result = dg.materialize([privacy_requests], resources={"warehouse": WarehouseResource.from_settings(settings)})
    [check] = result.get_asset_check_evaluations()
    assert (check.passed, check.severity) == (passed, severity)


def test_the_command_line_writes_a_request_the_intake_takes_in(settings):
    environment = {**settings_environment(settings), "PATH": "/usr/bin:/bin"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dagster_project.privacy", *args], env=environment,
                              cwd=project_root(), capture_output=True, text=True)

    refused = cli("request", "erase", "--email", "not an address")
    assert refused.returncode == 2 and "email is not an address" in refused.stderr
    written = cli("request", "erase", "--email", "ann@example.com", "--request-id", "req-9")
    assert written.returncode == 0, written.stderr
    taken = cli("intake")
    assert taken.returncode == 0 and "1 new requests (req-9)" in taken.stdout, taken.stdout + taken.stderr
    status = cli("status")
    assert "req-9  erase   received" in status.stdout and "1 open requests" in status.stdout


def test_an_erasure_of_a_shared_address_waits_for_review_and_an_operator_can_close_it(mailroom_env, warehouse):
    """The smallest world that makes it fail: identity resolution's audit says the address is shared by two
    user ids. Erasing it would erase both, so the request stops before writing anything about the person."""
    from dagster_project.privacy.process import privacy_context, process_requests
    from dagster_project.privacy.state import close_request

    with warehouse.connect() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS marts")
        conn.execute("CREATE TABLE marts.identity_resolution_audit (identifier_type VARCHAR, identifier_value VARCHAR, "
                     "reason VARCHAR)")
        conn.execute("INSERT INTO marts.identity_resolution_audit VALUES ('email', 'team@example.com', "
                     "'shared_by_user_ids')")
    folder = mailroom_env.landing_dir / "privacy"
    folder.mkdir(parents=True)
    (folder / "requests.jsonl").write_text(json.dumps({"request_id": "req-team", "type": "erase", "email":
                                                       "Team@Example.com", "received_at": "2026-11-30T09:00:00Z"}))
    report = process_requests(privacy_context(mailroom_env))
    [outcome] = report.outcomes
    assert outcome.state == "needs_review" and "shared by several people" in outcome.failed["resolve"]
    assert "team@example.com" not in " ".join(report.lines()).lower()
    with warehouse.connect() as conn:
        assert not conn.table_exists("ops", "erasure_proofs")  # nothing was done about anyone
        assert conn.fetchall("SELECT step, state FROM ops.privacy_request_steps WHERE state <> 'pending'") == [
            ("resolve", "failed")]
    assert process_requests(privacy_context(mailroom_env)).outcomes == []  # waiting for review: left alone

    closed = subprocess.run([sys.executable, "-m", "dagster_project.privacy", "close", "req-team", "--reason",
                             "superseded"], env={**settings_environment(mailroom_env), "PATH": "/usr/bin:/bin"},
                            cwd=project_root(), capture_output=True, text=True)
    assert closed.returncode == 0 and "closed (superseded)" in closed.stdout, closed.stderr
    with warehouse.connect() as conn:
        assert "is closed" in close_request(conn, "req-team", "superseded", datetime(2026, 12, 1))
        assert "must be one of" in close_request(conn, "req-team", "because", datetime(2026, 12, 1))
        entries = [json.loads(row[0]) for row in conn.fetchall(
            "SELECT payload_json FROM ops.audit_pending WHERE kind = 'privacy_request_closed'")]
        assert conn.scalar("SELECT state FROM ops.privacy_requests WHERE request_id = 'req-team'") == "closed"
    assert entries == [{"request_id": "req-team", "reason": "superseded"}]
