"""`make demo`: generate the sample data set, run the whole pipeline on the embedded warehouse, and
print what was built.

    python -m dagster_project.demo [--customers 2000] [--seed 42] [--as-of YYYY-MM-DD]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

import dagster as dg

from dagster_project.pipeline import (
    quarantine_reasons,
    run_batch_campaigns,
    run_pipeline,
    step_seconds,
    warehouse_table_rows,
)
from dagster_project.settings import ActivationSettings, Settings, load_activation_settings, load_settings
from dagster_project.warehouse import Warehouse

SAMPLE_MARKER = Path("truth") / "summary.json"


def prepare_sample_data(settings: Settings, customers: int, seed: int, as_of: date | None) -> str:
    """Generate sample landing files unless the same sample is already there (any date, unless
    `as_of` asks for one). Refuses to write into a landing directory that holds anything else: real
    data must never be mixed with samples."""
    from dagster_project.sample_data import generate

    landing = settings.landing_dir
    marker = landing / SAMPLE_MARKER
    wanted = {"customers": customers, "seed": seed, **({"as_of": as_of.isoformat()} if as_of else {})}
    if marker.exists():
        existing = json.loads(marker.read_text())
        if all(str(existing.get(k)) == str(v) for k, v in wanted.items()):
            return f"sample data already in {landing} ({customers:,} customers, seed {seed}); reusing it"
        raise SystemExit(
            f"{landing} holds a different sample ({existing.get('customers')} customers, seed "
            f"{existing.get('seed')}, as of {existing.get('as_of')}). Run `make clean-data` to start over, "
            "or pass the same --customers/--seed/--as-of."
        )
    if landing.exists() and any(landing.iterdir()):
        raise SystemExit(
            f"{landing} already holds files that are not Mailroom sample data. The demo will not mix "
            "samples into it: set MAILROOM_LANDING_DIR (or MAILROOM_DATA_DIR) to an empty directory."
        )
    as_of = as_of or datetime.now(timezone.utc).date()
    started = time.perf_counter()
    summary = generate(out_dir=landing, customers=customers, seed=seed, as_of=as_of)
    return (
        f"generated {customers:,} customers into {landing} in {time.perf_counter() - started:.1f}s "
        f"({summary.get('cdp_events', '?'):,} CDP events)"
    )


def print_stages_and_gates(instance: dg.DagsterInstance, runs) -> None:
    checks = [check for run in runs for check in run.get_asset_check_evaluations()]
    check_steps = {f"{c.asset_key.to_python_identifier()}_{c.check_name}" for c in checks}
    stages = {step: seconds for run in runs for step, seconds in step_seconds(instance, run.run_id).items()}
    print("\nSeconds per stage:")
    for step, seconds in stages.items():
        if step not in check_steps:
            print(f"  {step:<40} {seconds:8.2f}")
    print(f"  {f'quality gates ({len(checks)} checks)':<40} {sum(stages.get(s, 0.0) for s in check_steps):8.2f}")
    print("\nQuality gates:")
    for check in checks:
        verdict = "passed" if check.passed else ("BLOCKED" if check.severity == dg.AssetCheckSeverity.ERROR else "warning")
        print(f"  {check.asset_key.to_user_string() + ' ' + check.check_name:<48} {verdict:<8} {check.description or ''}")


def print_campaigns(runs) -> None:
    """One line per campaign asset: content written, messages rendered, holdout, suppressed."""
    lines = []
    for run in runs:
        for event in run.get_asset_materialization_events():
            key, metadata = event.asset_key, event.materialization.metadata
            if key.path[0] != "campaigns":
                continue
            value = {name: item.value for name, item in metadata.items()}
            if key.path[-1] == "content":
                lines.append(f"  {key.path[1]:<18} content   {value['content_units']:>6,} units "
                             f"({value['llm_written']:,} by the LLM, ${value['llm_cost_usd']:.4f}), "
                             f"{value['review_queue_size']:,} to review")
            elif key.path[-1] == "sends":
                destinations = ", ".join(f"{n:,} to {name}" for name, n in value["by_destination"].items())
                lines.append(f"  {key.path[1]:<18} sends     {value['handed_over']:>6,} handed over "
                             f"({destinations or 'none'}), "
                             f"{value['suppressed']:,} suppressed at send, {value['not_due_yet']:,} not due yet, "
                             f"{value['failed']:,} failed")
            elif key.path[-1] == "messages":
                waiting = value.get("remainder_awaiting_winner", 0)
                lines.append(f"  {key.path[1]:<18} messages  {value['messages_rendered']:>6,} rendered, "
                             f"{value['holdout_size']:,} holdout, {value['suppressed']:,} suppressed"
                             f"{f', {waiting:,} waiting for the test winner' if waiting else ''} "
                             f"(run {value['run_key']})")
    if lines:
        print("\nCampaigns (previews in the UI: make dev, asset campaigns/<id>/content):")
        print("\n".join(lines))


def print_outbox(activation: ActivationSettings) -> None:
    if "outbox" not in activation.destinations or not activation.outbox_dir.is_dir():
        return
    files = sorted(activation.outbox_dir.rglob("*.eml"))
    print(f"\nOutbox {activation.outbox_dir}: {len(files):,} messages (.eml, open any in a mail client)")
    for folder in sorted({path.parent for path in files}):
        print(f"  {folder.name:<18} {sum(1 for path in files if path.parent == folder):>6,}")


def close_the_loop(instance: dg.DagsterInstance, settings: Settings):
    """The provider's answer to what was sent (deliveries, opens, clicks, bounces, unsubscribes) lands
    as webhook events; the daily pipeline then ingests them, rebuilds features and suppressions, and
    writes the changes back to the CRM."""
    from dagster_project.sample_data.engagement import simulate_engagement

    events = simulate_engagement(Warehouse(settings), settings.landing_dir)
    if events is None:
        print("\nEngagement: no new sends to simulate provider events for")
        return None
    print(f"\nEngagement: provider events for the sent messages in {events.relative_to(settings.data_dir)}; "
          "running the daily pipeline again to take them in")
    loop = run_pipeline(instance)
    with Warehouse(settings).connect() as conn:
        facts = {table: int(conn.scalar(f"SELECT count(*) FROM marts.{table}")) for table in (
            "fct_email_sends", "fct_email_deliveries", "fct_email_opens", "fct_email_clicks", "fct_email_bounces",
            "fct_email_unsubscribes", "fct_email_conversions")}
        reasons = conn.fetchall("SELECT ineligible_reason, count(*) FROM marts.send_eligibility "
                                "WHERE NOT is_eligible GROUP BY 1 ORDER BY 2 DESC")
    print("  " + ", ".join(f"{table.removeprefix('fct_email_')} {n:,}" for table, n in facts.items()))
    print("  suppressed now: " + ", ".join(f"{reason} {n:,}" for reason, n in reasons))
    for event in loop.get_asset_materialization_events():
        if event.asset_key == dg.AssetKey(["crm", "contacts"]):
            value = {name: item.value for name, item in event.materialization.metadata.items()}
            print(f"  CRM ({value['destination']}): {value['rows_acknowledged']:,} contacts written, "
                  f"{value['rows_unchanged']:,} unchanged, {value['rows_rejected']:,} refused")
    return loop


def roll_out_experiments(instance: dg.DagsterInstance, settings: Settings) -> list:
    """The readout of each campaign, then each roll-out experiment's look: the loop has just taken in
    the test's engagement, so the roll-out job runs its own readout, decision, remainder and sends."""
    from dagster_project.defs.personalization.campaign_assets import (
        load_campaigns,
        readout_key,
        rollout_key,
        sends_key,
    )
    from dagster_project.experiments.spec import primary_metric
    from dagster_project.experiments.warehouse_readout import campaign_readouts
    from dagster_project.pipeline import load_definitions

    campaigns = load_campaigns()
    print("\nExperiments (full tables on campaigns/<id>/readout in the UI):")
    with Warehouse(settings).connect() as conn:
        for campaign in campaigns:
            metric = primary_metric(campaign.experiment)
            readouts = campaign_readouts(conn, campaign)
            print(f"  {campaign.campaign_id} run {readouts.run_key or '-'}")
            for title, readout in (("variants", readouts.primary), ("vs holdout", readouts.holdout)):
                for line in _readout_lines(readout, metric if title == "variants" else "converted"):
                    print(f"    {title:<11} {line}")
    runs = []
    definitions = load_definitions()
    for campaign in campaigns:
        if not (campaign.experiment and campaign.experiment.rolls_out):
            continue
        run = definitions.resolve_job_def(f"{campaign.campaign_id}_rollout").execute_in_process(
            instance=instance, raise_on_error=False,
            asset_selection=[readout_key(campaign), rollout_key(campaign), sends_key(campaign)])
        runs.append(run)
        for event in run.get_asset_materialization_events():
            if event.asset_key == rollout_key(campaign):
                value = {name: item.value for name, item in event.materialization.metadata.items()}
                print(f"  {campaign.campaign_id} roll-out: {value['runs_decided_now']:,} run(s) decided now, "
                      f"{value['runs_waiting']:,} waiting, {value['remainder_rendered']:,} remainder messages rendered")
                for line in value["looks"].splitlines()[2:]:
                    print("    " + line.strip("| ").replace(" | ", " · "))
            elif event.asset_key == sends_key(campaign):
                value = {name: item.value for name, item in event.materialization.metadata.items()}
                print(f"  {campaign.campaign_id} remainder sends: {value['handed_over']:,} handed over now, "
                      f"{value['not_due_yet']:,} due later at each customer's best hour (job deliver_due_messages)")
    return runs


