"""What a sync run did (or, in a dry run, would do)."""

from __future__ import annotations

from dataclasses import dataclass, field

from reverse_etl.sync.plan import SyncPlan


@dataclass
class SyncReport:
    run_id: str
    destination: str
    model: str
    mode: str
    dry_run: bool
    plan: SyncPlan
    target: str = ""  # the destination's identity (destinations/base.py), once it is known
    target_reset: str | None = None  # why the target's snapshot was dropped (it lost rows), if it was
    sent: int = 0  # rows handed to the destination
    acknowledged: int = 0
    rejected: int = 0
    not_in_destination: int = 0  # update_only: contacts the CRM does not have, left alone
    failed: int = 0  # rows of batches that kept failing transiently: unacknowledged, sent next run
    batches: int = 0
    batches_failed: int = 0
    requests: int = 0
    retries: int = 0
    rejections: dict[str, str] = field(default_factory=dict)  # a sample: key -> reason
    seconds: float = 0.0
    error: str | None = None  # why the run stopped early (destination unavailable)

    @property
    def planned(self) -> int:
        return self.plan.planned

    @property
    def skipped(self) -> int:
        """Rows unchanged since the destination acknowledged them."""
        return self.plan.unchanged

    @property
    def complete(self) -> bool:
        """Every due row was settled: acknowledged, rejected with a reason, or not in the CRM (update_only)."""
        return not self.dry_run and self.error is None and self.failed == 0 and (
            self.acknowledged + self.rejected + self.not_in_destination == self.planned)

    def summary_lines(self) -> list[str]:
        p = self.plan
        kinds = ", ".join(f"{n:,} {kind}" for kind, n in p.due.items())
        lines = [f"{self.model} -> {self.target or self.destination} "
                 f"({self.mode}{', dry run' if self.dry_run else ''}): "
                 f"{p.planned:,} due ({kinds}), {p.unchanged:,} unchanged, {p.removed_from_model:,} no longer in "
                 "the model (left alone in the CRM)"]
        if self.target_reset:
            lines.append(f"  full sync: {self.target_reset}")
        for kind, keys in p.samples.items():
            lines.append(f"  {kind}: e.g. {', '.join(keys)}")
        if not self.dry_run:
            lines.append(f"  sent {self.sent:,} in {self.batches:,} batches ({self.requests:,} requests, "
                         f"{self.retries:,} retries): {self.acknowledged:,} acknowledged, {self.rejected:,} rejected, "
                         f"{self.not_in_destination:,} not in the CRM, {self.failed:,} left for the next run; "
                         f"{self.seconds:.1f} s")
            for key, reason in list(self.rejections.items())[:5]:
                lines.append(f"  rejected {key}: {reason}")
        if self.error:
            lines.append(f"  stopped: {self.error}")
        return lines
