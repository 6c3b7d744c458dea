"""The LLM writer and its fallback chain, driven through the real openai client against a local double
that speaks OpenAI's wire format (tests/doubles/openai_double.py). No mocks."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from dagster_project.personalization import rules_writer
from dagster_project.personalization.chain import (
    ContentChain,
    DailyBudget,
    PromptContainsPii,
    content_cache_key,
)
from dagster_project.personalization.content import ContentUnit, SegmentBrief
from dagster_project.personalization.guardrails import check_content, load_brand
from dagster_project.personalization.llm_writer import LlmEndpoint, LlmError, write_with_llm
from dagster_project.personalization.pii import PiiDetector
from dagster_project.personalization.prompts import Prompt, PromptError, load_prompt, load_prompt_pair
from dagster_project.sample_data.world import NAMES

from doubles.openai_double import PII_EMAIL, PII_PHONE, openai_double

REPO = Path(__file__).resolve().parents[1]
PROMPTS_DIR = REPO / "content" / "prompts"
BRAND = load_brand(REPO / "content" / "brand.yml")
PROMPTS = load_prompt_pair(PROMPTS_DIR)

# Profile names as the pipeline would load them, plus every name the sample data can generate: the
# shipped prompt wording must not trip the name detector with any of them.
PROFILE_NAMES = ["Marcus Whitfield", "Priya Raman", "Jane Doe", "Oliver Kowalski"]
SAMPLE_NAMES = [name for first, last in NAMES.values() for name in (*first, *last)]
PII = PiiDetector(names=PROFILE_NAMES + SAMPLE_NAMES)

BRIEF = SegmentBrief(
    campaign_id="cmp_2026_11_autumn", campaign_type="batch",
    brief="Introduce the autumn collection; no discounts.", segment_key="active:apparel",
    lifecycle_segment="active", top_categories=("apparel", "shoes"), variant_id="A", variant_angle="benefit-led",
    brand_voice=BRAND.voice,
)

# Error modes of the double and the kind the writer must report for each.
ERROR_KINDS = {"429": "rate_limited", "quota": "quota", "500": "server_error", "503": "server_error",
               "invalid_json": "invalid_json", "schema_mismatch": "schema_mismatch", "401": "auth",
               "400": "bad_request"}


def endpoint(double, name: str = "openai", model: str = "gpt-4o-mini", timeout: float = 5.0) -> LlmEndpoint:
    return LlmEndpoint(name=name, base_url=double.base_url, api_key=f"sk-test-{name}", model=model,
                       input_usd_per_million=0.15, output_usd_per_million=0.60, timeout_seconds=timeout)


def chain_for(*endpoints: LlmEndpoint, budget: DailyBudget | None = None) -> ContentChain:
    return ContentChain(endpoints, BRAND, PII, budget or DailyBudget(limit_usd=10.0), PROMPTS)


def unit_text(unit: ContentUnit) -> str:
    return json.dumps(unit.model_dump())


@pytest.fixture
def primary():
    with openai_double() as double:
        yield double


@pytest.fixture
def secondary():
    with openai_double() as double:
        yield double


# --- the happy path ------------------------------------------------------------------------------

def test_primary_writes_the_unit_and_records_tokens_cost_and_prompt_version(primary):
    first_choice = endpoint(primary)
    budget = DailyBudget(limit_usd=1.0)
    chain = chain_for(first_choice, budget=budget)

    written = chain.write(BRIEF)

    assert written.writer == "openai"
    assert written.prompt_version == "content_unit@v1"
    assert written.model == "gpt-4o-mini"
    assert written.review_reason is None and written.flags == []
    assert written.attempts == ["openai"]
    assert "apparel" in written.unit.headline  # the double wrote from the facts it was sent
    assert check_content(written.unit, BRAND, BRIEF).passed
    assert written.input_tokens > 0 and written.output_tokens > 0
    assert written.cost_usd == pytest.approx(first_choice.cost(written.input_tokens, written.output_tokens))
    assert budget.spent_usd == pytest.approx(written.cost_usd)
    [call] = chain.calls
    assert (call.endpoint, call.model, call.prompt_version, call.outcome) == (
        "openai", "gpt-4o-mini", "content_unit@v1", "ok")
    assert (call.input_tokens, call.output_tokens) == (written.input_tokens, written.output_tokens)


def test_request_is_structured_output_with_a_strict_schema_and_bearer_auth(primary):
    chain_for(endpoint(primary)).write(BRIEF)

    [request] = primary.requests
    assert primary.authorizations == ["Bearer sk-test-openai"]
    assert request["model"] == "gpt-4o-mini"
    assert request["temperature"] <= 0.5
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    assert '"apparel", "shoes"' in request["messages"][1]["content"]  # lists rendered readably
    response_format = request["response_format"]
    assert response_format["type"] == "json_schema"
    spec = response_format["json_schema"]
    assert spec["name"] == "content_unit" and spec["strict"] is True
    schema = spec["schema"]
    assert schema["additionalProperties"] is False
    assert sorted(schema["required"]) == sorted(schema["properties"]) == sorted(ContentUnit.model_fields)
    assert schema["properties"]["body_paragraphs"]["maxItems"] == 4
    assert "minLength" not in json.dumps(schema)  # not accepted by strict mode; pydantic checks lengths


# --- errors and the fallback chain -----------------------------------------------------------------

@pytest.mark.parametrize("mode", sorted(ERROR_KINDS))
def test_each_error_answer_becomes_its_llm_error_kind(primary, mode):
    primary.script([mode])
    with pytest.raises(LlmError) as raised:
        write_with_llm(endpoint(primary), "system", 'Top categories: "apparel"')
    assert raised.value.kind == ERROR_KINDS[mode]
    assert len(primary.requests) == 1  # max_retries=0: the chain, not the client, decides what is next


def test_bad_answers_are_billed_but_refusals_of_the_request_are_not(primary):
    first_choice = endpoint(primary)
    primary.script(["schema_mismatch", "503"])
    with pytest.raises(LlmError) as mismatch:
        write_with_llm(first_choice, "system", "user")
    with pytest.raises(LlmError) as unavailable:
        write_with_llm(first_choice, "system", "user")
    assert mismatch.value.output_tokens > 0
    assert mismatch.value.cost_usd == pytest.approx(first_choice.cost(mismatch.value.input_tokens,
                                                                mismatch.value.output_tokens))
    assert unavailable.value.cost_usd == 0


def test_unreachable_endpoint_is_a_connection_error():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = LlmEndpoint("openai", f"http://127.0.0.1:{port}/v1", "sk-test", "gpt-4o-mini", 0.15, 0.6, 2.0)
    with pytest.raises(LlmError) as raised:
        write_with_llm(dead, "system", "user")
    assert raised.value.kind == "connection"


@pytest.mark.parametrize("mode", ["429", "quota", "500", "503", "invalid_json", "schema_mismatch", "401"])
def test_primary_failure_falls_back_to_secondary(primary, secondary, mode):
    primary.default_mode = mode
    chain = chain_for(endpoint(primary), endpoint(secondary, "secondary", model="secondary-model"))

    written = chain.write(BRIEF)

    kind = ERROR_KINDS[mode]
    assert written.writer == "secondary"
    assert written.model == "secondary-model"
    assert written.attempts == [f"openai: {kind}", "secondary"]
    assert [(c.endpoint, c.outcome) for c in chain.calls] == [("openai", kind), ("secondary", "ok")]
    assert len(primary.requests) == 1 and len(secondary.requests) == 1
    assert secondary.authorizations == ["Bearer sk-test-secondary"]
    # The unit's totals are the sum of its calls (a malformed answer was still paid for).
    assert written.input_tokens == sum(c.input_tokens for c in chain.calls)
    assert written.cost_usd == pytest.approx(sum(c.cost_usd for c in chain.calls))


def test_slow_primary_times_out_and_secondary_answers(secondary):
    with openai_double(default_mode="slow", slow_seconds=1.5) as slow:
        chain = chain_for(endpoint(slow, timeout=0.5), endpoint(secondary, "secondary"))
        written = chain.write(BRIEF)
        assert len(slow.requests) == 1

    assert written.writer == "secondary"
    assert written.attempts == ["openai: timeout", "secondary"]
    assert chain.calls[0].outcome == "timeout" and chain.calls[0].cost_usd == 0


def test_every_endpoint_failing_falls_back_to_rules(primary, secondary):
    primary.default_mode, secondary.default_mode = "429", "503"
    chain = chain_for(endpoint(primary), endpoint(secondary, "secondary"))

    written = chain.write(BRIEF)

    assert written.writer == "rules"
    assert written.prompt_version == rules_writer.PROMPT_VERSION
    assert written.model is None and written.cost_usd == 0
    assert written.attempts == ["openai: rate_limited", "secondary: server_error", "rules"]
    assert written.review_reason is None  # nothing for a person to fix: the LLMs were unavailable
    assert written.unit == rules_writer.write_rules(BRIEF, BRAND)
    assert written.quality_score == check_content(written.unit, BRAND, BRIEF).quality_score


def test_without_endpoints_the_rules_writer_is_the_offline_default():
    chain = chain_for()
    written = chain.write(BRIEF)
    assert (written.writer, written.attempts, chain.calls) == ("rules", ["rules"], [])


# --- guardrails: one regeneration, then rules and review ----------------------------------------

def test_spammy_answer_is_regenerated_once_with_the_retry_prompt(primary, secondary):
    primary.script(["spammy", "ok"])
    chain = chain_for(endpoint(primary), endpoint(secondary, "secondary"))

    written = chain.write(BRIEF)

    assert written.writer == "openai"
    assert written.prompt_version == "content_unit@v1_retry"
    assert [(c.prompt_version, c.outcome) for c in chain.calls] == [
        ("content_unit@v1", "guardrails"), ("content_unit@v1_retry", "ok")]
    first, second = (r["messages"][0]["content"] for r in primary.requests)
    retry_opening = PROMPTS[1].system.split(";")[0]  # "You are revising a marketing email for {company_name}"
    assert retry_opening.replace("{company_name}", BRAND.company_name) in second
    assert retry_opening.replace("{company_name}", BRAND.company_name) not in first
    assert "spam_trigger:free money" in second  # the retry says what was wrong with the draft
    assert secondary.requests == []  # an off-brand answer is not an outage: no second provider
    assert written.input_tokens == sum(c.input_tokens for c in chain.calls)


def test_spammy_twice_falls_back_to_rules_and_goes_to_review(primary):
    primary.default_mode = "spammy"
    chain = chain_for(endpoint(primary))

    written = chain.write(BRIEF)

    assert written.writer == "rules"
    assert written.in_review
    assert written.review_reason.startswith("guardrails: ")
    assert "spam_trigger:act now" in written.review_reason and "all_caps" in written.review_reason
    assert len(primary.requests) == 2
    assert [c.outcome for c in chain.calls] == ["guardrails", "guardrails"]
    assert written.attempts[-1] == "rules"
    assert written.cost_usd == pytest.approx(sum(c.cost_usd for c in chain.calls)) and written.cost_usd > 0
    assert check_content(written.unit, BRAND, BRIEF).passed


# --- personal data ----------------------------------------------------------------------------------

def test_pii_in_the_answer_is_redacted_and_flagged(primary):
    primary.default_mode = "pii"
    written = chain_for(endpoint(primary)).write(BRIEF)

    assert written.writer == "openai"
    assert written.flags == ["pii_redacted"]
    text = unit_text(written.unit)
    assert PII_EMAIL not in text and PII_PHONE not in text
    assert "[redacted]" in text
    assert not any(PII.contains_pii(field) for field in [written.unit.subject, written.unit.preheader,
                                                         written.unit.headline, *written.unit.body_paragraphs,
                                                         written.unit.call_to_action])


@pytest.mark.parametrize("brief_text, kind", [
    ("Follow up with jane.doe@example.com about the autumn collection.", "email"),
    ("Mention the hotline (415) 555-0134 for autumn orders.", "phone"),
    ("Thank Marcus Whitfield for his review of the autumn collection.", "name"),
])
def test_prompt_with_personal_data_is_never_sent(primary, brief_text, kind):
    brief = SegmentBrief(**{**BRIEF.__dict__, "brief": brief_text})
    chain = chain_for(endpoint(primary))

    with pytest.raises(PromptContainsPii) as raised:
        chain.write(brief)

    assert primary.requests == []
    assert raised.value.kinds == [kind]
    assert raised.value.fields == ["brief"]
    message = str(raised.value)
    assert kind in message and "brief" in message
    assert all(secret not in message for secret in ("jane.doe", "555-0134", "Whitfield"))


def test_a_customer_named_like_a_word_of_the_brand_file_does_not_stop_the_prompt(primary):
    """Names are looked for in the brief's facts, not in fixed text: the brand voice and the spam
    triggers may contain words that are also somebody's surname."""
    fixed_words = ["Friendly", "Short", "Cash", "Winner", "Guaranteed"]
    chain = ContentChain([endpoint(primary)], BRAND, PiiDetector(names=fixed_words), DailyBudget(limit_usd=10.0),
                         PROMPTS)
    assert chain.write(BRIEF).writer == "openai"
    assert len(primary.requests) == 1


