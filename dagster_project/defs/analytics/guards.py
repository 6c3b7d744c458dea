"""Deliverability guards as asset checks on each campaign's sends asset (campaigns/<id>/<id>_sends):

    hard_bounce_rate  spam_complaint_rate  unsubscribe_spike

judged on the campaign's latest run in marts.campaign_performance (dagster_project/analytics/guards.py).
WARN severity at the warning threshold, ERROR at the error threshold; an ERROR pauses the campaign's
sends (reverse_etl/pauses.py, actor guard:<check>) until somebody resumes it. Not blocking: the
sends of the run that found it are done by then; the pause holds every later one.

They run wherever the sends asset runs (the campaign's job, deliver_due_messages, a roll-out), and
in the daily job after dbt has rebuilt marts.campaign_performance with the day's provider events.
A person who resumed a campaign after a guard paused it has seen that run's numbers: the guard does
not pause it again for them (it still reports the ERROR); a later run that crosses again pauses it.
"""

from datetime import datetime, timezone

import dagster as dg

from dagster_project.analytics.guards import ERROR, GUARDS, NOT_JUDGED, PASS, UNSUBSCRIBES, Verdict, campaign_verdicts
from dagster_project.defs.analytics.guard_resource import GuardResource
from dagster_project.defs.experiments.assets import campaign_performance_key
from dagster_project.defs.personalization.campaign_assets import load_campaigns, sends_key
from dagster_project.personalization.campaigns import Campaign
from dagster_project.resources import WarehouseResource
from dagster_project.warehouse import Connection
from reverse_etl import pauses


def guard_check_keys(campaign: Campaign) -> list[dg.AssetCheckKey]:
    return [dg.AssetCheckKey(sends_key(campaign), guard.name) for guard in GUARDS]


def build_guard_checks(campaign: Campaign) -> dg.AssetChecksDefinition:
    specs = [dg.AssetCheckSpec(guard.name, asset=sends_key(campaign), additional_deps=[campaign_performance_key()],
                               blocking=False, description=f"{guard.description} Thresholds: {guard.variable}.")
             for guard in GUARDS]

    @dg.multi_asset_check(specs=specs, name=f"{campaign.campaign_id}_deliverability_guards", can_subset=True,
                          description=f"Deliverability guards of campaign {campaign.campaign_id}: "
                                      "an ERROR pauses its sends.")
    def deliverability_guards(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                              guards: GuardResource):
        selected = {key.name for key in context.selected_asset_check_keys}
        with warehouse.warehouse().connect() as conn:
            verdicts = [v for v in campaign_verdicts(conn, campaign.campaign_id, guards.settings)
                        if v.guard.name in selected]
            outcomes = {v.guard.name: _pause_if_crossed(conn, v) for v in verdicts}
        for verdict in verdicts:
            outcome = outcomes[verdict.guard.name]
            if verdict.level == ERROR:
                context.log.warning(f"{campaign.campaign_id}: {verdict.summary} {outcome}")
            yield _result(verdict, outcome)

    return deliverability_guards


def _pause_if_crossed(conn: Connection, verdict: Verdict) -> str:
    """Pause the campaign when the verdict crossed its error threshold; returns what became of the pause."""
    if verdict.level != ERROR:
        return ""
    actor = f"guard:{verdict.guard.name}"
    resumed = pauses.resumed_since_pause_by(conn, verdict.campaign_id, actor, verdict.run_key)
    if resumed is not None:
        return (f"Not paused again: this check paused the campaign for run {verdict.run_key} and it was resumed "
                f"since - {resumed.describe()}.")
    recorded = pauses.pause(conn, verdict.campaign_id, verdict.summary, actor, _utc_now(), run_key=verdict.run_key)
    if recorded is not None:
        return (f"Its sends are paused; its planned messages wait until somebody resumes it (job "
                f"resume_campaign_sends, or `python -m reverse_etl.send --resume --campaign {verdict.campaign_id}`).")
    in_force = pauses.current_pause(conn, verdict.campaign_id)
    return f"Paused already: {in_force.describe()}." if in_force else ""


def _result(verdict: Verdict, outcome: str) -> dg.AssetCheckResult:
    metadata = {
        "verdict": verdict.level,
        "run_key": verdict.run_key or "-",
        "warn_threshold": dg.MetadataValue.float(verdict.warn),
        "error_threshold": dg.MetadataValue.float(verdict.error),
        f"{verdict.guard.volume_of}_judged": verdict.volume,
        verdict.guard.events.replace(" ", "_"): verdict.count,
        "pause": outcome or "-",
    }
    if verdict.value is not None:  # plotted across runs by the UI
        name = "multiple_of_expected" if verdict.guard is UNSUBSCRIBES else verdict.guard.name
        metadata[name] = dg.MetadataValue.float(round(verdict.value, 6))
    if verdict.expected is not None:
        metadata["expected_unsubscribes"] = dg.MetadataValue.float(round(verdict.expected, 2))
        metadata["earlier_runs"] = verdict.history_runs
    return dg.AssetCheckResult(
        check_name=verdict.guard.name,
        passed=verdict.level in (PASS, NOT_JUDGED),
        severity=dg.AssetCheckSeverity.ERROR if verdict.level == ERROR else dg.AssetCheckSeverity.WARN,
        description=f"{verdict.summary} {outcome}".strip(),
        metadata=metadata,
    )


def _utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dg.definitions
def deliverability_guards() -> dg.Definitions:
    return dg.Definitions(asset_checks=[build_guard_checks(campaign) for campaign in load_campaigns()])
