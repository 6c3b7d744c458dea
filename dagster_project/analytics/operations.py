"""What the ops dashboard knows of the orchestrator: runs, their slowest steps and gate outcomes, as
plain records (dagster_project/defs/analytics reads them from the Dagster instance)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class RunSummary:
    job_name: str
    run_id: str
    status: str  # SUCCESS, FAILURE, CANCELED, STARTED...
    started_at: datetime | None
    seconds: float | None
    step_seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckSummary:
    check: str  # <asset> · <check name>
    passed: int
    failed: int
    warned: int = 0