def test_no_request_ever_carries_an_email_phone_or_profile_name(primary, secondary):
    primary.script(["spammy", "ok", "429", "pii", "invalid_json"])
    chain = chain_for(endpoint(primary), endpoint(secondary, "secondary"))
    briefs = [BRIEF, SegmentBrief(**{**BRIEF.__dict__, "segment_key": "lapsed:shoes", "lifecycle_segment": "lapsed",
                                     "top_categories": ("shoes",), "variant_id": "B", "variant_angle": "urgency"})]
    for brief in briefs * 2:
        chain.write(brief)

    bodies = primary.requests + secondary.requests
    assert len(bodies) >= 6  # both endpoints and both prompts were exercised
    name_parts = {part.casefold() for name in PROFILE_NAMES for part in re.findall(r"\w+", name)}
    for body in bodies:
        for message in body["messages"]:
            content = message["content"]
            assert not PII.contains_pii(content)
            assert not re.search(r"\S+@\S+\.\w+", content)
            assert not name_parts & {word.casefold() for word in re.findall(r"\w+", content)}


# --- the daily budget --------------------------------------------------------------------------------

def test_exhausted_budget_sends_nothing(primary, secondary):
    chain = chain_for(endpoint(primary), endpoint(secondary, "secondary"), budget=DailyBudget(limit_usd=0.0))

    written = chain.write(BRIEF)

    assert primary.requests == [] and secondary.requests == []
    assert written.writer == "rules"
    assert written.attempts == ["openai: budget", "rules"]
    assert [(c.endpoint, c.outcome, c.cost_usd) for c in chain.calls] == [("openai", "budget", 0.0)]


