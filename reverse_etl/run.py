"""Send every campaign's due messages: what the Dagster asset, the CLI and the demo share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dagster_project.settings import ActivationSettings, Settings
from dagster_project.warehouse import Warehouse
from reverse_etl.chain import build_finders, build_routes, send_policy
from reverse_etl.sender import Sender, SendReport
from reverse_etl.throttle import Backoff


def send_campaigns(settings: Settings, activation: ActivationSettings, campaign_ids: Sequence[str] | None = None,
                   dry_run: bool = False, log: Callable[[str], None] = print) -> list[SendReport]:
    """One report per campaign; the routes (and so breakers and rate limits) are shared by all."""
    warehouse = Warehouse(settings)
    if campaign_ids is None:
        campaign_ids = campaigns_with_messages(warehouse)
    routes = build_routes(activation, dry_run=dry_run)
    sender = Sender(warehouse, routes, send_policy(activation), now=settings.reference_time(),
                    finders=build_finders(activation), dry_run=dry_run, log=log,
                    backoff=Backoff(base_seconds=activation.backoff_seconds))
    try:
        return [sender.send_campaign(campaign_id) for campaign_id in campaign_ids]
    finally:
        for route in routes:
            route.destination.close()


def campaigns_with_messages(warehouse: Warehouse) -> list[str]:
    with warehouse.connect() as conn:
        if not conn.table_exists("ops", "campaign_messages"):
            return []
        return [row[0] for row in conn.fetchall("SELECT DISTINCT campaign_id FROM ops.campaign_messages ORDER BY 1")]


def summary_lines(report: SendReport) -> list[str]:
    verb = "would hand over" if report.dry_run else "handed over"
    lines = [f"{report.campaign_id}: {verb} {report.handed_over:,} "
             f"({', '.join(f'{n:,} to {d}' for d, n in report.accepted.items()) or 'none'}), "
             f"{sum(report.suppressed.values()):,} suppressed, {report.deferred:,} not due yet, "
             f"{sum(report.failed.values()):,} failed, {report.unknown:,} awaiting reconciliation"]
    if report.suppressed:
        lines.append("  suppressed: " + ", ".join(f"{reason} {n:,}" for reason, n in report.suppressed.most_common()))
    if report.failed:
        lines.append("  failed: " + ", ".join(f"{reason} {n:,}" for reason, n in report.failed.most_common()))
    if report.reconciled:
        lines.append("  from an interrupted run: " + ", ".join(f"{k} {n:,}" for k, n in report.reconciled.items()))
    lines += [f"  failover {switch}" for switch in report.switches]
    return lines
