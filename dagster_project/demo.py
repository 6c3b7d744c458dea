"""`make demo`: generate the sample data set, run the whole pipeline on the embedded warehouse, and
tell what happened, one line per stage. Dagster's and dbt's own logs go to a file (`--verbose` shows
them here instead). The runs belong to the `mailroom` code location, so `make dev` shows them.

    python -m dagster_project.demo [--customers 2000] [--seed 42] [--as-of YYYY-MM-DD] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TextIO

import dagster as dg

from dagster_project.code_location_runs import CodeLocationRuns
from dagster_project.demo_journeys import show_journeys
from dagster_project.demo_privacy import show_privacy_requests
from dagster_project.demo_story import print_gates, print_run
from dagster_project.pipeline import PIPELINE_JOB, quarantine_reasons, warehouse_table_rows
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


def print_outbox(activation: ActivationSettings) -> None:
    if "outbox" not in activation.destinations or not activation.outbox_dir.is_dir():
        return
    files = sorted(activation.outbox_dir.rglob("*.eml"))
    print(f"\nOutbox {activation.outbox_dir}: {len(files):,} messages (.eml, open any in a mail client)")
    for folder in sorted({path.parent for path in files}):
        print(f"  {folder.name:<18} {sum(1 for path in files if path.parent == folder):>6,}")


class DemoRuns:
    """Runs jobs of the code location one after another, each run's Dagster and dbt output sent to
    the log file (unless verbose), and tells each run's story in the terminal."""

    def __init__(self, runs: CodeLocationRuns, log: TextIO | None):
        self.runs, self.log, self.finished = runs, log, []

    def run(self, title: str, job_name: str, asset_selection=None, steps: bool = True, run_config=None):
        with output_to(self.log):
            result = self.runs.run(job_name, asset_selection, run_config)
        self.finished.append(result)
        print_run(self.runs.instance, title, result, steps)
        return result


@contextmanager
def output_to(log: TextIO | None) -> Iterator[None]:
    """Send this process's stdout and stderr, and its subprocesses' (dbt), to `log` for a while."""
    if log is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds, saved_streams = (os.dup(1), os.dup(2)), (sys.stdout, sys.stderr)
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
        yield
    finally:
        log.flush()
        sys.stdout, sys.stderr = saved_streams
        for fd, saved in zip((1, 2), saved_fds):
            os.dup2(saved, fd)
            os.close(saved)


def close_the_loop(demo: DemoRuns, settings: Settings):
    """The provider's answer to what was sent (deliveries, opens, clicks, bounces, unsubscribes) lands
    as webhook events, and some clicks lead to purchases; the daily pipeline then ingests them, rebuilds
    features, suppressions and conversions, and writes the changes back to the CRM."""
    from dagster_project.sample_data.engagement import after_every_delivery, simulate_engagement

    warehouse = Warehouse(settings)
    events = simulate_engagement(warehouse, settings.landing_dir, latest=after_every_delivery(warehouse),
                                 by_send_time=True)
    if events is None:
        print("\nEngagement: no new sends to simulate provider events for")
        return None
    print(f"\nEngagement: provider events for the sent messages in {events.relative_to(settings.data_dir)}")
    loop = demo.run("Daily pipeline again, taking the engagement in", PIPELINE_JOB)
    with Warehouse(settings).connect() as conn:
        facts = {table: int(conn.scalar(f"SELECT count(*) FROM marts.{table}")) for table in (
            "fct_email_sends", "fct_email_deliveries", "fct_email_opens", "fct_email_clicks", "fct_email_bounces",
            "fct_email_unsubscribes", "fct_email_conversions")}
        revenue = conn.scalar("SELECT coalesce(sum(revenue), 0) FROM marts.fct_email_conversions")
        reasons = conn.fetchall("SELECT ineligible_reason, count(*) FROM marts.send_eligibility "
                                "WHERE NOT is_eligible GROUP BY 1 ORDER BY 2 DESC")
    print("  engagement facts: " + ", ".join(f"{table.removeprefix('fct_email_')} {n:,}" for table, n in facts.items())
          + f" (revenue {float(revenue or 0):,.2f})")
    print("  suppressed now: " + ", ".join(f"{reason} {n:,}" for reason, n in reasons))
    return loop


def roll_out_experiments(demo: DemoRuns, settings: Settings) -> list:
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
    from dagster_project.predictive.send_time_report import histogram_lines, local_hours_by_arm

    campaigns = [c for c in load_campaigns() if c.campaign_type != "journey"]  # journeys: see their funnels
    print("\nExperiments (full tables on each campaign's readout asset in the UI):")
    with Warehouse(settings).connect() as conn:
        for campaign in campaigns:
            metric = primary_metric(campaign.experiment)
            readouts = campaign_readouts(conn, campaign)
            print(f"  {campaign.campaign_id} run {readouts.run_key or '-'}")
            sections = [("variants", readouts.primary, metric), ("vs holdout", readouts.holdout, "converted")]
            optimized = campaign.send_time.mode == "optimized" and readouts.run_key
            if optimized:
                sections.append(("send time", readouts.send_time, "clicked"))
            for title, readout, shown in sections:
                for line in _readout_lines(readout, shown):
                    print(f"    {title:<11} {line}")
            if optimized:
                print("    planned local delivery hours (optimized, explore, and the fixed-hour control):")
                for line in histogram_lines(local_hours_by_arm(conn, campaign.campaign_id, readouts.run_key)):
                    print(f"      {line}")
    return [demo.run(f"Roll-out of {campaign.campaign_id}'s winner", f"{campaign.campaign_id}_rollout",
                     [readout_key(campaign), rollout_key(campaign), sends_key(campaign)])
            for campaign in campaigns if campaign.experiment and campaign.experiment.rolls_out]


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
    parser.add_argument("--verbose", action="store_true", help="print Dagster's and dbt's logs here, not to a file")
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

    log_path = settings.data_dir / "logs" / f"demo-{datetime.now():%Y%m%d-%H%M%S}.log"
    if not args.verbose:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        print(f"  Dagster's and dbt's logs: {log_path} (--verbose prints them here)")
    with (open(log_path, "a", encoding="utf-8") if not args.verbose else _no_log()) as log:
        instance = _instance()
        with output_to(log):
            location = CodeLocationRuns(instance).__enter__()
        try:
            return _tell_the_story(DemoRuns(location, log), settings)
        finally:
            location.__exit__(None, None, None)