def test_budget_for_one_call_allows_exactly_one_call(primary, secondary):
    first_choice = endpoint(primary)
    budget = DailyBudget(limit_usd=first_choice.cost(600, 400))  # the chain's default estimate of one call
    chain = chain_for(first_choice, endpoint(secondary, "secondary"), budget=budget)

    first, second = chain.write(BRIEF), chain.write(BRIEF)

    assert first.writer == "openai"
    assert second.writer == "rules" and second.attempts == ["openai: budget", "rules"]
    assert len(primary.requests) == 1 and secondary.requests == []
    assert budget.spent_usd == pytest.approx(first.cost_usd) and budget.spent_usd > 0


def test_budget_also_stops_the_regeneration(primary):
    primary.default_mode = "spammy"
    first_choice = endpoint(primary)
    chain = chain_for(first_choice, budget=DailyBudget(limit_usd=first_choice.cost(600, 400)))

    written = chain.write(BRIEF)

    assert len(primary.requests) == 1
    assert written.writer == "rules" and written.review_reason is None
    assert [c.outcome for c in chain.calls] == ["guardrails", "budget"]
    assert written.cost_usd == pytest.approx(chain.calls[0].cost_usd) and written.cost_usd > 0


def test_daily_budget_limit_is_inclusive():
    budget = DailyBudget(limit_usd=1.0)
    assert budget.allows(1.0)
    budget.spend(0.25)
    assert budget.allows(0.75) and not budget.allows(0.76)


