"""With an API key, the same campaigns are written by the LLM (here the real openai client against
the local OpenAI double), cost is recorded, no prompt carries PII, and a re-run costs nothing."""

from __future__ import annotations

import json
import re

import dagster as dg
import pytest

from dagster_project.personalization.pii import NAME_STOPLIST
from dagster_project.pipeline import run_batch_campaigns
from dagster_project.warehouse import Warehouse

from doubles.openai_double import openai_double
from pipeline_helpers import run_daily_pipeline, with_landing


def materialized(runs, key: dg.AssetKey) -> dict:
    return next(
        {name: value.value for name, value in event.materialization.metadata.items()}
        for run in runs for event in run.get_asset_materialization_events() if event.asset_key == key
    )


def prompt_texts(requests: list[dict]) -> list[str]:
    return [" ".join(message["content"] for message in body["messages"]) for body in requests]


@pytest.mark.slow
# One engine: what reaches the prompts is built in Python from the same rows on both, and the LLM writer's
# rows (ops.content, ops.llm_calls) are written on PostgreSQL by the outage test below.
@pytest.mark.parametrize("warehouse_kind", ["duckdb"], indirect=False)
def test_campaigns_written_by_the_llm_record_cost_and_never_see_pii(
    mailroom_env, sample_landing, prepared_dbt, monkeypatch
):
    settings = with_landing(mailroom_env, sample_landing)
    with openai_double() as double:
        monkeypatch.setenv("MAILROOM_LLM_API_KEY", "sk-test-key")
        monkeypatch.setenv("MAILROOM_LLM_BASE_URL", double.base_url)
        runs = [run_daily_pipeline()]
        runs += run_batch_campaigns(dg.DagsterInstance.ephemeral())
        assert all(run.success for run in runs)
        requests = double.requests

        content = materialized(runs, dg.AssetKey(["campaigns", "weekly_picks", "weekly_picks_content"]))
        assert content["llm_written"] == content["content_units"] > 0
        assert content["llm_cost_usd"] > 0 and content["llm_input_tokens"] > 0
        assert double.authorizations and set(double.authorizations) == {"Bearer sk-test-key"}
        assert all(body["response_format"]["type"] == "json_schema" for body in requests)

        with Warehouse(settings).connect() as conn:
            calls = conn.fetchall("select outcome, cost_usd, model from ops.llm_calls")
            writers = conn.fetchall("select distinct writer from ops.content")
            subjects = [row[0] for row in conn.fetchall(
                "select subject from ops.campaign_messages where campaign_id = 'weekly_picks'")]
            emails = [row[0] for row in conn.fetchall("select email from marts.dim_customers where email is not null")]
            phones = [row[0] for row in conn.fetchall(
                "select phone_e164 from marts.dim_customers where phone_e164 is not null")]
            names = {row[0].lower() for row in conn.fetchall(
                "select first_name from marts.dim_customers where first_name is not null union "
                "select last_name from marts.dim_customers where last_name is not null")}
        assert len(calls) == len(requests) and all(outcome == "ok" and cost > 0 for outcome, cost, _ in calls)
        assert writers == [("openai",)]
        assert subjects and all(subject.startswith("New in ") for subject in subjects)  # the double's words

        # No email, phone or profile name reached the LLM, in any request.
        names = {n for n in names if len(n) >= 3 and n not in NAME_STOPLIST}
        name_pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(names))) + r")\b", re.IGNORECASE)
        for text in prompt_texts(requests):
            assert not any(email in text.lower() for email in emails)
            assert not any(phone[-7:] in re.sub(r"\D", "", text) for phone in phones)
            assert not name_pattern.search(text), name_pattern.search(text)

        # A re-run costs nothing and renders nothing new: content comes from the cache.
        before = len(double.requests)
        again = run_batch_campaigns(dg.DagsterInstance.ephemeral())
        assert len(double.requests) == before
        assert materialized(
            again, dg.AssetKey(["campaigns", "weekly_picks", "weekly_picks_content"]))["reused_from_cache"] \
            == content["content_units"]


def test_an_llm_outage_falls_back_to_rules_and_is_retried_next_run(built_warehouse, monkeypatch):
    settings = built_warehouse.settings  # the daily pipeline has run (without a key: no LLM call yet)
    with openai_double(default_mode="503") as double:
        monkeypatch.setenv("MAILROOM_LLM_API_KEY", "sk-test-key")
        monkeypatch.setenv("MAILROOM_LLM_BASE_URL", double.base_url)
        runs = run_batch_campaigns(dg.DagsterInstance.ephemeral())
        content = materialized(runs, dg.AssetKey(["campaigns", "weekly_picks", "weekly_picks_content"]))
        assert content["llm_written"] == 0 and content["content_units"] > 0  # rules wrote everything
        messages = materialized(runs, dg.AssetKey(["campaigns", "weekly_picks", "weekly_picks_messages"]))
        assert messages["messages_rendered"] > 0  # an outage never stops the campaign
        with Warehouse(settings).connect() as conn:
            outcomes = {row[0] for row in conn.fetchall("select outcome from ops.llm_calls")}
            reusable = conn.scalar("select count(*) from ops.content where campaign_id = 'weekly_picks' and reusable")
        assert outcomes == {"server_error"}
        assert reusable == 0  # a transient fallback is not reused: the next run asks the LLM again

        double.default_mode = "ok"
        runs = run_batch_campaigns(dg.DagsterInstance.ephemeral())
        content = materialized(runs, dg.AssetKey(["campaigns", "weekly_picks", "weekly_picks_content"]))
        assert content["llm_written"] == content["content_units"]
        assert json.dumps(content["preview"]).count("openai") > 0
