"""Hand a campaign's rendered messages to the destination chain, exactly once, through the ledger.

One pass: settle what a run that is gone left in `sending` (reconcile.py), plan the new messages
(one per address per campaign run), then - unless the campaign is paused (pauses.py; looked at
again before every page, since a guard may pause it while a long run sends) - lease and page
through the planned ones: fail what cannot be sent (an invalid address, an unreadable message),
suppress what the latest data forbids (presend.py), hold back what is not due, and hand the rest
over in batches - pacing each destination with a token bucket, retrying transient failures with
backoff, and failing over when a circuit breaker opens.

Several runs may work at once: each owns its rows through leases (ledger.py), and on PostgreSQL a
campaign another run is sending is skipped (concurrency.py). A dry run works on a private copy of
the ledger (dry_run.py). Every time here is the wall clock (`clock`): MAILROOM_AS_OF moves data
rules in the models, never when a message is delivered.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from dagster_project.addresses import address_problem
from dagster_project.warehouse import Connection, Warehouse
from reverse_etl import ledger
from reverse_etl.concurrency import lock_campaign, new_owner, warehouse_session
from reverse_etl.destinations.base import BatchResult, DeliveryError, DestinationUnavailable, PayloadTooLarge
from reverse_etl.dry_run import private_ledger
from reverse_etl.ledger import ACCEPTED, FAILED, PLANNED, SENDING, SUPPRESSED, LeaseLost
from reverse_etl.outgoing import OutgoingMessage
from reverse_etl.pauses import PauseEntry, current_pause
from reverse_etl.presend import delivery_time, last_look
from reverse_etl.reconcile import Reconciler
from reverse_etl.throttle import Backoff, CircuitBreaker, TokenBucket


def utc_now() -> datetime:
    """The wall clock, as naive UTC like every timestamp in the ledger."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class SendPolicy:
    frequency_cap: int = 3  # per customer per 7 days, across campaigns; 0 = no cap
    quiet_hours: tuple[int, int] | None = (21, 8)
    expire_after: timedelta = timedelta(hours=48)
    reconcile_after: timedelta = timedelta(minutes=30)
    max_attempts: int = 5  # per message and destination in one run
    page_size: int = 1000
    lease: timedelta = timedelta(minutes=10)  # how long a run holds its rows without renewing
    unknown_outcome: str = "hold"  # MAILROOM_UNKNOWN_OUTCOME: hold, cancel_and_resend or resend
    warehouse_wait_seconds: float = 300.0  # DuckDB: how long to wait for another process to let go of the file


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

    @property
    def cancellable(self) -> bool:
        return getattr(self.destination, "cancellable", False)


@dataclass
class SendReport:
    campaign_id: str
    dry_run: bool = False
    planned: int = 0  # new ledger rows this pass
    requeued: int = 0  # failed-retryable rows given another chance
    accepted: Counter = field(default_factory=Counter)  # destination -> messages
    suppressed: Counter = field(default_factory=Counter)  # reason -> messages
    failed: Counter = field(default_factory=Counter)  # reason -> messages
    deferred: int = 0  # not due yet for the destination, or held by the frequency cap: still planned
    held_by_frequency_cap: int = 0  # of those, held until the cap clears (on_frequency_cap 'delay')
    next_due_at: datetime | None = None
    unknown: int = 0  # outcome unknown this pass: left in sending, reconciled by the next run
    awaiting: int = 0  # rows of the campaign still in `sending` after the pass: awaiting reconciliation
    held_elsewhere: int = 0  # rows another live run holds (leased) after the pass
    skipped: str = ""  # why the whole campaign was left to another run, if it was
    lease_lost: bool = False  # this run stalled past its lease and stopped; another run has the rows
    paused: PauseEntry | None = None  # the campaign is paused: its planned messages stay planned
    reconciled: Counter = field(default_factory=Counter)
    requests: Counter = field(default_factory=Counter)  # destination -> requests
    retries: int = 0
    switches: list[str] = field(default_factory=list)
    ledger: dict[str, int] = field(default_factory=dict)  # state -> rows for the campaign, after the pass
    latest_run: str | None = None  # the campaign's most recently planned run...
    latest_run_ledger: dict[str, int] = field(default_factory=dict)  # ...and its rows by state, after the pass
    seconds: float = 0.0

    @property
    def handed_over(self) -> int:
        return sum(self.accepted.values())


