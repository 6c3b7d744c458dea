"""How `make demo` tells a run: a line per run (seconds, outcome) and a line per stage below it with
its seconds and a short result read from the stage's asset metadata. Seconds are the run's own, never
merged across runs."""

from __future__ import annotations

import functools
from collections import defaultdict

import dagster as dg

from dagster_project.pipeline import step_seconds

DBT_STEP = "mailroom_dbt_models"


def print_run(instance: dg.DagsterInstance, title: str, result, steps: bool = True) -> None:
    seconds = step_seconds(instance, result.run_id)
    verdict = "succeeded" if result.success else "FAILED"
    if not steps:
        print(f"{title:<60} run {result.run_id[:8]} {verdict} in {sum(seconds.values()):,.1f} s")
        return
    print(f"\n{title}\n  run {result.run_id[:8]} {verdict} in {sum(seconds.values()):,.1f} s")
    materialized, checks = _metadata_by_step(result), _checks_by_step(result)
    # A gate is a step of its own that materializes nothing; dbt's tests run inside the dbt step.
    gate_steps = [step for step in seconds if step in checks and step not in materialized]
    # The journeys' steps (their campaigns' content, the ticks, the sends) read as one line.
    journey_steps = [step for step in seconds if step not in gate_steps and materialized.get(step)
                     and all(_is_journey_part(key) for key in materialized[step])]
    for step, step_time in seconds.items():
        if step not in gate_steps and step not in journey_steps:
            print(f"    {_step_name(step, materialized.get(step, {})):<34} {step_time:6.1f} s  "
                  f"{_step_result(step, materialized.get(step, {}), checks.get(step, []))}")
    if journey_steps:
        parts = {key: value for step in journey_steps for key, value in materialized[step].items()}
        journey_time = sum(seconds[step] for step in journey_steps)
        print(f"    {f'journeys ({len(journey_steps)} steps)':<34} {journey_time:6.1f} s  {_journeys_result(parts)}")
    if gate_steps:
        gates = [check for step in gate_steps for check in checks[step]]
        gate_time = sum(seconds[step] for step in gate_steps)
        print(f"    {f'quality gates ({len(gates)} checks)':<34} {gate_time:6.1f} s  {_verdict_counts(gates)}")


def print_gates(results) -> None:
    """The latest outcome of every gate; dbt's tests (checks of the dbt step) as one count."""
    latest: dict[tuple, dg.AssetCheckEvaluation] = {}
    dbt_tests: dict[tuple, dg.AssetCheckEvaluation] = {}
    for result in results:
        for step, checks in _checks_by_step(result).items():
            for check in checks:
                (dbt_tests if step == DBT_STEP else latest)[(check.asset_key, check.check_name)] = check
    if not latest and not dbt_tests:
        return
    print("\nQuality gates (each gate's expectations are on its asset's Checks tab):")
    journey_checks = [check for (key, _), check in latest.items() if _is_journey_part(key)]
    for (key, name), check in latest.items():
        if not _is_journey_part(key):
            print(f"  {key.to_user_string() + ' ' + name:<56} {_verdict(check):<8} {check.description or ''}")
    if journey_checks:
        failed = [f"{c.asset_key.to_user_string()} {c.check_name}" for c in journey_checks if not c.passed]
        print(f"  {f'journey campaigns ({len(journey_checks):,} checks)':<56} {_verdict_counts(journey_checks)}"
              + (f" ({', '.join(failed)})" if failed else " (audiences and send guards)"))
    if dbt_tests:
        print(f"  {f'dbt tests ({len(dbt_tests):,})':<56} {_verdict_counts(list(dbt_tests.values()))}")


@functools.cache
def _journey_campaigns() -> frozenset[str]:
    from dagster_project.defs.personalization.campaign_assets import load_campaigns

    return frozenset(c.campaign_id for c in load_campaigns() if c.campaign_type == "journey")


def _is_journey_part(key: dg.AssetKey) -> bool:
    """A journey's step, or an asset of a campaign only a journey sends (its audience, content, sends)."""
    journey_campaigns = _journey_campaigns()
    return (key.path[0] == "journeys" or (key.path[0] == "campaigns" and key.path[1] in journey_campaigns)
            or (key.path[0] == "marts" and key.path[-1].removeprefix("campaign_") in journey_campaigns))


