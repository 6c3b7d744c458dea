"""The sync run: identify the target, plan the diff against its snapshot, send due rows in batches,
and record per batch what the destination acknowledged (snapshot) and refused (rejections), committed
before the next batch.

A target that holds fewer rows than its snapshot says were acknowledged (a dropped or emptied CRM
table) has lost rows the diff would never send again: its snapshot is dropped and every row is sent.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from dagster_project.warehouse import Warehouse
from reverse_etl.sync import plan as planning
from reverse_etl.sync import state
from reverse_etl.sync.destinations.base import UPDATE_ONLY, UPSERT, CrmDestination, SyncRow
from reverse_etl.sync.errors import DestinationUnavailable, RetriesExhausted, SyncError
from reverse_etl.sync.pacing import Pacer
from reverse_etl.sync.relation import describe
from reverse_etl.sync.report import SyncReport
from reverse_etl.throttle import CircuitBreaker

REJECTION_SAMPLES = 20


class Syncer:
    def __init__(self, warehouse: Warehouse, destination: CrmDestination, pacer: Pacer, *, mode: str = UPSERT,
                 batch_size: int = 0, dry_run: bool = False, log: Callable[[str], None] = print,
                 failed_batches_to_stop: int = 3):
        if mode not in (UPSERT, UPDATE_ONLY):
            raise SyncError(f"sync mode {mode!r} must be {UPSERT} or {UPDATE_ONLY}")
        self.warehouse = warehouse
        self.destination = destination
        self.pacer = pacer
        self.mode = mode
        self.batch_size = min(batch_size, destination.max_batch) if batch_size > 0 else destination.max_batch
        self.dry_run = dry_run
        self.log = log
        # Consecutive batches that exhaust their retries before the run gives up (the destination is down).
        self.breaker = CircuitBreaker(failed_batches_to_stop, reset_seconds=float("inf"))

    def sync(self, model: str, key: Sequence[str]) -> SyncReport:
        started, clock = _now(), time.monotonic()
        with self.warehouse.session(commit=not self.dry_run) as conn:
            state.ensure_state(conn)
            relation = describe(conn, model, key)
            report = SyncReport(uuid.uuid4().hex, self.destination.name, relation.name, self.mode, self.dry_run,
                                planning.SyncPlan(relation.name, self.destination.name))
            if not self.dry_run:  # recorded first, so a target that cannot even be identified shows up too
                state.start_run(conn, report.run_id, self.destination.name, relation.name, self.mode, False, started)
                conn.commit()
            try:
                self._plan(conn, relation, report)
                if not self.dry_run and report.planned:
                    self.destination.prepare(relation)
                    self._send(conn, relation, report)
            except BaseException as error:  # recorded in ops.sync_runs, then raised
                report.error = (str(error) if isinstance(error, (DestinationUnavailable, SyncError))
                                else f"interrupted: {error!r}")
                raise
            finally:
                self._finish(conn, report, clock)
        return report

    def _plan(self, conn, relation, report: SyncReport) -> None:
        report.target = self.destination.identity()
        report.target_reset = self._reset_if_emptied(conn, relation, report.target)
        report.plan = planning.build_plan(conn, relation, report.target)
        if not self.dry_run:
            planning.clear_stale_rejections(conn, relation, report.target)
            conn.commit()

    def _reset_if_emptied(self, conn, relation, target: str) -> str | None:
        """Drop the snapshot of a target that lost acknowledged rows; returns why, or None."""
        acknowledged = state.acknowledged_count(conn, target, relation.name)
        if not acknowledged:
            earlier = state.acknowledged_count(conn, self.destination.name, relation.name)
            if earlier:
                self.log(f"{target} has no snapshot yet; the {earlier:,} rows acknowledged before targets were "
                         f"identified (kept under '{self.destination.name}') do not count for it: every row is sent")
            return None
        held = self.destination.rows_held()
        if held is None or held >= acknowledged:
            return None
        state.forget(conn, target, relation.name)
        reason = (f"{target} holds {held:,} rows but {acknowledged:,} were acknowledged: the target was emptied "
                  "or replaced, so every row is sent again")
        self.log(reason)
        return reason

    def _finish(self, conn, report: SyncReport, clock: float) -> None:
        report.requests, report.retries = self.pacer.requests, self.pacer.retries
        report.seconds = time.monotonic() - clock
        if not self.dry_run:
            report.failed = report.planned - report.acknowledged - report.rejected - report.not_in_destination
            conn.rollback()  # nothing half-done from an interrupted batch
        planning.drop_pending(conn)
        if not self.dry_run:
            state.finish_run(conn, report.run_id, _run_values(report))
            conn.commit()
        self.destination.close()
        for line in report.summary_lines():
            self.log(line)

    def _send(self, conn, relation, report: SyncReport) -> None:
        name, model, target = self.destination.name, relation.name, report.target
        after = 0
        while batch := planning.due_rows(conn, relation, after, self.batch_size):
            after = batch[-1][0]
            rows = [SyncRow(key, row_hash, values) for _, key, row_hash, values in batch]
            report.batches += 1
            try:
                if self.mode == UPDATE_ONLY:
                    known = self.destination.existing(rows)
                    report.not_in_destination += len(rows) - len(known)
                    rows = [row for row in rows if row.key in known]
                report.sent += len(rows)
                result = self.destination.write(rows, self.mode) if rows else None
            except RetriesExhausted as error:
                report.batches_failed += 1
                self.log(f"batch {report.batches} of {model} left for the next run: {error}")
                self.breaker.record_failure()
                if not self.breaker.allows():
                    report.error = (f"{self.breaker.threshold} batches in a row failed; {name} looks unavailable, "
                                    "the remaining rows are sent by the next run")
                    return
                continue
            self.breaker.record_success()
            if result is None:
                continue
            hashes = {row.key: row.row_hash for row in rows}
            now = _now()
            state.acknowledge(conn, target, model, {k: hashes[k] for k in result.acknowledged}, now)
            state.reject(conn, target, model, {k: (hashes[k], reason) for k, reason in result.rejected.items()}, now)
            conn.commit()
            report.acknowledged += len(result.acknowledged)
            report.rejected += len(result.rejected)
            for key, reason in list(result.rejected.items())[:max(0, REJECTION_SAMPLES - len(report.rejections))]:
                report.rejections[key] = reason

def _run_values(report: SyncReport) -> dict:
    return {
        "destination": report.target or report.destination,
        "finished_at": _now(), "rows_planned": report.planned, "rows_sent": report.sent,
        "rows_acknowledged": report.acknowledged, "rows_rejected": report.rejected, "rows_skipped": report.skipped,
        "rows_not_in_destination": report.not_in_destination, "rows_failed": report.failed,
        "rows_removed_from_model": report.plan.removed_from_model, "batches": report.batches,
        "batches_failed": report.batches_failed, "seconds": round(report.seconds, 3), "error": report.error,
    }


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
