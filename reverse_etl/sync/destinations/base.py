"""The small interface every CRM destination implements.

identity()           a stable, non-secret name of the target itself (which database and table, which
                     HubSpot portal): sync state is kept per identity, so a changed target starts afresh
rows_held()          how many rows the target holds now, or None when it cannot tell cheaply; fewer
                     than were acknowledged means it was emptied or replaced
prepare(relation)    once per run, before the first batch (create the CRM table, build the client)
existing(rows)       keys of the rows whose contact the CRM already has (for update_only)
write(rows, mode)    send one batch; say per row whether it was acknowledged or rejected (with the
                     CRM's reason). Transient trouble raises TransientFailure (retried by the Pacer),
                     a destination that cannot work raises DestinationUnavailable.
close()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from reverse_etl.sync.relation import Relation

UPSERT, UPDATE_ONLY = "upsert", "update_only"


@dataclass(frozen=True)
class SyncRow:
    key: str  # the model key as text (composite keys joined by \x1f)
    row_hash: str
    values: dict  # column -> Python value, as the warehouse returned it


@dataclass
class BatchResult:
    acknowledged: set[str] = field(default_factory=set)  # keys
    rejected: dict[str, str] = field(default_factory=dict)  # key -> the destination's reason

    def merge(self, other: BatchResult) -> None:
        self.acknowledged |= other.acknowledged
        self.rejected.update(other.rejected)


class CrmDestination(Protocol):
    name: str
    max_batch: int

    def identity(self) -> str: ...

    def rows_held(self) -> int | None: ...

    def prepare(self, relation: Relation) -> None: ...

    def existing(self, rows: list[SyncRow]) -> set[str]: ...

    def write(self, rows: list[SyncRow], mode: str) -> BatchResult: ...

    def close(self) -> None: ...
