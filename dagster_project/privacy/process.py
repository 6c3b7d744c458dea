"""One privacy run: take in new requests, work through every open one, seal the audit chain. The CLI
(`python -m dagster_project.privacy process`), the Dagster asset privacy/privacy_requests_processed and the demo
all call `process_requests`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from dagster_project.privacy.audit_sources import seal_all
from dagster_project.privacy.keys import SubjectKeys
from dagster_project.privacy.providers import configured_erasers
from dagster_project.privacy.runner import (
    PAUSED,
    RequestOutcome,
    run_owner,
    run_request,
    take_lease,
    workable_requests,
)
from dagster_project.privacy.state import IntakeReport, ensure_privacy_tables, take_in_requests
from dagster_project.privacy.steps import REBUILD, PrivacyContext, access_steps, dbt_rebuild, erasure_steps
from dagster_project.settings import (
    Settings,
    load_activation_settings,
    load_ingest_settings,
    privacy_deadline_days,
    privacy_export_dir,
    privacy_key,
)
from dagster_project.warehouse import Warehouse


@dataclass
class ProcessReport:
    intake: IntakeReport
    outcomes: list[RequestOutcome] = field(default_factory=list)
    leased_elsewhere: int = 0  # requests another run is working on
    sealed: int = 0

    def lines(self) -> list[str]:
        shown = [f"{len(self.intake.new_requests)} new requests, {len(self.intake.rejected)} lines rejected"]
        for outcome in self.outcomes:
            done = f"{len(outcome.steps_done)} steps done"
            failing = "; ".join(f"{step}: {error}" for step, error in outcome.failed.items())
            shown.append(f"{outcome.request_id} ({outcome.type}): {outcome.state}, {done}"
                         + (f"; failing {failing}" if failing else ""))
        if self.leased_elsewhere:
            shown.append(f"{self.leased_elsewhere} requests are being worked on by another run")
        return shown


def privacy_context(settings: Settings, clock: Callable[[], datetime] | None = None,
                    rebuild: Callable[[], dict] | None = None) -> PrivacyContext:
    return PrivacyContext(
        warehouse=Warehouse(settings), settings=settings, keys=SubjectKeys(privacy_key(settings.data_dir)),
        outbox_dir=load_activation_settings().outbox_dir, export_dir=privacy_export_dir(settings.data_dir),
        erasers=configured_erasers(settings), clock=clock or _utcnow, rebuild=rebuild,
        archive_dir=load_ingest_settings().archive_dir, audience_relations=_audience_relations())


def process_requests(context: PrivacyContext, owner: str | None = None) -> ProcessReport:
    owner = owner or run_owner()
    warehouse = context.warehouse
    report = ProcessReport(take_in_requests(warehouse, Path(context.settings.landing_dir), context.keys,
                                            context.clock(), privacy_deadline_days()))
    with warehouse.connect() as conn:
        ensure_privacy_tables(conn)
        candidates = workable_requests(conn, context.clock())
    # Every erasure of the run first deletes, then one dbt rebuild serves them all, then each is verified.
    context = dataclasses.replace(context, rebuild=_once(context.rebuild or partial(dbt_rebuild, context.settings)))
    paused = []
    for request in candidates:
        with warehouse.connect() as conn:
            leased = take_lease(conn, request.request_id, owner, context.clock())
        if not leased:
            report.leased_elsewhere += 1
            continue
        steps = erasure_steps() if request.type == "erase" else access_steps()
        outcome = run_request(warehouse, context, request, steps, owner, context.clock,
                              until=REBUILD if request.type == "erase" else None)
        if outcome.state == PAUSED:
            paused.append(request)
        else:
            report.outcomes.append(outcome)
    for request in paused:
        report.outcomes.append(run_request(warehouse, context, request, erasure_steps(), owner, context.clock))
    report.sealed = seal_all(warehouse, context.clock())[1]
    return report


def _once(rebuild: Callable[[], dict]) -> Callable[[], dict]:
    """The rebuild, run at most once per privacy run (a failed one is tried again by the next request)."""
    done: list[dict] = []

    def rebuild_once() -> dict:
        if not done:
            done.append(rebuild())
            return done[0]
        return {**done[0], "shared": "rebuilt once for every erasure of this run"}

    return rebuild_once


def _audience_relations() -> dict[str, str]:
    """campaign -> its audience model, so rewritten previews leave first names out as the daily run does."""
    from dagster_project.defs.personalization.campaign_assets import load_campaigns
    from dagster_project.personalization.campaigns import CampaignError

    try:
        return {campaign.campaign_id: campaign.relation for campaign in load_campaigns()}
    except (CampaignError, OSError):  # a broken campaign must not stop an erasure: previews show names then
        return {}


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
