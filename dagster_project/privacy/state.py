"""ops.privacy_requests: every privacy request Mailroom has received, its state and its deadline
(docs/design/privacy.md, section 3.2), and ops.privacy_request_rejections: every landing line that was not
a usable request, with the reason.

    received ──(the erasure or export runs)──> in_progress ──> completed
        │                                          └──> needs_review (an operator decides)
        └──────────────> closed <── (`close`: superseded by a new request, refused, withdrawn) ──┘

A request row holds keyed hashes of the identifiers it names (privacy/keys.py), never the identifiers: the
landing line keeps those until the request is done. Taking the same landing files in again changes
nothing; a request id sent again with other content is rejected, the first one stands. Each new request
is recorded in the audit chain (kind privacy_request: its id, type, due date and subject keys).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from dagster_project.privacy import audit
from dagster_project.privacy.keys import SubjectKeys
from dagster_project.privacy.requests import PrivacyRequest, Rejection, read_requests
from dagster_project.warehouse import Connection, Warehouse, columns, ensure_table

REQUESTS, REJECTIONS = "ops.privacy_requests", "ops.privacy_request_rejections"
REQUEST_COLUMNS = columns(
    "request_id:VARCHAR type:VARCHAR subject_keys_json:VARCHAR received_at:TIMESTAMP due_at:TIMESTAMP "
    "state:VARCHAR source_file:VARCHAR source_line:INTEGER content_sha256:VARCHAR recorded_at:TIMESTAMP "
    "updated_at:TIMESTAMP completed_at:TIMESTAMP lease_owner:VARCHAR lease_expires_at:TIMESTAMP summary_json:VARCHAR"
)
REJECTION_COLUMNS = columns("source_file:VARCHAR source_line:INTEGER line_sha256:VARCHAR reason:VARCHAR "
                            "recorded_at:TIMESTAMP")
RECEIVED, IN_PROGRESS, NEEDS_REVIEW, COMPLETED = "received", "in_progress", "needs_review", "completed"
CLOSED = "closed"
CLOSE_REASONS = ("superseded", "refused", "withdrawn")  # no free text: the reason goes into the audit chain
OPEN_STATES = (RECEIVED, IN_PROGRESS, NEEDS_REVIEW)
LANDING_FOLDER = "privacy"
REUSED = "request_id {request_id} was received before with other content; the first request stands (send a new id)"


@dataclass
class IntakeReport:
    files: int = 0
    new_requests: list[str] = field(default_factory=list)  # request ids
    already_known: int = 0
    rejected: list[Rejection] = field(default_factory=list)  # new rejections of this run


@dataclass(frozen=True)
class OpenRequest:
    request_id: str
    type: str
    state: str
    received_at: datetime
    due_at: datetime


def ensure_privacy_tables(conn: Connection) -> None:
    audit.ensure_audit_tables(conn)
    ensure_table(conn, REQUESTS, REQUEST_COLUMNS, [("request_id",)], audit.SEAL_LOCK)
    conn.add_missing_columns(REQUESTS, REQUEST_COLUMNS)
    ensure_table(conn, REJECTIONS, REJECTION_COLUMNS, [("source_file", "source_line", "line_sha256")], audit.SEAL_LOCK)


def take_in_requests(warehouse: Warehouse, landing_dir: Path, keys: SubjectKeys, now: datetime,
                     deadline_days: int) -> IntakeReport:
    """Read every landing privacy file and record the requests and rejections not seen before."""
    report = IntakeReport()
    folder = Path(landing_dir) / LANDING_FOLDER
    # Hidden files are still being written (the CLI and the receiver write .<name>.tmp, then rename).
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.name.endswith(".jsonl")) if folder.is_dir() else []
    for path in files:
        report.files += 1
        relative = path.relative_to(landing_dir).as_posix()
        requests, rejections = read_requests(path, relative, now)
        with warehouse.connect() as conn:
            ensure_privacy_tables(conn)
            for request in requests:
                outcome = _record_request(conn, request, keys, now, deadline_days)
                if outcome == "new":
                    report.new_requests.append(request.request_id)
                elif outcome == "known":
                    report.already_known += 1
                else:
                    rejections.append(Rejection(relative, request.source_line, request.content_sha256, outcome))
            for rejection in rejections:
                if conn.execute(
                        f"INSERT INTO {REJECTIONS} (source_file, source_line, line_sha256, reason, recorded_at) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        [rejection.source_file, rejection.source_line, rejection.line_sha256, rejection.reason, now]):
                    report.rejected.append(rejection)
    return report


def _record_request(conn: Connection, request: PrivacyRequest, keys: SubjectKeys, now: datetime,
                    deadline_days: int) -> str:
    """'new', 'known' (the same request again), or the reason it is refused."""
    known = conn.fetchall(f"SELECT content_sha256 FROM {REQUESTS} WHERE request_id = ?", [request.request_id])
    if known:
        return "known" if known[0][0] == request.content_sha256 else REUSED.format(request_id=request.request_id)
    subject_keys = sorted(keys.subject_key(kind, value) for kind, value in request.identifiers())
    due_at = request.received_at + timedelta(days=deadline_days)
    inserted = conn.execute(
        f"INSERT INTO {REQUESTS} ({', '.join(c.name for c in REQUEST_COLUMNS)}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL) ON CONFLICT DO NOTHING",
        [request.request_id, request.type, json.dumps(subject_keys), request.received_at, due_at, RECEIVED,
         request.source_file, request.source_line, request.content_sha256, now, now])
    if not inserted:  # a concurrent intake recorded it first
        return _record_request(conn, request, keys, now, deadline_days)
    audit.record(conn, "privacy_request", {"request_id": request.request_id, "type": request.type,
                                           "received_at": _iso(request.received_at), "due_at": _iso(due_at),
                                           "subject_keys": subject_keys}, now)
    return "new"


def open_requests(conn: Connection) -> list[OpenRequest]:
    if not conn.table_exists("ops", "privacy_requests"):
        return []
    marks = ", ".join("?" for _ in OPEN_STATES)
    return [OpenRequest(*row) for row in conn.fetchall(
        f"SELECT request_id, type, state, received_at, due_at FROM {REQUESTS} WHERE state IN ({marks}) "
        "ORDER BY due_at, request_id", list(OPEN_STATES))]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def close_request(conn: Connection, request_id: str, reason: str, now: datetime) -> str | None:
    """Close a request nobody is working on (received, or waiting for review) without carrying it out; None
    when done, else why not. An erasure already under way is finished, not closed: its proofs keep the person
    suppressed."""
    if reason not in CLOSE_REASONS:
        return f"the reason must be one of {', '.join(CLOSE_REASONS)}"
    closed = conn.execute(f"UPDATE {REQUESTS} SET state = ?, updated_at = ?, completed_at = ? WHERE request_id = ? "
                          "AND state IN (?, ?) AND lease_owner IS NULL",
                          [CLOSED, now, now, request_id, RECEIVED, NEEDS_REVIEW])
    if not closed:
        state = conn.fetchall(f"SELECT state FROM {REQUESTS} WHERE request_id = ?", [request_id])
        return (f"no request {request_id}" if not state else
                f"request {request_id} is {state[0][0]}: only a received request or one waiting for review closes")
    audit.record(conn, "privacy_request_closed", {"request_id": request_id, "reason": reason}, now)
    return None
