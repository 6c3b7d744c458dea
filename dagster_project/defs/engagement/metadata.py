"""What a CRM sync shows in the UI: the target, the plan (new, changed, retried, unchanged; a full sync
and why, when the target lost rows), what the CRM acknowledged or refused and why, and whether anything
is left for the next run."""

import dagster as dg

from reverse_etl.sync.report import SyncReport


def sync_metadata(report: SyncReport) -> dict:
    plan = "\n".join(f"| {kind} | {count:,} |" for kind, count in report.plan.due.items())
    rejections = "\n".join(f"| {key} | {reason} |" for key, reason in list(report.rejections.items())[:20])
    return {
        "dry_run": report.dry_run,
        "destination": report.destination,
        # Which database table or HubSpot portal: sync state is kept per target (never a password).
        "target": report.target,
        "full_sync_because": report.target_reset or "",
        "mode": report.mode,
        "rows_in_model": report.plan.total,
        "rows_planned": report.planned,
        "rows_sent": report.sent,
        "rows_acknowledged": report.acknowledged,
        "rows_rejected": report.rejected,
        "rows_unchanged": report.skipped,
        "rows_left_for_next_run": report.failed,
        "requests": report.requests,
        "retries": report.retries,
        "plan": dg.MetadataValue.md(f"| change | rows |\n|---|---|\n{plan}"),
        "rejections": dg.MetadataValue.md(
            f"| contact | reason |\n|---|---|\n{rejections}" if rejections else "No row was refused."),
        "seconds": round(report.seconds, 2),
    }
