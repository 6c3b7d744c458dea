"""What a send shows in the UI: handed over per destination, suppressions and failures with their
reasons, failovers, and the ledger's states for the campaign."""

import dagster as dg

from reverse_etl.sender import SendReport


def _table(counter, label: str) -> dg.MetadataValue:
    if not counter:
        return dg.MetadataValue.md(f"No {label}.")
    rows = "\n".join(f"| {key} | {count:,} |" for key, count in sorted(counter.items(), key=lambda kv: -kv[1]))
    return dg.MetadataValue.md(f"| {label} | messages |\n|---|---|\n{rows}")


def send_metadata(report: SendReport) -> dict:
    return {
        "dry_run": report.dry_run,
        "handed_over": report.handed_over,
        "by_destination": _table(report.accepted, "destination"),
        "suppressed": sum(report.suppressed.values()),
        "suppression_reasons": _table(report.suppressed, "reason"),
        "failed": sum(report.failed.values()),
        "failure_reasons": _table(report.failed, "reason"),
        "not_due_yet": report.deferred,
        "next_due_at": report.next_due_at.isoformat(sep=" ") + " UTC" if report.next_due_at else "-",
        "awaiting_reconciliation": report.awaiting,  # rows in `sending` after the pass, whatever run left them
        "outcome_unknown_this_run": report.unknown,
        "held_by_another_run": report.held_elsewhere,
        "skipped": report.skipped or "-",
        # A paused campaign's messages stay planned (ledger_states shows how many) until it is resumed.
        "paused": report.paused.describe() if report.paused else "-",
        "reconciled_from_earlier_run": _table(report.reconciled, "outcome"),
        "retries": report.retries,
        "failovers": dg.MetadataValue.md("\n".join(f"- {s}" for s in report.switches) or "None."),
        "ledger_states": _table(report.ledger, "state"),
        # What the latest run has come to, whatever this pass did (a pass with nothing due hands over 0).
        "latest_run": report.latest_run or "-",
        "latest_run_states": _table(report.latest_run_ledger, "state"),
        "latest_run_accepted": report.latest_run_ledger.get("accepted", 0),
        "latest_run_suppressed": report.latest_run_ledger.get("suppressed", 0),
        "latest_run_failed": report.latest_run_ledger.get("failed", 0),
        "campaign_accepted": report.ledger.get("accepted", 0),
        "seconds": round(report.seconds, 2),
    }
