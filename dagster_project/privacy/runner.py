"""Working through open privacy requests, one recorded step at a time (docs/design/privacy.md, 3.2, 3.3, 3.6).

    received ──lease──> in_progress ──every step done──> completed
                           │  ^
                           │  └── a failed step keeps its error and is tried again at next_attempt_at
                           └──> needs_review (a requested identifier is shared by several people)

A run leases each request it works on (ops.privacy_requests.lease_owner / lease_expires_at): a second run
started at the same time finds it leased and leaves it, and a crashed run's lease expires so the next run
takes over. Each step has a row in ops.privacy_request_steps, (request_id, step) unique; it turns `done`
only after its work has committed, so a re-run repeats only unfinished steps, and each step is idempotent
for the crash between its work and its row. A failed step backs off (1 minute x 2^attempts, at most 6 hours)
and is never skipped: the request completes only when every step is done. A failed step at a provider does
not hold up the steps after it that do not need it; a failed step in Mailroom's own data does.

The steps themselves live in privacy/steps.py.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dagster_project.privacy import audit
from dagster_project.privacy.state import COMPLETED, IN_PROGRESS, NEEDS_REVIEW, RECEIVED, REQUESTS
from dagster_project.warehouse import Column, Connection, Warehouse, columns, ensure_table

STEPS = "ops.privacy_request_steps"
STEP_COLUMNS = columns(
    "request_id:VARCHAR step:VARCHAR state:VARCHAR attempts:INTEGER next_attempt_at:TIMESTAMP last_error:VARCHAR "
    "detail_json:VARCHAR owner:VARCHAR done_at:TIMESTAMP updated_at:TIMESTAMP"
) + (Column("seconds", "DOUBLE PRECISION"),)  # how long the step's successful attempt took
PENDING, DONE, FAILED, SKIPPED = "pending", "done", "failed", "skipped"
PAUSED = "paused"  # an outcome only: the run goes on with the request after its other requests' steps
LEASE = timedelta(minutes=30)
FIRST_BACKOFF, MAX_BACKOFF = timedelta(minutes=1), timedelta(hours=6)


class StepFailed(Exception):
    """A step that could not finish; the message must name no identifier. `redo` names earlier steps to run
    again (the verification found what they should have removed)."""

    def __init__(self, message: str, redo: tuple[str, ...] = ()):
        super().__init__(message)
        self.redo = redo


class NeedsReview(Exception):
    """The request cannot go on without an operator's decision (the message says which)."""


class Skipped(Exception):
    """The step has nothing to do here for a lasting reason (a destination that is not configured)."""


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable  # (context, request) -> dict of counts
    blocking: bool = True  # False: a failure here lets the later steps that do not need it go on
    final: bool = False  # runs only once every step before it is done (it destroys what a retry would need)


@dataclass
class RequestOutcome:
    request_id: str
    type: str
    state: str
    steps_done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # step -> error
    counts: dict[str, dict] = field(default_factory=dict)  # step -> its counts


@dataclass
class OpenRequestRow:
    request_id: str
    type: str
    state: str
    subject_keys: list[str]
    source_file: str
    source_line: int
    content_sha256: str
    received_at: datetime
    due_at: datetime


def run_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def ensure_step_table(conn: Connection) -> None:
    ensure_table(conn, STEPS, STEP_COLUMNS, [("request_id", "step")], audit.SEAL_LOCK)


def workable_requests(conn: Connection, now: datetime) -> list[OpenRequestRow]:
    """Open requests a run may take now: access requests first (an export is quick, and one received before an
    erasure must see the data), then by deadline."""
    rows = conn.fetchall(
        f"SELECT request_id, type, state, subject_keys_json, source_file, source_line, content_sha256, received_at, "
        f"due_at FROM {REQUESTS} WHERE state IN (?, ?) AND (lease_owner IS NULL OR lease_expires_at < ?) "
        "ORDER BY CASE WHEN type = 'access' THEN 0 ELSE 1 END, received_at, request_id",
        [RECEIVED, IN_PROGRESS, now])
    return [OpenRequestRow(r[0], r[1], r[2], json.loads(r[3]), *r[4:]) for r in rows]


def take_lease(conn: Connection, request_id: str, owner: str, now: datetime) -> bool:
    return conn.execute(
        f"UPDATE {REQUESTS} SET lease_owner = ?, lease_expires_at = ?, state = ?, updated_at = ? "
        "WHERE request_id = ? AND state IN (?, ?) AND (lease_owner IS NULL OR lease_expires_at < ? OR lease_owner = ?)",
        [owner, now + LEASE, IN_PROGRESS, now, request_id, RECEIVED, IN_PROGRESS, now, owner]) == 1


def _holds_lease(conn: Connection, request_id: str, owner: str, now: datetime) -> bool:
    """Renew the lease, or learn that another run took it over (ours expired)."""
    return conn.execute(f"UPDATE {REQUESTS} SET lease_expires_at = ?, updated_at = ? "
                        "WHERE request_id = ? AND lease_owner = ? AND state = ?",
                        [now + LEASE, now, request_id, owner, IN_PROGRESS]) == 1


