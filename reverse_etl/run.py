"""Send every campaign's due messages: what the Dagster asset, the CLI and the demo share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from dagster_project.settings import ActivationSettings, Settings
from dagster_project.warehouse import Warehouse
from reverse_etl import ledger, pauses
from reverse_etl.chain import build_finders, build_routes, send_policy
from reverse_etl.concurrency import warehouse_session
from reverse_etl.sender import Sender, SendReport, utc_now
from reverse_etl.throttle import Backoff


def send_campaigns(settings: Settings, activation: ActivationSettings, campaign_ids: Sequence[str] | None = None,
                   dry_run: bool = False, log: Callable[[str], None] = print, run_id: str | None = None,
                   clock: Callable[[], datetime] = utc_now) -> list[SendReport]:
    """One report per campaign; the routes (and so breakers and rate limits) are shared by all.

    The sender's clock is the wall clock, whatever MAILROOM_AS_OF says (`clock` is for tests).
    `run_id` names the run in the ledger's leases: Dagster's run id when Dagster runs it."""
    warehouse = Warehouse(settings)
    policy = send_policy(activation)
    if campaign_ids is None:
        campaign_ids = campaigns_with_messages(warehouse, policy.warehouse_wait_seconds, log)
    routes = build_routes(activation, dry_run=dry_run)
    sender = Sender(warehouse, routes, policy, finders=build_finders(activation, dry_run), dry_run=dry_run,
                    log=log, backoff=Backoff(base_seconds=activation.backoff_seconds), clock=clock, run_id=run_id)
    try:
        return [sender.send_campaign(campaign_id) for campaign_id in campaign_ids]
    finally:
        for route in routes:
            route.destination.close()


def campaigns_with_messages(warehouse: Warehouse, wait_seconds: float = 0.0,
                            log: Callable[[str], None] = lambda m: None) -> list[str]:
    with warehouse_session(warehouse, commit=False, wait_seconds=wait_seconds, log=log) as conn:
        if not conn.table_exists("ops", "campaign_messages"):
            return []
        return [row[0] for row in conn.fetchall("SELECT DISTINCT campaign_id FROM ops.campaign_messages ORDER BY 1")]


def resolve_unknown(settings: Settings, activation: ActivationSettings, campaign_ids: Sequence[str], decision: str,
                    log: Callable[[str], None] = print) -> dict[str, int]:
    """An operator's decision on messages held with an unknown outcome: 'accepted' records them as
    sent, 'resend' plans them again. Returns campaign -> messages settled."""
    settled = {}
    with warehouse_session(Warehouse(settings), commit=True, wait_seconds=activation.duckdb_wait_seconds,
                           log=log) as conn:
        ledger.ensure_ledger(conn)
        for campaign_id in campaign_ids:
            settled[campaign_id] = ledger.resolve_unknown(conn, campaign_id, decision, utc_now())
            conn.commit()
    return settled


def record_pauses(settings: Settings, activation: ActivationSettings, campaign_ids: Sequence[str], action: str,
                  reason: str, actor: str, log: Callable[[str], None] = print) -> dict[str, pauses.PauseEntry | None]:
    """Pause or resume the campaigns' sends (action pauses.PAUSE or pauses.RESUME). Returns campaign -> the
    entry recorded, or None where the campaign was in that state already (nothing recorded)."""
    change = {pauses.PAUSE: pauses.pause, pauses.RESUME: pauses.resume}[action]
    recorded = {}
    with warehouse_session(Warehouse(settings), commit=True, wait_seconds=activation.duckdb_wait_seconds,
                           log=log) as conn:
        for campaign_id in campaign_ids:
            recorded[campaign_id] = change(conn, campaign_id, reason, actor, utc_now())
            conn.commit()
    return recorded


def paused_campaigns(settings: Settings, activation: ActivationSettings,
                     log: Callable[[str], None] = print) -> list[pauses.PauseEntry]:
    with warehouse_session(Warehouse(settings), commit=False, wait_seconds=activation.duckdb_wait_seconds,
                           log=log) as conn:
        return pauses.paused_campaigns(conn)


def paused_line(report: SendReport) -> str:
    """What a paused campaign's summary starts with: why, how much waits, and how to resume it."""
    return (f"{report.campaign_id}: paused - {report.paused.describe()}; "
            f"{report.ledger.get(ledger.PLANNED, 0):,} messages stay planned; resume with "
            f"`python -m reverse_etl.send --resume --campaign {report.campaign_id}`")


def summary_lines(report: SendReport) -> list[str]:
    if report.skipped:
        return [f"{report.campaign_id}: skipped - {report.skipped}"]
    verb = "would hand over" if report.dry_run else "handed over"
    lines = [paused_line(report)] if report.paused else []
    lines += [f"{report.campaign_id}: {verb} {report.handed_over:,} "
             f"({', '.join(f'{n:,} to {d}' for d, n in report.accepted.items()) or 'none'}), "
             f"{sum(report.suppressed.values()):,} suppressed, {report.deferred:,} not due yet, "
             f"{sum(report.failed.values()):,} failed, {report.awaiting:,} awaiting reconciliation"
             + (f", {report.held_elsewhere:,} held by another run" if report.held_elsewhere else "")]
    if report.suppressed:
        lines.append("  suppressed: " + ", ".join(f"{reason} {n:,}" for reason, n in report.suppressed.most_common()))
    if report.failed:
        lines.append("  failed: " + ", ".join(f"{reason} {n:,}" for reason, n in report.failed.most_common()))
    if report.reconciled:
        lines.append("  from an interrupted run: " + ", ".join(f"{k} {n:,}" for k, n in report.reconciled.items()))
    if report.reconciled.get("held"):
        lines.append(f"  held for an operator: python -m reverse_etl.send --resolve-unknown accepted|resend "
                     f"--campaign {report.campaign_id}")
    if report.lease_lost:
        lines.append("  stopped early: this run's lease ran out and another run took its messages over")
    lines += [f"  failover {switch}" for switch in report.switches]
    return lines