def test_endpoint_cost_and_repr_without_the_key():
    first_choice = LlmEndpoint("openai", None, "sk-secret", "gpt-4o-mini", input_usd_per_million=0.15,
                         output_usd_per_million=0.60)
    assert first_choice.cost(1_000_000, 500_000) == pytest.approx(0.45)
    assert "sk-secret" not in repr(first_choice)


# --- prompts ---------------------------------------------------------------------------------------

def test_shipped_prompts_load_as_a_pair_worded_differently():
    first, retry = load_prompt_pair(PROMPTS_DIR)
    assert (first.version, retry.version) == ("content_unit@v1", "content_unit@v1_retry")
    assert first.system != retry.system and first.user_template != retry.user_template
    assert "{previous_problems}" in retry.system and "{previous_problems}" not in first.system


def test_render_substitutes_facts_once_and_leaves_other_braces_alone():
    prompt = Prompt("t", "t@v1", "Voice: {voice}", 'Cats: {cats}; brief: {brief}; JSON: {"subject": "..."}')
    system, user = prompt.render({"voice": "calm", "cats": ["apparel", "outdoor, camping & hiking"],
                                  "brief": "say {voice} literally"})
    assert system == "Voice: calm"
    assert user == ('Cats: "apparel", "outdoor, camping & hiking"; brief: say {voice} literally; '
                    'JSON: {"subject": "..."}')


