"""What a destination promises the sender, and the failures it may report.

The sender keeps the ledger; a destination only hands messages over and says, for each request,
which messages the provider accepted, which it refused for good, and - when the whole request failed
- whether the provider may have accepted it anyway (the outcome is unknown: reconcile, never resend).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from reverse_etl.outgoing import OutgoingMessage


@dataclass
class BatchResult:
    accepted: dict[str, str] = field(default_factory=dict)  # message_id -> provider's id for it
    rejected: dict[str, str] = field(default_factory=dict)  # message_id -> why it can never be sent
    # Messages this destination could not even hand over (an address it cannot carry, a message that
    # cannot be composed): message_id -> (reason, error). Each fails alone; the batch goes on.
    unsendable: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Messages neither accepted nor rejected were not sent (SendGrid refuses a whole request for one
    # bad address): the sender hands them over again.


class DeliveryError(Exception):
    """The whole request failed. `outcome_known` says the provider certainly did not accept it."""

    outcome_known = True

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        # What the destination accepted or refused before this failure (earlier requests of a batch).
        self.partial = BatchResult()
        # For an unknown outcome: the messages in flight when it happened (None: all not in `partial`);
        # the rest of the batch was never handed over.
        self.unknown_ids: set[str] | None = None


class TransientFailure(DeliveryError):
    """Not accepted, worth retrying: 429, 5xx, a refused or reset connection before the request was sent."""


class OutcomeUnknown(DeliveryError):
    """The request went out and no answer came back (timeout, connection dropped): reconcile first."""

    outcome_known = False


class DestinationUnavailable(DeliveryError):
    """The destination cannot take anything until someone fixes it (bad API key, misconfiguration)."""


class PayloadTooLarge(DeliveryError):
    """The request was too big (413): send it in smaller parts."""


class Destination(Protocol):
    name: str
    max_batch: int  # messages per request
    schedules_ahead: timedelta  # how far ahead it can hold a message for later delivery
    # Cancellable destinations (SendGrid with MAILROOM_UNKNOWN_OUTCOME=cancel_and_resend) take one request
    # per hand-over, in a provider batch created first (new_batch) and recorded in the ledger, and
    # schedule every message at least `minimum_lead` ahead, so that a run recovering from a crash can
    # cancel the batch (cancel_batch) before it goes out, and send it again.
    cancellable: bool = False
    minimum_lead: timedelta = timedelta(0)

    def deliver(self, batch: Sequence[OutgoingMessage], now: datetime, batch_id: str | None = None) -> BatchResult: ...

    def find_accepted(self, messages: Sequence[OutgoingMessage]) -> dict[str, str] | None:
        """Which of these messages the destination has (message_id -> provider id), or None when it
        cannot tell (then the sender asks the provider's events instead)."""
        ...

    def close(self) -> None: ...
