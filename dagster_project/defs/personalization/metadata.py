"""What a marketer reads on a campaign's assets: previews of the words, what they cost, who gets
what, and who does not and why."""

from __future__ import annotations

from datetime import timezone

import dagster as dg

from dagster_project.personalization.content_step import ContentReport
from dagster_project.personalization.messages_step import MessagesReport

PREVIEWS_SHOWN = 12


def content_metadata(report: ContentReport) -> dict:
    written = [u.written for u in report.written_now]
    return {
        "content_units": dg.MetadataValue.int(len(report.units)),
        "written_this_run": dg.MetadataValue.int(len(written)),
        "reused_from_cache": dg.MetadataValue.int(len(report.units) - len(written)),
        "llm_written": dg.MetadataValue.int(sum(1 for u in report.units if u.written.writer != "rules")),
        "llm_input_tokens": dg.MetadataValue.int(sum(w.input_tokens for w in written)),
        "llm_output_tokens": dg.MetadataValue.int(sum(w.output_tokens for w in written)),
        "llm_cost_usd": dg.MetadataValue.float(round(float(sum(w.cost_usd for w in written)), 6)),
        "review_queue_size": dg.MetadataValue.int(len(report.review_queue)),
        "review_queue": dg.MetadataValue.md(_review_queue(report)),
        "preview": dg.MetadataValue.md(_previews(report)),
    }


def _review_queue(report: ContentReport) -> str:
    if not report.review_queue:
        return "Nothing to review."
    lines = ["| segment | variant | reason |", "|---|---|---|"]
    lines += [f"| {u.segment_key} | {u.variant_id} | {u.written.review_reason} |" for u in report.review_queue]
    return "\n".join(lines)


def _previews(report: ContentReport) -> str:
    units = sorted(report.units, key=lambda u: -u.customers)[:PREVIEWS_SHOWN]
    parts = [f"Largest {len(units)} of {len(report.units)} segment x variant units.\n"]
    for unit in units:
        words, made = unit.written.unit, unit.written
        parts.append(
            f"### {unit.segment_name or unit.segment_key} · variant {unit.variant_id} (segment of {unit.customers:,})\n"
            f"*{made.writer}, {made.prompt_version}{', ' + made.model if made.model else ''}, quality "
            f"{made.quality_score:.2f}{', flags: ' + ', '.join(made.flags) if made.flags else ''}*\n\n"
            f"**Subject:** {words.subject}  \n**Preheader:** {words.preheader}\n\n"
            f"**{words.headline}**\n\n" + "\n\n".join(words.body_paragraphs) + f"\n\n[{words.call_to_action}]\n"
        )
    return "\n".join(parts)


def messages_metadata(report: MessagesReport) -> dict:
    suppressed = "\n".join(f"| {reason} | {count:,} |" for reason, count in report.suppressed.most_common())
    variants = ", ".join(f"{variant}: {count:,}" for variant, count in sorted(report.by_variant.items()))
    return {
        "run_key": dg.MetadataValue.text(report.run_key),
        "candidates": dg.MetadataValue.int(report.candidates),
        "audience_size": dg.MetadataValue.int(report.audience),
        "holdout_size": dg.MetadataValue.int(report.holdout),
        "messages_rendered": dg.MetadataValue.int(report.rendered),
        "already_rendered_this_run": dg.MetadataValue.int(report.already_rendered),
        "suppressed": dg.MetadataValue.int(sum(report.suppressed.values())),
        "suppressed_by_reason": dg.MetadataValue.md(
            "| reason | customers |\n|---|---|\n" + suppressed if suppressed else "Nobody was suppressed."
        ),
        "messages_by_variant": dg.MetadataValue.text(variants or "none"),
        "new_variant_assignments": dg.MetadataValue.int(report.new_assignments),
        # A roll-out experiment: the remainder waits for the readout's winner (campaigns/<id>/rollout).
        "remainder_awaiting_winner": dg.MetadataValue.int(report.awaiting_winner),
        "experiment_winner": dg.MetadataValue.text(report.winner or "not decided"),
        **({"next_deadline": dg.MetadataValue.timestamp(report.decide_by.replace(tzinfo=timezone.utc))}
           if report.decide_by else {}),
        **({"bandit_variant_shares": dg.MetadataValue.json(report.variant_weights)} if report.variant_weights else {}),
    }
