"""Settle messages a killed or cut-off run left in `sending`, before anything is sent again.

Only rows whose owner is gone are touched: their lease has expired (or they have none, from before
leases). A live run's rows in `sending` are in flight; their outcome is that run's to record.

    outbox     the file named after the Message-ID is there (accepted) or not (send again): files
               appear whole or not at all
    sendgrid   the provider's events (raw.esp_events, through the Event Webhook) carry our message id
               in custom_args: an event means accepted. Without one, nothing happens before the
               message's delivery time plus `reconcile_after` (a scheduled message has no events
               before it goes out); then MAILROOM_UNKNOWN_OUTCOME decides:
                 hold               failed (outcome_unknown), for an operator to settle with
                                    `python -m reverse_etl.send --resolve-unknown accepted|resend`
                 cancel_and_resend  the request went out in a SendGrid batch scheduled ahead: cancel
                                    the batch while SendGrid still can (10 minutes before its
                                    send_at), then send again; too late to cancel: hold
                 resend             send again (a duplicate if SendGrid took it and its events are lost)
    smtp       a relay cannot be asked: held as failed (outcome_unknown) rather than risk a duplicate
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from dagster_project.settings import UNKNOWN_OUTCOMES
from dagster_project.warehouse import Connection
from reverse_etl.destinations.sendgrid import CANCEL_DEADLINE
from reverse_etl.ledger import (
    ACCEPTED,
    FAILED,
    OUTCOME_UNKNOWN,
    PLANNED,
    SENDING,
    LeaseLost,
    move,
    move_each,
    release,
    take_over_expired,
)
from reverse_etl.outgoing import OutgoingMessage

RESOLVE_HINT = "settle it with: python -m reverse_etl.send --resolve-unknown accepted|resend --campaign {campaign}"


@dataclass(frozen=True)
class Stale:
    """A row left in `sending` by a run that is gone."""

    message_id: str
    campaign_id: str
    destination: str
    sending_at: datetime | None
    deliver_at: datetime | None
    batch_id: str | None

    def window_ends(self, reconcile_after: timedelta) -> datetime:
        """When the provider's events should have arrived: after the later of the hand-over and the
        delivery time (a message scheduled hours ahead has no events before it goes out)."""
        times = [t for t in (self.sending_at, self.deliver_at) if t is not None]
        return max(times, default=datetime.min) + reconcile_after


@dataclass
class Reconciler:
    conn: Connection
    owner: str
    now: datetime
    lease_until: datetime
    reconcile_after: timedelta
    policy: str = "hold"  # MAILROOM_UNKNOWN_OUTCOME
    destinations: dict | None = None  # name -> destination that can be asked (find_accepted, cancel_batch)
    log: Callable[[str], None] = lambda message: None

    def __post_init__(self):
        if self.policy not in UNKNOWN_OUTCOMES:
            raise ValueError(f"unknown outcome policy {self.policy!r}: use one of {', '.join(UNKNOWN_OUTCOMES)}")
        self.outcome: Counter = Counter()
        self._waiting: set[str] = set()
        self.campaign_id = ""

    def run(self, campaign_id: str) -> Counter:
        """Counter of what happened: accepted, resend, cancelled_resend, waiting, held."""
        self.campaign_id = campaign_id
        if not take_over_expired(self.conn, campaign_id, self.owner, self.now, self.lease_until):
            return Counter()
        self.conn.commit()  # the rows are this run's now; no row lock is held while destinations are asked
        rows = [Stale(*row) for row in self.conn.fetchall(
            "SELECT message_id, campaign_id, destination, sending_at, deliver_at, provider_batch_id "
            f"FROM ops.send_ledger WHERE campaign_id = ? AND state = '{SENDING}' AND lease_owner = ? "
            "ORDER BY message_id",
            [campaign_id, self.owner])]
        by_destination: dict[str, list[Stale]] = {}
        for row in rows:
            by_destination.setdefault(row.destination, []).append(row)
        try:
            for destination, stale in by_destination.items():
                self._settle(destination, stale)
        except LeaseLost:  # another run took rows over meanwhile: stop, and let go of the rest at once
            release(self.conn, [row.message_id for row in rows], self.owner, self.now)
            raise
        release(self.conn, sorted(self._waiting), self.owner, self.now)  # a later run looks again
        self.conn.commit()
        return +self.outcome  # without zero counts

    def _settle(self, destination: str, stale: list[Stale]) -> None:
        finder = (self.destinations or {}).get(destination)
        found = None
        if finder is not None:
            found = finder.find_accepted([OutgoingMessage(message_id=r.message_id, campaign_id=r.campaign_id,
                                                          variant_id="", to_email="", subject="", html="", text="")
                                          for r in stale])
        if found is not None:  # the destination knows: what it has is accepted, the rest was never written
            self._accept(found)
            self._resend([r.message_id for r in stale if r.message_id not in found],
                         f"not found at {destination} after an interrupted run; sending again")
        elif destination == "sendgrid":
            self._settle_sendgrid(stale, finder)
        else:
            self._hold([r.message_id for r in stale], destination, f"{destination} cannot be asked whether it took it")

    def _settle_sendgrid(self, stale: list[Stale], sendgrid) -> None:
        found = _from_provider_events(self.conn, [r.message_id for r in stale])
        self._accept(found)
        unsettled = [r for r in stale if r.message_id not in found]
        if self.policy == "cancel_and_resend":
            unsettled = self._cancel_batches(unsettled, sendgrid, batches_with_events={
                r.batch_id for r in stale if r.message_id in found and r.batch_id})
        due = [r for r in unsettled if self.now >= r.window_ends(self.reconcile_after)]
        self._wait([r.message_id for r in unsettled if r not in due])
        if self.policy == "resend":
            self._resend([r.message_id for r in due], "no SendGrid event after an interrupted run within "
                         "MAILROOM_RECONCILE_AFTER_MINUTES; sending again (MAILROOM_UNKNOWN_OUTCOME=resend)")
        else:
            self._hold([r.message_id for r in due], "sendgrid", "no SendGrid event arrived within "
                       "MAILROOM_RECONCILE_AFTER_MINUTES of its delivery time")

    def _cancel_batches(self, unsettled: list[Stale], sendgrid, batches_with_events: set) -> list[Stale]:
        """Cancel each batch still early enough to cancel, and send its messages again; returns the rest."""
        batches: dict[str, list[Stale]] = {}
        for row in unsettled:
            if row.batch_id and row.batch_id not in batches_with_events:  # never cancel what SendGrid took
                batches.setdefault(row.batch_id, []).append(row)
        left = [r for r in unsettled if r.batch_id not in batches]
        for batch_id, rows in batches.items():
            earliest = min((r.deliver_at for r in rows if r.deliver_at), default=self.now)
            if sendgrid is None or not hasattr(sendgrid, "cancel_batch") or self.now > earliest - CANCEL_DEADLINE:
                left += rows  # too late (or no SendGrid configured) to cancel: the window decides
            elif sendgrid.cancel_batch(batch_id):
                self.log(f"cancelled SendGrid batch {batch_id} ({len(rows):,} messages of an interrupted run); "
                         "sending them again")
                self._resend([r.message_id for r in rows], f"batch {batch_id} of an interrupted run was cancelled at "
                             "SendGrid before its send time; sending again", key="cancelled_resend")
            else:
                self.log(f"SendGrid did not take the cancellation of batch {batch_id}; trying again next run")
                self._wait([r.message_id for r in rows])
        return left

    def _accept(self, found: dict[str, str]) -> None:
        move_each(self.conn, found, SENDING, ACCEPTED, now=self.now, owner=self.owner, column="provider_message_id",
                  reason=None, last_error=None)
        self.outcome["accepted"] += len(found)

    def _resend(self, message_ids: list[str], why: str, key: str = "resend") -> None:
        move(self.conn, message_ids, SENDING, PLANNED, now=self.now, owner=self.owner, last_error=why,
             provider_batch_id=None)
        self.outcome[key] += len(message_ids)

    def _wait(self, message_ids: list[str]) -> None:
        self._waiting.update(message_ids)
        self.outcome["waiting"] += len(message_ids)

    def _hold(self, message_ids: list[str], destination: str, why: str) -> None:
        if not message_ids:
            return
        hint = RESOLVE_HINT.format(campaign=self.campaign_id)
        move(self.conn, message_ids, SENDING, FAILED, now=self.now, owner=self.owner, reason=OUTCOME_UNKNOWN,
             is_retryable=False,
             last_error=f"the run stopped after handing the message to {destination} and before its answer was "
                        f"recorded, and {why}; held, not resent, to avoid a duplicate - {hint}")
        self.outcome["held"] += len(message_ids)
        self.log(f"{len(message_ids):,} messages handed to {destination} have an unknown outcome and are held as "
                 f"failed (outcome_unknown); {hint}")


def _from_provider_events(conn: Connection, message_ids: list[str]) -> dict[str, str]:
    if not message_ids or not conn.table_exists("raw", "esp_events"):
        return {}
    found = {}
    for start in range(0, len(message_ids), 5000):
        found.update({message_id: provider_id or "event" for message_id, provider_id in conn.fetchall(
            "SELECT mailroom_message_id, max(sg_message_id) FROM raw.esp_events "
            "WHERE mailroom_message_id = ANY(?) GROUP BY mailroom_message_id", [message_ids[start:start + 5000]])})
    return found