def release_lease(conn: Connection, request_id: str, owner: str, state: str | None = None,
                  now: datetime | None = None, summary: dict | None = None) -> None:
    sets, values = ["lease_owner = NULL", "lease_expires_at = NULL"], []
    if state:
        sets += ["state = ?", "updated_at = ?"]
        values += [state, now]
    if state == COMPLETED:
        sets += ["completed_at = ?", "summary_json = ?"]
        values += [now, json.dumps(summary or {}, sort_keys=True)]
    conn.execute(f"UPDATE {REQUESTS} SET {', '.join(sets)} WHERE request_id = ? AND lease_owner = ?",
                 [*values, request_id, owner])


def step_rows(conn: Connection, request_id: str) -> dict[str, tuple]:
    """step -> (state, attempts, next_attempt_at, last_error, detail)."""
    return {step: (state, attempts, next_at, error, json.loads(detail) if detail else {})
            for step, state, attempts, next_at, error, detail in conn.fetchall(
                f"SELECT step, state, attempts, next_attempt_at, last_error, detail_json FROM {STEPS} "
                "WHERE request_id = ?", [request_id])}


def run_request(warehouse: Warehouse, context, request: OpenRequestRow, steps: list[Step], owner: str,
                clock: Callable[[], datetime], until: str | None = None) -> RequestOutcome:
    """Run the request's unfinished steps in order under its lease (taken by the caller). With `until`, stop
    before that step and keep the lease (state PAUSED): the caller goes on with the request later in the run."""
    outcome = RequestOutcome(request.request_id, request.type, IN_PROGRESS)
    with warehouse.connect() as conn:
        ensure_step_table(conn)
        for step in steps:
            conn.execute(f"INSERT INTO {STEPS} (request_id, step, state, attempts, updated_at) VALUES (?, ?, ?, 0, ?) "
                         "ON CONFLICT DO NOTHING", [request.request_id, step.name, PENDING, clock()])
        known = step_rows(conn, request.request_id)
    blocked = False
    for step in steps:
        if step.name == until:
            outcome.state = PAUSED
            return outcome
        state, attempts, next_at, error, detail = known[step.name]
        if state in (DONE, SKIPPED):
            outcome.steps_done.append(step.name)
            outcome.counts[step.name] = detail
            continue
        now = clock()
        unfinished = len(outcome.steps_done) < steps.index(step)
        if blocked or (step.final and unfinished) or (next_at is not None and next_at > now):
            if error:
                outcome.failed[step.name] = error
            blocked = blocked or step.blocking
            continue
        with warehouse.connect() as conn:
            if not _holds_lease(conn, request.request_id, owner, now):
                outcome.state = "lease_lost"
                return outcome
        started = time.perf_counter()
        try:
            counts, new_state = step.run(context, request) or {}, DONE
        except Skipped as reason:
            counts, new_state = {"skipped": str(reason)}, SKIPPED
        except NeedsReview as reason:
            with warehouse.connect() as conn:
                _fail(conn, request.request_id, step.name, str(reason), attempts, clock(), retry=False)
                release_lease(conn, request.request_id, owner, NEEDS_REVIEW, clock())
            outcome.state, outcome.failed[step.name] = NEEDS_REVIEW, str(reason)
            return outcome
        except StepFailed as failure:
            with warehouse.connect() as conn:
                _fail(conn, request.request_id, step.name, str(failure), attempts, clock())
                for earlier in failure.redo:
                    conn.execute(f"UPDATE {STEPS} SET state = ?, updated_at = ? WHERE request_id = ? AND step = ?",
                                 [PENDING, clock(), request.request_id, earlier])
            outcome.failed[step.name] = str(failure)
            blocked = blocked or step.blocking
            continue
        with warehouse.connect() as conn:
            conn.execute(f"UPDATE {STEPS} SET state = ?, attempts = attempts + 1, next_attempt_at = NULL, "
                         "last_error = NULL, detail_json = ?, owner = ?, done_at = ?, updated_at = ?, seconds = ? "
                         "WHERE request_id = ? AND step = ?",
                         [new_state, json.dumps(counts, sort_keys=True), owner, clock(), clock(),
                          round(time.perf_counter() - started, 3), request.request_id, step.name])
        outcome.steps_done.append(step.name)
        outcome.counts[step.name] = counts
    if len(outcome.steps_done) == len(steps):
        outcome.state = COMPLETED
    with warehouse.connect() as conn:
        if outcome.state == COMPLETED:
            release_lease(conn, request.request_id, owner, COMPLETED, clock(), outcome.counts)
        else:
            release_lease(conn, request.request_id, owner)
    return outcome


def _fail(conn: Connection, request_id: str, step: str, error: str, attempts: int, now: datetime,
          retry: bool = True) -> None:
    backoff = min(FIRST_BACKOFF * (2 ** attempts), MAX_BACKOFF)
    conn.execute(f"UPDATE {STEPS} SET state = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = ?, "
                 "updated_at = ? WHERE request_id = ? AND step = ?",
                 [FAILED, now + backoff if retry else None, error[:2000], now, request_id, step])