def _journeys_result(parts: dict[dg.AssetKey, dict]) -> str:
    """Entries and messages of every journey (each journey's first step carries its totals)."""
    totals = {name: sum(value.get(name, 0) for value in parts.values())
              for name in ("entries", "active", "completed", "exited", "handed_over")}
    journeys = {key.path[1] for key in parts if key.path[0] == "journeys"}
    return (f"{len(journeys)} journeys: {totals['entries']:,} entries ({totals['active']:,} active, "
            f"{totals['completed']:,} completed, {totals['exited']:,} exited), "
            f"{totals['handed_over']:,} messages handed over")


def _metadata_by_step(result) -> dict[str, dict[dg.AssetKey, dict]]:
    by_step: dict[str, dict[dg.AssetKey, dict]] = defaultdict(dict)
    for event in result.get_asset_materialization_events():
        metadata = {name: item.value for name, item in event.materialization.metadata.items()}
        by_step[event.step_key][event.asset_key] = metadata
    return by_step


def _checks_by_step(result) -> dict[str, list[dg.AssetCheckEvaluation]]:
    by_step: dict[str, list[dg.AssetCheckEvaluation]] = defaultdict(list)
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            by_step[event.step_key].append(event.asset_check_evaluation_data)
    return by_step


def _step_name(step: str, assets: dict[dg.AssetKey, dict]) -> str:
    if step == DBT_STEP:
        return "dbt build"
    if len(assets) == 1:
        key = next(iter(assets))
        return key.path[-1] if key.path[0] == "campaigns" else key.to_user_string()  # weekly_picks_sends
    return step


def _step_result(step: str, assets: dict[dg.AssetKey, dict], checks: list) -> str:
    tests = f"; checks {_verdict_counts(checks)}" if checks else ""
    if step == DBT_STEP:
        return f"models and seeds built {len(assets):,}{tests}"
    return "; ".join(_asset_result(key, value) for key, value in assets.items()) + tests


def _asset_result(key: dg.AssetKey, value: dict) -> str:
    step = key.path[-1]
    if key.path[0] == "raw":
        return (f"{value.get('rows_loaded', 0):,} rows loaded, {value.get('rows_quarantined', 0):,} quarantined "
                f"({value.get('table_rows', 0):,} in the table)")
    if key.path[0] == "campaigns" and step.endswith("content"):
        return (f"{value['content_units']:,} content units ({value['llm_written']:,} by the LLM, "
                f"${value['llm_cost_usd']:.4f}), {value['review_queue_size']:,} to review")
    if key.path[0] == "campaigns" and step.endswith("messages"):
        waiting = value.get("remainder_awaiting_winner", 0)
        return (f"{value['messages_rendered']:,} rendered, {value['holdout_size']:,} holdout, "
                f"{value['suppressed']:,} suppressed" + (f", {waiting:,} wait for the test's winner" if waiting else "")
                + f" (run {value['run_key']})")
    if key.path[0] == "campaigns" and step.endswith("sends"):
        return (f"{value['handed_over']:,} handed over, {value['suppressed']:,} suppressed at send, "
                f"{value['not_due_yet']:,} due later, {value['failed']:,} failed")
    if key.path[0] == "campaigns" and step.endswith("rollout"):
        return (f"{value['runs_decided_now']:,} run(s) decided now, {value['runs_waiting']:,} waiting, "
                f"{value['remainder_rendered']:,} remainder messages rendered")
    if key.path[0] == "campaigns" and step.endswith("readout"):
        return f"readout of run {value['run_key']}" if "run_key" in value else "no units yet"
    if key == dg.AssetKey(["crm", "contacts"]):
        return (f"{value['rows_acknowledged']:,} contacts written to {value['destination']}, "
                f"{value['rows_unchanged']:,} unchanged, {value['rows_rejected']:,} refused")
    if "rows" in value:
        return f"{value['rows']:,} rows"
    return "done"


def _verdict(check: dg.AssetCheckEvaluation) -> str:
    if check.passed:
        return "passed"
    return "BLOCKED" if check.severity == dg.AssetCheckSeverity.ERROR else "warning"


def _verdict_counts(checks: list) -> str:
    verdicts = [_verdict(check) for check in checks]
    return ", ".join(f"{verdicts.count(v):,} {v}" for v in ("passed", "warning", "BLOCKED") if v in verdicts)