def _innermost_error(error) -> str:
    while error is not None and error.cause is not None:
        error = error.cause
    return error.message.strip() if error is not None else "see the log file"


@contextmanager
def _no_log() -> Iterator[None]:
    yield None


def _tell_the_story(demo: DemoRuns, settings: Settings) -> int:
    from dagster_project.defs.personalization.campaign_assets import batch_campaign_jobs, load_campaigns

    daily = demo.run("Daily pipeline: ingest, identity, marts, gates, journeys, CRM write-back",
                     PIPELINE_JOB)
    batch_jobs, _ = batch_campaign_jobs(load_campaigns())
    campaigns = [demo.run(f"Batch campaign {job.name.removesuffix('_campaign')}", job.name)
                 for job in batch_jobs] if daily.success else []
    print_gates([daily, *campaigns])
    print_outbox(load_activation_settings())
    ok = daily.success and all(run.success for run in campaigns)
    loop = close_the_loop(demo, settings) if ok else None
    if loop is not None and loop.success:
        rollouts = roll_out_experiments(demo, settings)
        if all(run.success for run in rollouts):
            # Before the runs that bring every asset up to date: they then show the warehouse without the
            # erased customer (their rows, their campaign's previews).
            erasure = show_privacy_requests(demo, settings)
            bring_up_to_date(demo, batch_jobs, rollouts, after_erasure=erasure is not None)
            show_journeys(demo, settings)
    print_warehouse(settings, demo.log)
    failed = [run for run in demo.finished if not run.success]
    for run in failed:
        for event in run.all_events:
            if event.is_step_failure:
                print(f"\n{event.step_key} failed: {_innermost_error(event.step_failure_data.error)}", file=sys.stderr)
    if failed:
        return 1
    print(f"""
Next: `make dev`, then open http://127.0.0.1:3000
  Runs           the {len(demo.finished)} runs above, on the Overview timeline and under Runs
  Lineage        Assets > View lineage: ingest -> warehouse -> gates -> campaigns -> sends -> engagement -> CRM
  A campaign     Assets > campaigns > weekly_picks: content previews, messages, sends, readout and performance
  Journeys       Assets > journeys: each journey's steps, its funnel on the first step, the fast path's runs
  Email previews {settings.data_dir / 'previews'} (one HTML file per campaign, segment and variant)
  Dashboards     {_dashboard_list(settings)}""")
    return 0


def _dashboard_list(settings: Settings) -> str:
    """The dashboards the last daily run wrote (files that open in any browser, no server needed)."""
    from dagster_project.analytics.dashboards import DASHBOARDS

    folder = settings.data_dir / "dashboards"
    written = [name for name in DASHBOARDS if (folder / f"{name}.html").is_file()]
    if not written:
        return "none written (the daily pipeline writes them in the analytics/dashboards asset)"
    return f"{folder}/{{{','.join(written)}}}.html"


def bring_up_to_date(demo: DemoRuns, batch_jobs, rollouts, after_erasure: bool = False) -> None:
    """The engagement loop rebuilt the marts below the campaigns after they ran, and the roll-out sent
    more: run each once more, in the order the data flows, so the UI shows a finished demo rather than
    assets waiting for their upstream. Nothing new is sent: each run's messages exist already. After an
    erasure the daily pipeline goes first: the raw tables lost the person's rows."""
    print("\nBringing every asset up to date (nothing new is sent):")
    if after_erasure:
        demo.run("  daily pipeline, taking in the erasure", PIPELINE_JOB, steps=False)
    for job in batch_jobs:
        demo.run(f"  batch campaign {job.name.removesuffix('_campaign')} again", job.name, steps=False)
    demo.run("  daily pipeline again, taking in the roll-out's sends", PIPELINE_JOB, steps=False)
    for run in rollouts:
        demo.run(f"  {run.dagster_run.job_name} again", run.dagster_run.job_name, run.dagster_run.asset_selection,
                 steps=False)
    unsynced = demo.runs.unsynced_assets()
    print("  every asset is up to date" if not unsynced else
          "  still waiting for upstream data: " + ", ".join(key.to_user_string() for key in unsynced))


def print_warehouse(settings: Settings, log: TextIO | None) -> None:
    rows = warehouse_table_rows(settings)
    if log is not None:
        log.write("\nTables (rows):\n" + "".join(f"  {table:<40} {n:>10,}\n" for table, n in rows.items()))
    key_tables = ("raw.cdp_events", "marts.dim_customers", "marts.send_eligibility", "ops.campaign_messages",
                  "ops.send_ledger")
    print(f"\nWarehouse: {len(rows):,} tables" + (" (each one's rows are in the log file)" if log else ""))
    for table in key_tables:
        if table in rows:
            print(f"  {table:<40} {rows[table]:>10,} rows")
    reasons = quarantine_reasons(settings)
    if reasons:
        print("  quarantined (kept in raw.quarantine with their reason): "
              + ", ".join(f"{source} {kind} {n:,}" for source, kind, n in reasons))


if __name__ == "__main__":
    sys.exit(main())