def _readout_lines(readout, metric: str) -> list[str]:
    if readout is None:
        return ["not enough units yet"]
    units = ", ".join(f"{arm.arm} {arm.units:,}" for arm in readout.arms)
    lines = [f"units {units}; SRM p={readout.srm_p_value:.3g}{' (MISMATCH: no decision)' if readout.has_srm else ''}"]
    for row in readout.rows:
        if row.metric != metric:
            continue
        value = (lambda v: f"{v * 100:.1f}%") if row.kind == "binary" else (lambda v: f"{v:.2f}")
        interval = (f" [{row.difference_low * 100:+.1f}, {row.difference_high * 100:+.1f}]pp"
                    if row.difference_low is not None and row.kind == "binary" else "")
        verdict = "significant" if row.is_significant else "not significant"
        lines.append(f"{metric}: {row.variant} {value(row.variant_value)} vs {readout.control} "
                     f"{value(row.control_value)}{interval}, adjusted p={row.adjusted_p_value:.2g}, {verdict}")
    return lines


def sample_as_of(settings: Settings) -> str | None:
    marker = settings.landing_dir / SAMPLE_MARKER
    return json.loads(marker.read_text()).get("as_of") if marker.exists() else None


def _instance() -> dg.DagsterInstance:
    # With DAGSTER_HOME set (the Makefile sets it) the run shows up in `make dev` afterwards.
    try:
        return dg.DagsterInstance.get()
    except dg.DagsterError:  # DAGSTER_HOME unset or unusable: keep this run in memory
        return dg.DagsterInstance.ephemeral()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", type=date.fromisoformat, default=None,
                        help="last day of the sample's history (default: today for a new sample)")
    args = parser.parse_args(argv)

    settings = load_settings()
    print(f"Mailroom demo on {Warehouse(settings).description}")
    print(f"  {prepare_sample_data(settings, args.customers, args.seed, args.as_of)}")

    if not settings.as_of:
        # Time-window rules (volume bands, CASL expiry) look back from the sample's last day, so a
        # sample generated days ago still reads as a normal day rather than a stopped feed.
        sample_day = sample_as_of(settings)
        if sample_day:
            os.environ["MAILROOM_AS_OF"] = sample_day
            print(f"  time rules evaluated as of {sample_day}, the sample's last day")

    instance = _instance()
    result = run_pipeline(instance)
    print(f"\nPipeline run {result.run_id}: {'succeeded' if result.success else 'FAILED'}")
    campaign_runs = run_batch_campaigns(instance) if result.success else []
    print_stages_and_gates(instance, [result, *campaign_runs])
    print_campaigns([result, *campaign_runs])
    print_outbox(load_activation_settings())
    loop = close_the_loop(instance, settings) if result.success and all(r.success for r in campaign_runs) else None
    rollouts = roll_out_experiments(instance, settings) if loop is not None and loop.success else []
    runs = [result, *campaign_runs, *([loop] if loop else []), *rollouts]
    print("\nTables built (rows):")
    for table, rows in warehouse_table_rows(settings).items():
        print(f"  {table:<40} {rows:>10,}")
    reasons = quarantine_reasons(settings)
    if reasons:
        print("\nQuarantined rows (kept in raw.quarantine with their reason):")
        for source, kind, rows in reasons:
            print(f"  {source:<8} {kind:<32} {rows:>8,}")
    failed = [run for run in runs if not run.success]
    for run in failed:
        for event in run.all_events:
            if event.is_failure:
                print(f"\n{event.step_key}: {event.message}", file=sys.stderr)
    if failed:
        return 1
    print("\nNext: `make dev` and open http://127.0.0.1:3000 to see the lineage and this run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
