"""Write (or reuse) one content unit per campaign x segment x variant of a campaign's audience.

Segments come from the eligible audience, so LLM calls grow with segments x variants, never with
customers. Units are cached in ops.content by (prompt version, model, segment facts): re-running a
campaign costs nothing and yields the same words.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from dagster_project.personalization.campaigns import Campaign
from dagster_project.personalization.chain import ContentChain, content_cache_key
from dagster_project.personalization.content import SegmentBrief, WrittenContent
from dagster_project.personalization.ops_tables import bulk_insert, ensure_ops_tables, unit_from_row
from dagster_project.warehouse import Warehouse

# Fallbacks after a transient failure (timeout, 5xx, 429, budget) are stored but not reused, so the
# next run asks the LLM again; guardrail fallbacks are reused, so a bad prompt is not paid for twice.
TRANSIENT_OUTCOMES = {"timeout", "server_error", "rate_limited", "quota", "connection", "budget"}


@dataclass
class ContentUnitRecord:
    segment_key: str
    segment_name: str
    variant_id: str
    customers: int
    content_key: str
    written: WrittenContent
    cached: bool


@dataclass
class ContentReport:
    units: list[ContentUnitRecord] = field(default_factory=list)

    @property
    def written_now(self) -> list[ContentUnitRecord]:
        return [u for u in self.units if not u.cached]

    @property
    def review_queue(self) -> list[ContentUnitRecord]:
        return [u for u in self.units if u.written.in_review]


def audience_segments(conn, campaign: Campaign) -> list[tuple[str, str, str, str | None, int]]:
    """(segment_key, segment_name, lifecycle_segment, top_category, eligible customers) per segment."""
    return conn.fetchall(
        f"select segment_key, min(segment_name), min(lifecycle_segment), "
        f"min(split_part(segment_key, ':', 2)), count(*) "
        f"from {campaign.relation} where is_eligible group by segment_key order by segment_key"
    )


def segment_brief(campaign: Campaign, variant, lifecycle: str, category: str | None, segment_key: str,
                  brand_voice: str) -> SegmentBrief:
    categories = () if category in (None, "", "general") else (category,)
    return SegmentBrief(
        campaign_id=campaign.campaign_id,
        campaign_type=campaign.campaign_type,
        brief=campaign.brief,
        segment_key=segment_key,
        lifecycle_segment=lifecycle,
        top_categories=categories,
        variant_id=variant.variant_id,
        variant_angle=variant.angle,
        brand_voice=brand_voice,
    )


def write_campaign_content(
    warehouse: Warehouse,
    campaign: Campaign,
    chain: ContentChain,
    cache_identity: tuple[str, str | None],
    brand_voice: str,
    now: datetime,
    progress: Callable[[str], None] = lambda _: None,
) -> ContentReport:
    """`cache_identity` is (prompt version, primary model or None) of the writer chain in use."""
    prompt_version, model = cache_identity
    report = ContentReport()
    with warehouse.connect() as conn:
        ensure_ops_tables(conn)
        segments = audience_segments(conn, campaign)
        cached = _cached_units(conn, campaign.campaign_id)
    new_content, new_calls = [], []
    for segment_key, segment_name, lifecycle, category, customers in segments:
        for variant in campaign.variants:
            brief = segment_brief(campaign, variant, lifecycle, category, segment_key, brand_voice)
            key = content_cache_key(prompt_version, model, brief.facts())
            if key in cached:
                report.units.append(ContentUnitRecord(segment_key, segment_name, variant.variant_id, customers,
                                                      key, cached[key], cached=True))
                continue
            calls_before = len(chain.calls)
            written, pii_error = chain.write_safely(brief)
            if pii_error:
                progress(f"ERROR {campaign.campaign_id}: {pii_error}")
            calls = chain.calls[calls_before:]
            new_calls += [_call_row(call, now, campaign.campaign_id, segment_key, variant.variant_id) for call in calls]
            reusable = not (written.writer == "rules" and any(c.outcome in TRANSIENT_OUTCOMES for c in calls))
            new_content.append(
                _content_row(key, campaign.campaign_id, segment_key, variant.variant_id, written, reusable, now)
            )
            report.units.append(ContentUnitRecord(segment_key, segment_name, variant.variant_id, customers, key,
                                                  written, cached=False))
            progress(f"{campaign.campaign_id}: {segment_key} / {variant.variant_id} written by {written.writer}")
    with warehouse.connect() as conn:
        # A unit written again replaces the stand-in a transient failure left under the same key
        # (its own transaction: DuckDB checks unique keys before a same-transaction delete counts).
        for row in new_content:
            conn.execute("delete from ops.content where content_key = ?", [row[0]])
    with warehouse.connect() as conn:
        bulk_insert(conn, "ops.content", new_content)
        bulk_insert(conn, "ops.llm_calls", new_calls)
        conn.execute("delete from ops.campaign_content where campaign_id = ?", [campaign.campaign_id])
        bulk_insert(conn, "ops.campaign_content", [
            (campaign.campaign_id, unit.segment_key, unit.variant_id, unit.content_key, now) for unit in report.units
        ])
    return report


def _cached_units(conn, campaign_id: str) -> dict[str, WrittenContent]:
    rows = conn.fetchall(
        "select content_key, writer, prompt_version, model, subject, preheader, headline, body_paragraphs, "
        "call_to_action, quality_score, flags, review_reason from ops.content where campaign_id = ? and reusable",
        [campaign_id],
    )
    units = {}
    for key, writer, version, model, subject, preheader, headline, body, cta, score, flags, review in rows:
        units[key] = WrittenContent(unit=unit_from_row((subject, preheader, headline, body, cta)), writer=writer,
                                    prompt_version=version, model=model, quality_score=score,
                                    flags=json.loads(flags), review_reason=review.strip() if review else None)
    return units


def _content_row(key, campaign_id, segment_key, variant_id, written: WrittenContent, reusable: bool, now) -> tuple:
    unit = written.unit
    return (
        key, campaign_id, segment_key, variant_id, written.writer, written.prompt_version, written.model,
        unit.subject, unit.preheader, unit.headline, json.dumps(unit.body_paragraphs), unit.call_to_action,
        written.quality_score, json.dumps(written.flags), written.review_reason, written.input_tokens,
        written.output_tokens, written.cost_usd, reusable, now,
    )


def _call_row(call, now, campaign_id, segment_key, variant_id) -> tuple:
    return (
        now, campaign_id, segment_key, variant_id, call.endpoint, call.model, call.prompt_version, call.outcome,
        call.input_tokens, call.output_tokens, call.cost_usd, round(call.seconds, 3),
    )
