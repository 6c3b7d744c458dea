"""The writer fallback chain: primary LLM -> secondary LLM -> rules, under a daily budget and guardrails.

Writing never fails a run: whatever goes wrong with the LLMs (errors, budget, off-brand answers), the
rules writer produces a unit that passes the guardrails. What happened is kept in the unit's
`attempts` and in `ContentChain.calls` (the rows of ops.llm_calls).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from dagster_project.personalization import rules_writer
from dagster_project.personalization.content import ContentUnit, SegmentBrief, WrittenContent
from dagster_project.personalization.guardrails import Brand, GuardrailReport, check_content, humanize_category
from dagster_project.personalization.llm_writer import LlmAnswer, LlmEndpoint, LlmError, write_with_llm
from dagster_project.personalization.pii import PiiDetector
from dagster_project.personalization.prompts import Prompt

TEXT_FIELDS = ("subject", "preheader", "headline", "call_to_action")


@dataclass
class DailyBudget:
    limit_usd: float
    spent_usd: float = 0.0

    def allows(self, estimated_usd: float) -> bool:
        return self.spent_usd + estimated_usd <= self.limit_usd

    def spend(self, usd: float) -> None:
        self.spent_usd += usd


class PromptContainsPii(Exception):
    """Personal data in a prompt is a bug upstream: stop rather than send it. Names the kind of data and
    the brief fields carrying it, never the data itself."""

    def __init__(self, prompt_version: str, brief: SegmentBrief, kinds: list[str], fields: list[str]):
        where = f"fact(s) {', '.join(fields)}" if fields else "the prompt template itself"
        super().__init__(
            f"the {prompt_version} prompt for campaign {brief.campaign_id}, segment {brief.segment_key}, "
            f"variant {brief.variant_id} contains personal data ({', '.join(kinds)}) in {where}; nothing was sent. "
            "Prompts may carry segment-level facts only: remove the personal data from the campaign's brief "
            "(or the brand file, or the prompt template) and run again."
        )
        self.kinds = kinds
        self.fields = fields


@dataclass
class LlmCall:
    """One row of ops.llm_calls: what was asked of which model and how it went; never prompt text."""

    endpoint: str
    model: str
    prompt_version: str
    outcome: str  # "ok", an LlmError kind, "guardrails" or "budget"
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0


@dataclass
class _UnitLog:
    """What writing one unit has cost and been through so far."""

    attempts: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class _Draft:
    """An LLM answer after redaction, with its guardrail report."""

    answer: LlmAnswer
    unit: ContentUnit
    flags: list[str]
    report: GuardrailReport


class _BudgetExhausted(Exception):
    pass


class ContentChain:
    def __init__(self, endpoints: Sequence[LlmEndpoint], brand: Brand, pii: PiiDetector, budget: DailyBudget,
                 prompts: tuple[Prompt, Prompt], estimated_tokens: tuple[int, int] = (600, 400)):
        self.endpoints = tuple(endpoints)
        self.brand = brand
        self.pii = pii
        # Fixed text (template, brand file) is checked for patterns only: a customer surnamed "Short"
        # must not turn the brand voice "Short sentences" into personal data. Brief facts get both.
        self.pii_patterns = PiiDetector(phone_region=pii.phone_region)
        self.budget = budget
        self.prompt, self.retry_prompt = prompts
        self.estimated_tokens = estimated_tokens
        self.calls: list[LlmCall] = []

    def write(self, brief: SegmentBrief) -> WrittenContent:
        facts = self.prompt_facts(brief)
        messages = self._render(self.prompt, facts, brief)  # raises before anything is sent
        log = _UnitLog()
        try:
            for endpoint in self.endpoints:
                draft = self._draft(endpoint, self.prompt, messages, brief, log)
                if draft is None:
                    continue  # an LLM error: try the next endpoint
                if draft.report.passed:
                    return self._from_llm(endpoint, self.prompt, draft, log)
                # Off-brand: one regeneration on the same endpoint, with differently worded instructions.
                retry_facts = {**facts, "previous_problems": _problems(draft.report)}
                retry_messages = self._render(self.retry_prompt, retry_facts, brief)
                retry = self._draft(endpoint, self.retry_prompt, retry_messages, brief, log)
                if retry is not None and retry.report.passed:
                    return self._from_llm(endpoint, self.retry_prompt, retry, log)
                # This brief leads the LLM off-brand: rules now, and a person looks at it later.
                report = (retry or draft).report
                return self._from_rules(brief, log, review_reason=_review_reason(report))
        except _BudgetExhausted:
            pass
        return self._from_rules(brief, log)

    def prompt_facts(self, brief: SegmentBrief) -> dict:
        """The brief's segment facts plus the brand rules the writer should know up front."""
        facts = brief.facts()
        return {
            **facts,
            "brand_voice": brief.brand_voice or self.brand.voice,
            "top_categories": [humanize_category(c) for c in brief.top_categories],
            "company_name": self.brand.company_name,
            "subject_max_length": self.brand.subject_max_length,
            "preheader_max_length": self.brand.preheader_max_length,
            "max_exclamation_marks": self.brand.max_exclamation_marks,
            "banned_phrases": list(self.brand.banned_phrases),
            "spam_triggers": list(self.brand.spam_triggers),
        }

    def _render(self, prompt: Prompt, facts: dict, brief: SegmentBrief) -> tuple[str, str]:
        system, user = prompt.render(facts)
        brief_facts = {name: _text(value) for name, value in brief.facts().items() if name != "brand_voice"}
        fields = [name for name, value in brief_facts.items() if self.pii.contains_pii(value)]
        if fields or self.pii_patterns.contains_pii(system) or self.pii_patterns.contains_pii(user):
            texts = [system, user]
            kinds = sorted({f.kind for text in texts for f in self.pii_patterns.find(text)}
                           | {f.kind for name in fields for f in self.pii.find(brief_facts[name])})
            fields = fields or [name for name, value in facts.items() if self.pii_patterns.contains_pii(_text(value))]
            raise PromptContainsPii(prompt.version, brief, kinds, fields)
        return system, user

    def _draft(self, endpoint: LlmEndpoint, prompt: Prompt, messages: tuple[str, str], brief: SegmentBrief,
               log: _UnitLog) -> _Draft | None:
        """One call, redacted, checked and recorded; None after an LlmError.
        Raises _BudgetExhausted when the budget says no."""
        if not self.budget.allows(endpoint.cost(*self.estimated_tokens)):
            self.calls.append(LlmCall(endpoint.name, endpoint.model, prompt.version, "budget"))
            log.attempts.append(f"{endpoint.name}: budget")
            raise _BudgetExhausted  # a hard daily limit: no further endpoint either
        started = time.perf_counter()
        try:
            answer = write_with_llm(endpoint, *messages)
        except LlmError as error:
            # Bad answers (invalid JSON, wrong shape) were generated, so they are billed.
            self._spend(log, error.input_tokens, error.output_tokens, error.cost_usd)
            self.calls.append(LlmCall(endpoint.name, endpoint.model, prompt.version, error.kind, error.input_tokens,
                                      error.output_tokens, error.cost_usd, time.perf_counter() - started))
            log.attempts.append(f"{endpoint.name}: {error.kind}")
            return None
        seconds = time.perf_counter() - started
        self._spend(log, answer.input_tokens, answer.output_tokens, answer.cost_usd)
        unit, flags = self._redacted(answer.unit)
        report = check_content(unit, self.brand, brief)
        self.calls.append(LlmCall(endpoint.name, answer.model, prompt.version, "ok" if report.passed else "guardrails",
                                  answer.input_tokens, answer.output_tokens, answer.cost_usd, seconds))
        if not report.passed:
            log.attempts.append(f"{endpoint.name}: guardrails ({', '.join(report.violations) or 'quality'})")
        return _Draft(answer, unit, flags, report)

    def _spend(self, log: _UnitLog, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
        self.budget.spend(cost_usd)
        log.input_tokens += input_tokens
        log.output_tokens += output_tokens
        log.cost_usd += cost_usd

    def _redacted(self, unit: ContentUnit) -> tuple[ContentUnit, list[str]]:
        """The unit with personal data replaced, and ["pii_redacted"] when anything was."""
        changes = {name: self.pii.redact(getattr(unit, name)) for name in TEXT_FIELDS
                   if self.pii.contains_pii(getattr(unit, name))}
        if any(self.pii.contains_pii(p) for p in unit.body_paragraphs):
            changes["body_paragraphs"] = [self.pii.redact(p) for p in unit.body_paragraphs]
        if not changes:
            return unit, []
        return unit.model_copy(update=changes), ["pii_redacted"]

    def _from_llm(self, endpoint: LlmEndpoint, prompt: Prompt, draft: _Draft, log: _UnitLog) -> WrittenContent:
        return WrittenContent(
            unit=draft.unit, writer=endpoint.name, prompt_version=prompt.version, model=draft.answer.model,
            input_tokens=log.input_tokens, output_tokens=log.output_tokens, cost_usd=log.cost_usd,
            quality_score=draft.report.quality_score, flags=draft.flags, attempts=[*log.attempts, endpoint.name],
        )

    def write_safely(self, brief: SegmentBrief) -> tuple[WrittenContent, PromptContainsPii | None]:
        """Like write(), but a prompt with personal data costs one unit, not the campaign: that unit
        is written by rules and goes to the review queue; the error is returned for the log."""
        try:
            return self.write(brief), None
        except PromptContainsPii as error:
            reason = (f"prompt contained personal data ({', '.join(error.kinds)} in "
                      f"{', '.join(error.fields) or 'template'})")
            return self._from_rules(brief, _UnitLog(attempts=["prompt: personal data"]), review_reason=reason), error

    def _from_rules(self, brief: SegmentBrief, log: _UnitLog, review_reason: str | None = None) -> WrittenContent:
        unit = rules_writer.write_rules(brief, self.brand)
        report = check_content(unit, self.brand, brief)
        return WrittenContent(
            unit=unit, writer="rules", prompt_version=rules_writer.PROMPT_VERSION, model=None,
            input_tokens=log.input_tokens, output_tokens=log.output_tokens, cost_usd=log.cost_usd,
            quality_score=report.quality_score, flags=[], review_reason=review_reason,
            attempts=[*log.attempts, "rules"],
        )


def _problems(report: GuardrailReport) -> str:
    problems = list(report.violations)
    if report.quality_score < report.threshold:
        problems.append(f"quality score {report.quality_score:.2f} below {report.threshold:.2f}")
    return "; ".join(problems) or "(none given)"


def _review_reason(report: GuardrailReport) -> str:
    """e.g. "guardrails: subject_length, spam_trigger:act now; quality 0.55 < 0.7"."""
    reason = f"guardrails: {', '.join(report.violations) or 'no rule broken'}"
    if report.quality_score < report.threshold:
        reason += f"; quality {report.quality_score:g} < {report.threshold:g}"
    return reason


def _text(value) -> str:
    return "\n".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def content_cache_key(prompt_version: str, model: str | None, facts: dict) -> str:
    """sha256 of a canonical JSON of what determines a unit's words: same inputs, same key."""
    canonical = json.dumps({"prompt_version": prompt_version, "model": model, "facts": facts},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
