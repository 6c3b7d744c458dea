"""What a writer receives and returns: the shared vocabulary of the personalization package.

A content unit is written once per campaign x segment x variant, never per customer, so the only
facts a writer sees are segment-level and free of PII (SegmentBrief).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field


class ContentUnit(BaseModel):
    """The words of one message; the JSON schema the LLM must answer with (structured output)."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=200)
    preheader: str = Field(max_length=200)
    headline: str = Field(min_length=1, max_length=200)
    body_paragraphs: list[str] = Field(min_length=1, max_length=4)
    call_to_action: str = Field(min_length=1, max_length=60)


@dataclass(frozen=True)
class SegmentBrief:
    """Everything a writer may know: campaign intent and segment-level facts, never a customer."""

    campaign_id: str
    campaign_type: str  # batch | trigger
    brief: str  # the marketer's brief from the campaign's meta
    segment_key: str  # e.g. "active:apparel"
    lifecycle_segment: str  # new | active | at_risk | lapsed | vip
    top_categories: tuple[str, ...]
    variant_id: str
    variant_angle: str  # how this variant differs ("urgency", "benefit-led", ...)
    brand_voice: str

    def facts(self) -> dict:
        """The prompt's inputs, also the content cache key's inputs."""
        return {
            "campaign_id": self.campaign_id,
            "campaign_type": self.campaign_type,
            "brief": self.brief,
            "segment": self.segment_key,
            "lifecycle_segment": self.lifecycle_segment,
            "top_categories": list(self.top_categories),
            "variant": self.variant_id,
            "variant_angle": self.variant_angle,
            "brand_voice": self.brand_voice,
        }


@dataclass
class WrittenContent:
    """A content unit with the record of how it was made (ops.content, ops.llm_calls)."""

    unit: ContentUnit
    writer: str  # "openai", "secondary" or "rules"
    prompt_version: str
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    quality_score: float = 1.0
    flags: list[str] = field(default_factory=list)  # e.g. "pii_redacted", "guardrail:subject_length"
    review_reason: str | None = None  # set when the unit is in the review queue
    attempts: list[str] = field(default_factory=list)  # "openai: 429 rate limited -> secondary", ...

    @property
    def in_review(self) -> bool:
        return self.review_reason is not None