def test_render_names_a_placeholder_without_a_fact():
    with pytest.raises(PromptError, match=r"\{segmnt\}.*fix the placeholder"):
        Prompt("t", "t@v1", "ok", "Segment: {segmnt}").render({"segment": "active:apparel"})


def test_missing_prompt_file_names_the_file_and_the_versions_there():
    with pytest.raises(PromptError) as raised:
        load_prompt(PROMPTS_DIR, "content_unit", "v9")
    message = str(raised.value)
    assert "content_unit_v9.md" in message and "v1" in message and "# system" in message


def test_prompt_file_without_a_user_section_says_how_to_fix_it(tmp_path):
    (tmp_path / "content_unit_v1.md").write_text("# system\nYou write emails.\n", encoding="utf-8")
    with pytest.raises(PromptError, match=r"content_unit_v1\.md.*'# user'"):
        load_prompt(tmp_path, "content_unit")


# --- the content cache key --------------------------------------------------------------------------

def test_content_cache_key_is_stable_and_sensitive_to_each_input():
    facts = BRIEF.facts()
    key = content_cache_key("content_unit@v1", "gpt-4o-mini", facts)
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert key == content_cache_key("content_unit@v1", "gpt-4o-mini", dict(reversed(list(facts.items()))))
    assert len({
        key,
        content_cache_key("content_unit@v2", "gpt-4o-mini", facts),
        content_cache_key("content_unit@v1", "gpt-4.1-mini", facts),
        content_cache_key("content_unit@v1", None, facts),
        content_cache_key("content_unit@v1", "gpt-4o-mini", {**facts, "variant": "B"}),
        content_cache_key("content_unit@v1", "gpt-4o-mini", {**facts, "top_categories": ["shoes", "apparel"]}),
    }) == 6


def test_write_safely_turns_a_pii_prompt_into_a_reviewed_rules_unit(primary):
    brief = SegmentBrief(**{**BRIEF.__dict__, "brief": "Thank Marcus Whitfield for his review."})
    written, error = chain_for(endpoint(primary)).write_safely(brief)
    assert isinstance(error, PromptContainsPii) and primary.requests == []
    assert written.writer == "rules" and written.in_review
    assert "name in brief" in written.review_reason and "Whitfield" not in written.review_reason
