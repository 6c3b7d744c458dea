"""One benchmark stage in its own process, so its peak memory can be read from the OS:

    python -m benchmarks.stage ingest          (warehouse from the MAILROOM_* environment)
    python -m benchmarks.stage phone-numbers
    python -m benchmarks.stage quality-gates
    python -m benchmarks.stage campaigns       (content through the local OpenAI double, then rendering)
    python -m benchmarks.stage sends           (synthetic messages to the SendGrid double, outbox, SMTP)
    python -m benchmarks.stage crm-sync        (synthetic contacts to the HubSpot double, then 1% changed)
    python -m benchmarks.stage receiver        (signed webhook events per second over loopback)
    python -m benchmarks.stage daily-job       (the daily job end to end through Dagster, then the batch
                                                campaigns' jobs: what an operator's schedule runs;
                                                with MAILROOM_BENCH_NEXT_DAY=1 the daily job again a
                                                day later, after 1% new events)
"""

from __future__ import annotations

import json
import os
import sys

from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.sources import SOURCES
from dagster_project.settings import load_settings
from dagster_project.warehouse import Warehouse


def ingest() -> dict:
    settings = load_settings()
    warehouse = Warehouse(settings)
    reports = {name: ingest_source(warehouse, source, settings.landing_dir) for name, source in SOURCES.items()}
    return {
        name: {"rows_loaded": r.rows_loaded, "rows_quarantined": r.rows_quarantined, "seconds": round(r.seconds, 2)}
        for name, r in reports.items()
    }


def phone_numbers() -> dict:
    from dagster_project.identity.phone_table import build_phone_numbers

    settings = load_settings()
    outcome = build_phone_numbers(Warehouse(settings), settings.phone_default_region)
    return {"rows_loaded": outcome["valid"] + outcome["invalid"]}


def quality_gates() -> dict:
    from dagster_project.quality.docs import run_every_gate

    outcomes = {}
    for result in run_every_gate(load_settings()):
        if not result.passed:
            raise SystemExit(f"gate {result.suite.name} failed on benchmark data: "
                             f"{result.blocking_failures + result.warnings}")
        outcomes[result.suite.name] = {"rows_loaded": result.rows, "seconds": round(result.seconds, 2)}
    return outcomes


def campaigns() -> dict:
    """Every campaign's content, written by the real openai client against the local OpenAI double
    (no network: tokens are the double's estimates, priced at the configured rates), then rendered."""
    import os
    import time
    from pathlib import Path

    from dagster_project.defs.personalization.campaign_assets import load_campaigns
    from dagster_project.defs.personalization.resource import LlmEndpointConfig, PersonalizationResource
    from dagster_project.personalization.content_step import write_campaign_content
    from dagster_project.personalization.messages_step import render_campaign_messages
    from dagster_project.settings import load_personalization_settings

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from doubles.openai_double import openai_double

    settings, personal = load_settings(), load_personalization_settings()
    warehouse = Warehouse(settings)
    outcomes = {}
    with openai_double() as double:
        os.environ["MAILROOM_LLM_API_KEY"] = "bench-key"
        resource = PersonalizationResource(
            content_dir=str(personal.content_dir), data_dir=str(settings.data_dir),
            endpoints=[LlmEndpointConfig(name="openai", base_url=double.base_url, model="gpt-4o-mini",
                                         input_usd_per_million=0.15, output_usd_per_million=0.60)],
            daily_budget_usd=100.0, unsubscribe_url=personal.unsubscribe_url, sender_domain=personal.sender_domain,
        )
        for campaign in load_campaigns():
            calls_before = len(double.requests)
            started = time.perf_counter()
            content = write_campaign_content(
                warehouse, campaign, resource.chain(warehouse, settings.reference_time()), resource.cache_identity(),
                resource.brand().voice, settings.reference_time(),
            )
            written = time.perf_counter()
            messages = render_campaign_messages(warehouse, campaign, resource.renderer(), settings.reference_time())
            cost = sum(unit.written.cost_usd for unit in content.units)
            outcomes[campaign.campaign_id] = {
                "segments": len({unit.segment_key for unit in content.units}),
                "content_units": len(content.units),
                "llm_calls": len(double.requests) - calls_before,
                "input_tokens": sum(unit.written.input_tokens for unit in content.units),
                "output_tokens": sum(unit.written.output_tokens for unit in content.units),
                "cost_usd": round(cost, 6),
                "rows_loaded": messages.rendered,
                "usd_per_1000_emails": round(cost / messages.rendered * 1000, 6) if messages.rendered else None,
                "content_seconds": round(written - started, 2),
                "seconds": round(time.perf_counter() - written, 2),
            }
    return outcomes


def sends() -> dict:
    from benchmarks.sends import sends as run_sends

    return run_sends()


def crm_sync() -> dict:
    from benchmarks.engagement import crm_sync as run_crm_sync

    return run_crm_sync()


def receiver() -> dict:
    from benchmarks.engagement import receiver as run_receiver

    return run_receiver()


SLOWEST_STEPS = 10


def daily_job() -> dict:
    """The daily job in this process as the schedule runs it (ingest, phones, dbt build with tests, every
    gate, trigger campaigns, sends to the outbox, the CRM write-back), then each batch campaign's job:
    each run's seconds (from Dagster's run stats) and its slowest steps."""
    import dagster as dg

    from dagster_project.pipeline import PIPELINE_JOB, run_batch_campaigns, run_pipeline, step_seconds

    instance = dg.DagsterInstance.ephemeral()
    figures = {}

    def record(result, name: str) -> None:
        if not result.success:
            raise SystemExit(f"{name} failed on the benchmark data")
        stats = instance.get_run_stats(result.run_id)
        steps = sorted(step_seconds(instance, result.run_id).items(), key=lambda item: -item[1])
        figures[name] = {"seconds": round(stats.end_time - stats.start_time, 2),
                         "slowest_steps": {step: round(seconds, 2) for step, seconds in steps[:SLOWEST_STEPS]}}

    for result in [run_pipeline(instance), *run_batch_campaigns(instance)]:
        record(result, result.dagster_run.job_name)
    if os.environ.get("MAILROOM_BENCH_NEXT_DAY"):
        record(_next_day(run_pipeline, instance), f"{PIPELINE_JOB} (next day, 1% new events)")
    return figures


def _next_day(run_pipeline, instance):
    """The daily job again one day later, after about 1% new events landed overnight."""
    from datetime import date, timedelta

    from benchmarks.next_day import write_next_day
    from dagster_project.settings import load_settings

    settings = load_settings()
    written = write_next_day(settings.landing_dir)
    print(f"next day: {written}", file=sys.stderr, flush=True)
    os.environ["MAILROOM_AS_OF"] = (date.fromisoformat(settings.as_of[:10]) + timedelta(days=1)).isoformat()
    return run_pipeline(instance)


STAGES = {"ingest": ingest, "phone-numbers": phone_numbers, "quality-gates": quality_gates, "campaigns": campaigns,
          "sends": sends, "crm-sync": crm_sync, "receiver": receiver, "daily-job": daily_job}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in STAGES:
        sys.exit(f"usage: python -m benchmarks.stage {{{'|'.join(STAGES)}}}")
    print(json.dumps(STAGES[sys.argv[1]]()))
