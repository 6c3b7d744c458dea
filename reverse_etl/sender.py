"""Hand a campaign's rendered messages to the destination chain, exactly once, through the ledger.

One pass: settle what an interrupted run left in `sending` (reconcile.py), plan the new messages,
then page through the planned ones: suppress what the latest data forbids (presend.py), hold back
what is not due, and hand the rest over in batches - pacing each destination with a token bucket,
retrying transient failures with backoff, and failing over when a circuit breaker opens.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from dagster_project.warehouse import Connection, Warehouse
from reverse_etl import ledger
from reverse_etl.destinations.base import BatchResult, DeliveryError, DestinationUnavailable, PayloadTooLarge
from reverse_etl.ledger import ACCEPTED, FAILED, PLANNED, SENDING, SUPPRESSED
from reverse_etl.outgoing import OutgoingMessage
from reverse_etl.presend import delivery_time, suppression_reasons
from reverse_etl.reconcile import reconcile
from reverse_etl.throttle import Backoff, CircuitBreaker, TokenBucket


@dataclass(frozen=True)
class SendPolicy:
    frequency_cap: int = 3  # per customer per 7 days, across campaigns; 0 = no cap
    quiet_hours: tuple[int, int] | None = (21, 8)
    expire_after: timedelta = timedelta(hours=48)
    reconcile_after: timedelta = timedelta(minutes=30)
    max_attempts: int = 5  # per message and destination in one run
    page_size: int = 1000


@dataclass
class Route:
    """A destination with its own pacing and protection."""

    destination: object  # a reverse_etl.destinations.base.Destination
    bucket: TokenBucket
    breaker: CircuitBreaker
    max_batch: int = 0  # shrinks for the rest of the run after a 413

    def __post_init__(self):
        self.max_batch = self.max_batch or self.destination.max_batch

    @property
    def name(self) -> str:
        return self.destination.name


@dataclass
class SendReport:
    campaign_id: str
    dry_run: bool = False
    planned: int = 0  # new ledger rows this pass
    requeued: int = 0  # failed-retryable rows given another chance
    accepted: Counter = field(default_factory=Counter)  # destination -> messages
    suppressed: Counter = field(default_factory=Counter)  # reason -> messages
    failed: Counter = field(default_factory=Counter)  # reason -> messages
    deferred: int = 0  # not due yet for the destination: still planned
    next_due_at: datetime | None = None
    unknown: int = 0  # outcome unknown this pass: left in sending, reconciled next run
    reconciled: Counter = field(default_factory=Counter)
    requests: Counter = field(default_factory=Counter)  # destination -> requests
    retries: int = 0
    switches: list[str] = field(default_factory=list)
    ledger: dict[str, int] = field(default_factory=dict)  # state -> rows for the campaign, after the pass
    seconds: float = 0.0

    @property
    def handed_over(self) -> int:
        return sum(self.accepted.values())


class AllDestinationsDown(RuntimeError):
    pass


class Sender:
    def __init__(self, warehouse: Warehouse, routes: Sequence[Route], policy: SendPolicy, now: datetime,
                 finders: dict | None = None, dry_run: bool = False, backoff: Backoff | None = None,
                 sleep: Callable[[float], None] = time.sleep, wall_clock: Callable[[], datetime] | None = None,
                 log: Callable[[str], None] = lambda message: None):
        if not routes:
            raise ValueError("no destination configured: set MAILROOM_DESTINATIONS (e.g. outbox or sendgrid,smtp)")
        self.warehouse = warehouse
        self.routes = list(routes)
        self.policy = policy
        self.now = now  # the scheduling clock: due times, quiet hours, frequency window
        self.finders = finders or {}
        self.dry_run = dry_run
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.wall_clock = wall_clock or (lambda: datetime.now(timezone.utc).replace(tzinfo=None))
        self.log = log
        self._tries: Counter = Counter()  # (destination, message_id) -> failed attempts this run
        self._last_route: str | None = None
        self._last_error = ""
        self._exhausted = False  # every destination used up its attempts: stop trying this run

    def send_campaign(self, campaign_id: str) -> SendReport:
        started = time.perf_counter()
        report = SendReport(campaign_id=campaign_id, dry_run=self.dry_run)
        with self.warehouse.session(commit=not self.dry_run) as conn:
            ledger.ensure_ledger(conn)
            report.reconciled = reconcile(conn, campaign_id, self.finders, self.wall_clock(),
                                          self.policy.reconcile_after, self.log)
            report.requeued = ledger.requeue_retryable(conn, campaign_id)
            report.planned = ledger.plan(conn, campaign_id, self.wall_clock())
            conn.commit()
            after = ""
            while page := self._next_page(conn, campaign_id, after):
                after = page[-1].message_id
                self._send_page(conn, page, report)
            report.ledger = ledger.counts(conn, campaign_id)
        report.seconds = time.perf_counter() - started
        return report

    def _next_page(self, conn: Connection, campaign_id: str, after: str) -> list[OutgoingMessage]:
        # Ids from the ledger first, then the page's messages by id: joining the whole messages table
        # (HTML included) for every page made each page slower as the table grew.
        planned = conn.fetchall(
            "SELECT message_id, send_at, timezone FROM ops.send_ledger "
            f"WHERE campaign_id = ? AND state = '{PLANNED}' AND message_id > ? ORDER BY message_id LIMIT ?",
            [campaign_id, after, self.policy.page_size],
        )
        if not planned:
            return []
        rows = {r[0]: r for r in conn.fetchall(
            "SELECT message_id, campaign_id, variant_id, customer_id, to_email, subject, html_body, text_body, "
            "headers_json FROM ops.campaign_messages WHERE message_id = ANY(?)", [[p[0] for p in planned]])}
        page = []
        for message_id, send_at, tz_name in planned:
            _, campaign, variant, customer_id, to_email, subject, html, text, headers = rows[message_id]
            page.append(OutgoingMessage(
                message_id=message_id, campaign_id=campaign, variant_id=variant, customer_id=customer_id,
                to_email=to_email, subject=subject, html=html, text=text, headers=json.loads(headers or "{}"),
                send_at=send_at, deliver_at=delivery_time(send_at, self.now, tz_name, self.policy.quiet_hours)))
        return page

    def _send_page(self, conn: Connection, page: list[OutgoingMessage], report: SendReport) -> None:
        reasons = suppression_reasons(conn, page, self.now, self.policy.frequency_cap, self.policy.expire_after)
        if reasons:
            ledger.move_each(conn, reasons, PLANNED, SUPPRESSED, now=self.wall_clock())
            report.suppressed.update(reasons.values())
            conn.commit()
        self._deliver(conn, deque(m for m in page if m.message_id not in reasons), report)

    def _deliver(self, conn: Connection, pending: deque, report: SendReport) -> None:
        while pending:
            route = None if self._exhausted else self._choose_route(pending[0], report)
            if route is None:
                self._exhausted = True
                self._give_up(conn, list(pending), report)
                return
            horizon = self.now + route.destination.schedules_ahead
            batch = []
            while pending and len(batch) < route.max_batch:
                message = pending.popleft()
                if message.deliver_at > horizon:
                    report.deferred += 1  # stays planned; a later run hands it over when it is due
                    report.next_due_at = min(report.next_due_at or message.deliver_at, message.deliver_at)
                else:
                    batch.append(message)
            if batch:
                pending.extendleft(reversed(self._hand_over(conn, route, batch, report)))

    def _choose_route(self, head: OutgoingMessage, report: SendReport) -> Route | None:
        """The first destination in the chain whose breaker lets a request through and that has not
        used up this message's attempts; waits for a breaker to half-open when all are open."""
        usable = [r for r in self.routes if self._tries[(r.name, head.message_id)] < self.policy.max_attempts]
        if not usable:
            return None
        route = next((r for r in usable if r.breaker.allows()), None)
        if route is None:
            wait = min(r.breaker.reset_seconds for r in usable)
            self.log(f"every destination's circuit breaker is open; waiting {wait:.1f}s for a trial request")
            self.sleep(wait)
            route = next((r for r in usable if r.breaker.allows()), usable[0])
        if route.name != self._last_route:
            if self._last_route is not None:
                switch = f"{self._last_route} -> {route.name}: {self._last_error or 'breaker open'}"
                report.switches.append(switch)
                self.log(f"failover {switch}")
            self._last_route = route.name
        return route

    def _hand_over(self, conn: Connection, route: Route, batch: list[OutgoingMessage],
                   report: SendReport) -> list[OutgoingMessage]:
        """One request; returns the messages that were not sent and should be handed over again."""
        ids = [m.message_id for m in batch]
        wall = self.wall_clock()
        ledger.move(conn, ids, PLANNED, SENDING, now=wall, destination=route.name, attempts=1)
        shifted = {m.message_id: m.deliver_at for m in batch}
        ledger.move_each(conn, shifted, SENDING, SENDING, now=wall, column="deliver_at")
        conn.commit()  # from here until the answer is recorded, a crash leaves these to reconcile
        route.bucket.acquire()
        report.requests[route.name] += 1
        try:
            result = route.destination.deliver(batch, self.now)
        except DeliveryError as error:
            self._record(conn, route, error.partial, report)
            return self._after_failure(conn, route, [m for m in batch if m.message_id not in error.partial.accepted
                                                     and m.message_id not in error.partial.rejected], error, report)
        route.breaker.record_success()
        self._record(conn, route, result, report)
        unsent = [m for m in batch if m.message_id not in result.accepted and m.message_id not in result.rejected]
        ledger.move(conn, [m.message_id for m in unsent], SENDING, PLANNED, now=self.wall_clock())
        conn.commit()
        return unsent

    def _record(self, conn: Connection, route: Route, result: BatchResult, report: SendReport) -> None:
        wall = self.wall_clock()
        ledger.move_each(conn, result.accepted, SENDING, ACCEPTED, now=wall, column="provider_message_id")
        ledger.move_each(conn, result.rejected, SENDING, FAILED, now=wall, column="last_error",
                         reason="rejected_by_provider", is_retryable=False)
        if result.accepted:
            report.accepted[route.name] += len(result.accepted)
        if result.rejected:
            report.failed["rejected_by_provider"] += len(result.rejected)
        conn.commit()

    def _after_failure(self, conn: Connection, route: Route, rest: list[OutgoingMessage], error: DeliveryError,
                       report: SendReport) -> list[OutgoingMessage]:
        ids = [m.message_id for m in rest]
        self._last_error = f"{type(error).__name__}: {error}"[:500]
        if not error.outcome_known:
            route.breaker.record_failure()
            unknown = [m for m in rest if error.unknown_ids is None or m.message_id in error.unknown_ids]
            untouched = [m for m in rest if m not in unknown]
            ledger.move(conn, [m.message_id for m in untouched], SENDING, PLANNED, now=self.wall_clock())
            report.unknown += len(unknown)
            self.log(f"{route.name}: {error} - {len(unknown):,} messages left in 'sending' to reconcile before any resend")
            conn.commit()
            return untouched
        if isinstance(error, PayloadTooLarge) and len(rest) > 1:
            route.max_batch = max(1, len(rest) // 2)
            ledger.move(conn, ids, SENDING, PLANNED, now=self.wall_clock(), last_error=self._last_error)
            conn.commit()
            return rest
        if isinstance(error, PayloadTooLarge):
            ledger.move(conn, ids, SENDING, FAILED, now=self.wall_clock(), reason="too_large",
                        last_error=self._last_error, is_retryable=False)
            report.failed["too_large"] += 1
            conn.commit()
            return []
        if isinstance(error, DestinationUnavailable):
            route.breaker.trip()
        else:
            route.breaker.record_failure()
        report.retries += 1
        for message_id in ids:
            self._tries[(route.name, message_id)] += 1
        ledger.move(conn, ids, SENDING, PLANNED, now=self.wall_clock(), last_error=self._last_error)
        conn.commit()
        self.log(f"{route.name}: {error} ({len(rest):,} messages, breaker {route.breaker.state})")
        if route.breaker.allows() and not isinstance(error, DestinationUnavailable):
            self.sleep(self.backoff.delay(self._tries[(route.name, ids[0])], error.retry_after))
        return rest

    def _give_up(self, conn: Connection, messages: list[OutgoingMessage], report: SendReport) -> None:
        """Every destination used up its attempts: failed, retryable by the next run, with the error."""
        ledger.move(conn, [m.message_id for m in messages], PLANNED, FAILED, now=self.wall_clock(),
                    reason="destinations_unavailable", last_error=self._last_error, is_retryable=True)
        report.failed["destinations_unavailable"] += len(messages)
        conn.commit()
        self.log(f"{len(messages):,} messages could not be handed over ({self._last_error}); the next run retries them")


class DryRunDestination:
    """Stands in for a destination in a dry run: takes everything, sends nothing."""

    def __init__(self, real):
        self.name, self.max_batch, self.schedules_ahead = real.name, real.max_batch, real.schedules_ahead

    def deliver(self, batch: Sequence[OutgoingMessage], now: datetime) -> BatchResult:
        return BatchResult(accepted={m.message_id: "dry-run" for m in batch})

    def find_accepted(self, messages):
        return None

    def close(self) -> None:
        pass
