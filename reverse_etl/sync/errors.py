"""What can go wrong while syncing, by what the engine does about it."""

from __future__ import annotations


class SyncError(RuntimeError):
    """The sync cannot start (a missing model, duplicate keys, a CRM table that does not fit)."""


class TransientFailure(RuntimeError):
    """A request that may succeed if repeated: 429, 5xx, a dropped connection, a locked database.
    retry_after: seconds the destination asked us to wait, when it said so."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RetriesExhausted(RuntimeError):
    """A request kept failing transiently for max_attempts; its rows stay unacknowledged."""


class DestinationUnavailable(RuntimeError):
    """The destination cannot work until someone acts (a refused token, a daily quota used up):
    the run stops, and every row not yet acknowledged is sent by the next run."""