class Sender:
    def __init__(self, warehouse: Warehouse, routes: Sequence[Route], policy: SendPolicy,
                 finders: dict | None = None, dry_run: bool = False, backoff: Backoff | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], datetime] = utc_now,
                 run_id: str | None = None, log: Callable[[str], None] = lambda message: None):
        if not routes:
            raise ValueError("no destination configured: set MAILROOM_DESTINATIONS (e.g. outbox or sendgrid,smtp)")
        self.warehouse = warehouse
        self.routes = list(routes)
        self.policy = policy
        self.finders = finders or {}  # destinations reconcile may ask (find_accepted, cancel_batch)
        self.dry_run = dry_run
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.clock = clock  # delivery, quiet hours, due and expiry times, leases: the wall clock
        self.owner = new_owner(run_id)  # the lease owner of every row this sender works on
        self.log = log
        self._tries: Counter = Counter()  # (destination, message_id) -> failed attempts this run
        self._last_route: str | None = None
        self._last_error = ""
        self._exhausted = False  # every destination used up its attempts: stop trying this run
        self._page: list[str] = []  # ids of the page this run holds now
        self._renewed_at = datetime.min

    def send_campaign(self, campaign_id: str) -> SendReport:
        started = time.perf_counter()
        report = SendReport(campaign_id=campaign_id, dry_run=self.dry_run)
        # A dry run commits too: only its private copy of the ledger, which nothing else sees.
        with warehouse_session(self.warehouse, commit=True, wait_seconds=self.policy.warehouse_wait_seconds,
                               log=self.log) as conn:
            if self.dry_run:
                conn = private_ledger(conn, campaign_id, self.clock())
            else:
                ledger.ensure_ledger(conn)
            # A dry run holds no lock a send needs and changes nothing another run sees: it takes no turn.
            if self.dry_run or lock_campaign(conn, campaign_id):
                self._pass(conn, campaign_id, report)
            else:
                report.skipped = "another send run is sending this campaign (PostgreSQL advisory lock)"
                self.log(f"{campaign_id}: skipped - {report.skipped}; it hands these messages over")
            report.ledger = ledger.counts(conn, campaign_id)
            report.latest_run, report.latest_run_ledger = ledger.latest_run_counts(conn, campaign_id)
            report.awaiting = report.ledger.get(SENDING, 0)
            report.held_elsewhere = ledger.held_elsewhere(conn, campaign_id, self.owner, self.clock())
        report.seconds = time.perf_counter() - started
        return report

    def _pass(self, conn: Connection, campaign_id: str, report: SendReport) -> None:
        try:
            now = self.clock()
            report.reconciled = Reconciler(
                conn, self.owner, now, now + self.policy.lease, self.policy.reconcile_after,
                self.policy.unknown_outcome, self.finders, self.log).run(campaign_id)
            report.requeued = ledger.requeue_retryable(conn, campaign_id)
            report.planned = ledger.plan(conn, campaign_id, now)
            duplicates = ledger.suppress_duplicate_addresses(conn, campaign_id, self.owner, now)
            if duplicates:
                report.suppressed[ledger.DUPLICATE_ADDRESS] += duplicates
            conn.commit()
            after = ""
            while after is not None:
                if self._paused(conn, campaign_id, report, while_sending=bool(after)):
                    break
                now = self.clock()
                held, after = ledger.lease_page(conn, campaign_id, self.owner, after, self.policy.page_size, now,
                                                now + self.policy.lease)
                conn.commit()
                if held:
                    self._send_page(conn, held, report)
        except LeaseLost as lost:
            conn.commit()  # every move made was of rows this run still held: keep what it recorded
            report.lease_lost = True
            self.log(f"{campaign_id}: stopped - {lost}. Raise MAILROOM_SEND_LEASE_SECONDS if a page takes this long.")

    def _paused(self, conn: Connection, campaign_id: str, report: SendReport, while_sending: bool) -> bool:
        """Whether the campaign is paused now (one small query); a pause is kept in the report."""
        report.paused = current_pause(conn, campaign_id)
        if report.paused is not None and while_sending:
            self.log(f"{campaign_id}: paused while sending - {report.paused.describe()}; the rest stays planned")
        return report.paused is not None

    def _send_page(self, conn: Connection, held: list[tuple], report: SendReport) -> None:
        self._page, self._renewed_at = [row[0] for row in held], self.clock()
        try:
            self._work_through(conn, held, report)
        except LeaseLost:
            raise  # what it recorded is of rows it still held: kept (committed below)
        except BaseException:
            conn.rollback()  # an unfinished step - say a claim whose request never went out - is not kept
            raise
        finally:
            # Done with the page, or stopped: what is still planned (not due, or never reached) is free
            # for any run at once, and what is left in `sending` (an unknown outcome) is for the next run
            # to reconcile. Only a killed process leaves its page to the lease running out.
            ledger.release(conn, self._page, self.owner, self.clock())
            conn.commit()

    def _work_through(self, conn: Connection, held: list[tuple], report: SendReport) -> None:
        page = self._load(conn, held, report)
        self._fail_invalid_addresses(conn, page, report)
        look = last_look(conn, page, self.clock(), self.policy.frequency_cap, self.policy.expire_after,
                         {row[0]: row[3] for row in held})
        reasons = look.suppressed
        if reasons:
            ledger.move_each(conn, reasons, PLANNED, SUPPRESSED, now=self.clock(), owner=self.owner)
            report.suppressed.update(reasons.values())
            conn.commit()
        self._hold(conn, look.held_until, {row[0]: row[2] for row in held}, report)
        self._deliver(conn, deque(m for m in page if m.message_id not in reasons and m.message_id not in
                                  look.held_until), report)

    def _hold(self, conn: Connection, held_until: dict[str, datetime], timezones: dict[str, str | None],
              report: SendReport) -> None:
        """Messages over the frequency cap that wait for it to clear stay planned and are not handed
        over in this pass, whatever the destination schedules ahead: the cap is counted again when
        they go. Their deliver_at moves to when the cap clears (out of quiet hours, as any delivery)."""
        if not held_until:
            return
        now = self.clock()
        moved = {message_id: delivery_time(until, now, timezones.get(message_id), self.policy.quiet_hours)
                 for message_id, until in held_until.items()}
        ledger.move_each(conn, moved, PLANNED, PLANNED, now=now, owner=self.owner, column="deliver_at")
        conn.commit()
        report.deferred += len(moved)
        report.held_by_frequency_cap += len(moved)
        report.next_due_at = min(report.next_due_at or min(moved.values()), min(moved.values()))

    def _load(self, conn: Connection, held: list[tuple], report: SendReport) -> list[OutgoingMessage]:
        """The page's messages by id (joining the whole messages table, HTML included, for every page
        made each page slower as the table grew). A message that cannot be read fails alone.
        "IN (?, ?, ...)", not "= ANY(?)": DuckDB matched an array against every row, 0.7 to 1.9 s a page
        of 1,000 in a table of 200,000 messages (an IN list: 0.1 s); PostgreSQL plans both alike."""
        rows = {}
        for chunk in ledger.chunks([h[0] for h in held]):
            marks = ", ".join("?" * len(chunk))
            rows.update((r[0], r) for r in conn.fetchall(
                "SELECT message_id, campaign_id, variant_id, customer_id, to_email, subject, html_body, text_body, "
                f"headers_json, rendered_at FROM ops.campaign_messages WHERE message_id IN ({marks})", chunk))
        page, unreadable = [], {}
        now = self.clock()
        for message_id, send_at, tz_name, _ in held:
            try:
                (_, campaign, variant, customer_id, to_email, subject, html, text, headers,
                 rendered_at) = rows[message_id]
                page.append(OutgoingMessage(
                    message_id=message_id, campaign_id=campaign, variant_id=variant, customer_id=customer_id,
                    to_email=to_email, subject=subject, html=html, text=text, headers=_headers(headers),
                    send_at=send_at, rendered_at=rendered_at,
                    deliver_at=delivery_time(send_at, now, tz_name, self.policy.quiet_hours)))
            except (KeyError, ValueError, TypeError) as error:
                unreadable[message_id] = f"the rendered message cannot be read: {type(error).__name__}: {error}"[:500]
        self._fail(conn, unreadable, "unreadable_message", report)
        return page

    def _fail_invalid_addresses(self, conn: Connection, page: list[OutgoingMessage], report: SendReport) -> None:
        """An address no destination can take fails before anything is handed over (ingest keeps bad
        addresses out; this catches what got past it, e.g. a message rendered before a fix)."""
        invalid = {m.message_id: f"invalid address: {problem}" for m in page
                   if (problem := address_problem(m.to_email or ""))}
        self._fail(conn, invalid, "invalid_address", report)
        page[:] = [m for m in page if m.message_id not in invalid]

    def _fail(self, conn: Connection, errors: dict[str, str], reason: str, report: SendReport,
              from_state: str = PLANNED) -> None:
        if not errors:
            return
        ledger.move_each(conn, errors, from_state, FAILED, now=self.clock(), owner=self.owner, column="last_error",
                         reason=reason, is_retryable=False)
        report.failed[reason] += len(errors)
        conn.commit()

    def _deliver(self, conn: Connection, pending: deque, report: SendReport) -> None:
        while pending:
            route = None if self._exhausted else self._choose_route(pending[0], report)
            if route is None:
                self._exhausted = True
                self._give_up(conn, list(pending), report)
                return
            horizon = self.clock() + route.destination.schedules_ahead
            batch = []
            while pending and len(batch) < route.max_batch:
                message = pending.popleft()
                if message.deliver_at > horizon:
                    report.deferred += 1  # stays planned; a later run hands it over when it is due
                    report.next_due_at = min(report.next_due_at or message.deliver_at, message.deliver_at)
                else:
                    batch.append(message)
            if batch and route.cancellable:  # one request per hand-over: one batch id covers exactly it
                batch, rest = route.destination.split_request(batch)
                pending.extendleft(reversed(rest))
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
        now = self.clock()
        self._renew_lease(conn, now)
        batch = self._claim(conn, route, batch, now)
        if not batch:
            return []
        try:
            batch_id = self._new_batch(conn, route, batch)
        except DeliveryError as error:
            return self._after_failure(conn, route, batch, error, report)
        conn.commit()  # from here until the answer is recorded, a crash leaves these to reconcile
        route.bucket.acquire()
        report.requests[route.name] += 1
        try:
            result = route.destination.deliver(batch, now, **({"batch_id": batch_id} if batch_id else {}))
        except DeliveryError as error:
            self._record(conn, route, error.partial, report)
            done = {*error.partial.accepted, *error.partial.rejected, *error.partial.unsendable}
            return self._after_failure(conn, route, [m for m in batch if m.message_id not in done], error, report)
        route.breaker.record_success()
        self._record(conn, route, result, report)
        done = {*result.accepted, *result.rejected, *result.unsendable}
        unsent = [m for m in batch if m.message_id not in done]
        ledger.move(conn, [m.message_id for m in unsent], SENDING, PLANNED, now=self.clock(), owner=self.owner)
        conn.commit()
        return unsent

    def _claim(self, conn: Connection, route: Route, batch: list[OutgoingMessage], now: datetime
               ) -> list[OutgoingMessage]:
        """planned -> sending with the delivery time the destination gets (a cancellable one is given
        at least its minimum lead, so a cancellation can still reach it); only the rows this run
        still holds go out."""
        lead = getattr(route.destination, "minimum_lead", timedelta(0))
        if lead:
            batch = [replace(m, deliver_at=max(m.deliver_at, now + lead)) for m in batch]
        claimed = ledger.claim_for_sending(conn, [m.message_id for m in batch], self.owner, now, route.name)
        batch = [m for m in batch if m.message_id in claimed]
        ledger.move_each(conn, {m.message_id: m.deliver_at for m in batch}, SENDING, SENDING, now=now,
                         owner=self.owner, column="deliver_at")
        return batch

    def _new_batch(self, conn: Connection, route: Route, batch: list[OutgoingMessage]) -> str | None:
        """A provider batch id for a cancellable destination, recorded before the request goes out."""
        if not route.cancellable:
            return None
        batch_id = route.destination.new_batch()
        ledger.move(conn, [m.message_id for m in batch], SENDING, SENDING, now=self.clock(), owner=self.owner,
                    provider_batch_id=batch_id)
        return batch_id

    def _renew_lease(self, conn: Connection, now: datetime) -> None:
        """Keep holding the page: renewed when a third of the lease has passed (committed with the claim)."""
        if now - self._renewed_at >= self.policy.lease / 3:
            ledger.renew(conn, self._page, self.owner, now + self.policy.lease)
            self._renewed_at = now

    def _record(self, conn: Connection, route: Route, result: BatchResult, report: SendReport) -> None:
        wall = self.clock()
        # Accepted: an earlier attempt's error or reason no longer describes the message.
        ledger.move_each(conn, result.accepted, SENDING, ACCEPTED, now=wall, owner=self.owner,
                         column="provider_message_id", reason=None, last_error=None)
        ledger.move_each(conn, result.rejected, SENDING, FAILED, now=wall, owner=self.owner, column="last_error",
                         reason="rejected_by_provider", is_retryable=False)
        if result.accepted:
            report.accepted[route.name] += len(result.accepted)
        if result.rejected:
            report.failed["rejected_by_provider"] += len(result.rejected)
        by_reason: dict[str, dict[str, str]] = {}
        for message_id, (reason, error) in result.unsendable.items():
            by_reason.setdefault(reason, {})[message_id] = f"{route.name}: {error}"[:500]
        for reason, errors in by_reason.items():
            self._fail(conn, errors, reason, report, from_state=SENDING)
        conn.commit()

    def _after_failure(self, conn: Connection, route: Route, rest: list[OutgoingMessage], error: DeliveryError,
                       report: SendReport) -> list[OutgoingMessage]:
        ids = [m.message_id for m in rest]
        self._last_error = f"{type(error).__name__}: {error}"[:500]
        if not error.outcome_known:
            route.breaker.record_failure()
            unknown = [m for m in rest if error.unknown_ids is None or m.message_id in error.unknown_ids]
            untouched = [m for m in rest if m not in unknown]
            self._back_to_planned(conn, untouched)
            report.unknown += len(unknown)
            self.log(f"{route.name}: {error} - {len(unknown):,} messages left in 'sending' to reconcile "
                     "before any resend")
            conn.commit()
            return untouched
        if isinstance(error, PayloadTooLarge) and len(rest) > 1:
            route.max_batch = max(1, len(rest) // 2)
            self._back_to_planned(conn, rest, last_error=self._last_error)
            conn.commit()
            return rest
        if isinstance(error, PayloadTooLarge):
            ledger.move(conn, ids, SENDING, FAILED, now=self.clock(), owner=self.owner, reason="too_large",
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
        self._back_to_planned(conn, rest, last_error=self._last_error)
        conn.commit()
        self.log(f"{route.name}: {error} ({len(rest):,} messages, breaker {route.breaker.state})")
        if route.breaker.allows() and not isinstance(error, DestinationUnavailable):
            self.sleep(self.backoff.delay(self._tries[(route.name, ids[0])], error.retry_after))
        return rest

    def _back_to_planned(self, conn: Connection, messages: list[OutgoingMessage], **values) -> None:
        """Not handed over after all: planned again, still held by this run, without a batch id."""
        ledger.move(conn, [m.message_id for m in messages], SENDING, PLANNED, now=self.clock(), owner=self.owner,
                    provider_batch_id=None, **values)

    def _give_up(self, conn: Connection, messages: list[OutgoingMessage], report: SendReport) -> None:
        """Every destination used up its attempts: failed, retryable by the next run, with the error."""
        ledger.move(conn, [m.message_id for m in messages], PLANNED, FAILED, now=self.clock(), owner=self.owner,
                    reason="destinations_unavailable", last_error=self._last_error, is_retryable=True)
        report.failed["destinations_unavailable"] += len(messages)
        conn.commit()
        self.log(f"{len(messages):,} messages could not be handed over ({self._last_error}); the next run retries them")


def _headers(headers_json: str | None) -> dict[str, str]:
    headers = json.loads(headers_json or "{}")
    if not isinstance(headers, dict):
        raise ValueError(f"headers_json is a {type(headers).__name__}, not an object")
    return {str(name): str(value) for name, value in headers.items()}


class DryRunDestination:
    """Stands in for a destination in a dry run: takes everything, sends nothing."""

    def __init__(self, real):
        self.name, self.max_batch, self.schedules_ahead = real.name, real.max_batch, real.schedules_ahead

    def deliver(self, batch: Sequence[OutgoingMessage], now: datetime, batch_id: str | None = None) -> BatchResult:
        return BatchResult(accepted={m.message_id: "dry-run" for m in batch})

    def find_accepted(self, messages):
        return None

    def close(self) -> None:
        pass
