"""What a marketer reads on a campaign's assets: previews of the words and of the emails as they
render, what they cost, who gets what, and who does not and why.

Counts stay numbers (the UI plots them across runs); a `summary` says the same for people, with
thousands separators, shares and dollars, and every breakdown is a markdown table. Values from the
data (segment keys, reasons, subjects) are escaped before they reach markdown.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import timezone
from urllib.parse import quote

import dagster as dg

from dagster_project.personalization.content_step import ContentReport
from dagster_project.personalization.messages_step import MessagesReport
from dagster_project.personalization.previews import Preview, disarm_unsubscribe

PREVIEWS_SHOWN = 12
PREVIEW_TEXT_CHARS = 5000  # preview_text in all; the .txt files beside the index hold every text whole
PREVIEW_TEXT_CHARS_EACH = 1500
_MARKDOWN_ACTIVE = re.compile(r"([\\`*_\[\]<>|!~])")


def content_metadata(report: ContentReport) -> dict:
    written = [u.written for u in report.written_now]
    cost = round(float(sum(w.cost_usd for w in written)), 6)
    by_llm = sum(1 for u in report.units if u.written.writer != "rules")
    tokens_in, tokens_out = sum(w.input_tokens for w in written), sum(w.output_tokens for w in written)
    segments = len({u.segment_key for u in report.units})
    summary = (
        f"**{len(report.units):,}** content units ({segments:,} segments × their variants): "
        f"**{len(written):,}** written this run, **{len(report.units) - len(written):,}** reused from the cache. "
        f"**{by_llm:,}** written by the LLM; this run's LLM calls cost **{_dollars(cost)}** "
        f"({tokens_in:,} input and {tokens_out:,} output tokens). "
        f"**{len(report.review_queue):,}** in the review queue."
    )
    return {
        "summary": dg.MetadataValue.md(summary),
        "content_units": dg.MetadataValue.int(len(report.units)),
        "written_this_run": dg.MetadataValue.int(len(written)),
        "reused_from_cache": dg.MetadataValue.int(len(report.units) - len(written)),
        "llm_written": dg.MetadataValue.int(by_llm),
        "llm_input_tokens": dg.MetadataValue.int(tokens_in),
        "llm_output_tokens": dg.MetadataValue.int(tokens_out),
        "llm_cost_usd": dg.MetadataValue.float(cost),
        "units_by_writer": dg.MetadataValue.md(_units_by_writer(report)),
        "review_queue_size": dg.MetadataValue.int(len(report.review_queue)),
        "review_queue": dg.MetadataValue.md(_review_queue(report)),
        "preview": dg.MetadataValue.md(_previews(report)),
    }


def _units_by_writer(report: ContentReport) -> str:
    if not report.units:
        return "No content units: the campaign has no eligible audience."
    units = Counter(u.written.writer for u in report.units)
    now = Counter(u.written.writer for u in report.written_now)
    cost = Counter()
    for unit in report.written_now:
        cost[unit.written.writer] += unit.written.cost_usd
    rows = [[_cell(writer), f"{count:,}", _share(count, len(report.units)), f"{now[writer]:,}", _dollars(cost[writer])]
            for writer, count in sorted(units.items(), key=lambda kv: (-kv[1], kv[0]))]
    return _table(["writer", "units", "share", "written this run", "cost this run"], rows)


def _review_queue(report: ContentReport) -> str:
    if not report.review_queue:
        return "Nothing to review."
    return _table(["segment", "variant", "reason"],
                  [[_cell(u.segment_key), _cell(u.variant_id), _cell(u.written.review_reason or "")]
                   for u in report.review_queue])


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
    suppressed = sum(report.suppressed.values())
    return {
        "summary": dg.MetadataValue.md(_accounting(report)),
        "run_key": dg.MetadataValue.text(report.run_key),
        "candidates": dg.MetadataValue.int(report.candidates),
        "audience_size": dg.MetadataValue.int(report.audience),
        "holdout_size": dg.MetadataValue.int(report.holdout),
        "messages_rendered": dg.MetadataValue.int(report.rendered),
        "already_rendered_this_run": dg.MetadataValue.int(report.already_rendered),
        # The state of the run, not the delta: every message it has, from this pass and earlier ones.
        "messages_in_run": dg.MetadataValue.int(report.rendered + report.already_rendered),
        "suppressed": dg.MetadataValue.int(suppressed),
        "suppressed_by_reason": dg.MetadataValue.md(
            _table(["reason", "customers", "share of candidates"],
                   [[_cell(reason), f"{count:,}", _share(count, report.candidates)]
                    for reason, count in report.suppressed.most_common()])
            if suppressed else "Nobody was suppressed."
        ),
        "messages_by_variant": dg.MetadataValue.md(_by_variant(report)),
        "new_variant_assignments": dg.MetadataValue.int(report.new_assignments),
        # A roll-out experiment: the remainder waits for the readout's winner (campaigns/<id>/<id>_rollout).
        "remainder_awaiting_winner": dg.MetadataValue.int(report.awaiting_winner),
        "experiment_winner": dg.MetadataValue.text(report.winner or "not decided"),
        **({"next_deadline": dg.MetadataValue.timestamp(report.decide_by.replace(tzinfo=timezone.utc))}
           if report.decide_by else {}),
        **_send_time_metadata(report),
        **_audience_filter_metadata(report),
        **({"bandit_variant_shares": dg.MetadataValue.md(_table(
            ["variant", "share of the run"],
            [[_cell(variant), _percent(weight)] for variant, weight in sorted(report.variant_weights.items())]))}
           if report.variant_weights else {}),
    }


def _audience_filter_metadata(report: MessagesReport) -> dict:
    """meta.campaign.audience: how many eligible customers the propensity filter looked at and left out."""
    outcome = report.audience_filter
    if outcome is None:
        return {}
    text = (f"**{outcome.description}**: {len(outcome.excluded):,} of {outcome.scored:,} scored eligible customers "
            f"left out (suppressed as low_propensity).")
    if outcome.unscored:
        text += (f" {outcome.unscored:,} eligible customers have no score yet and were kept"
                 + (" (no model serves yet: run the propensity_refresh job)." if not outcome.scored else "."))
    return {"audience_filter": dg.MetadataValue.md(text),
            "left_out_by_propensity": dg.MetadataValue.int(len(outcome.excluded))}


SEND_TIME_ARMS = ("optimized", "explore", "fixed")


def _send_time_metadata(report: MessagesReport) -> dict:
    """send_time: optimized: when the messages of this pass land on the customers' clocks, per arm
    (fixed is the randomized control), and what evidence the optimized times came from."""
    arms = [arm for arm in SEND_TIME_ARMS if any(key[0] == arm for key in report.send_hours)]
    if not arms:
        return {}
    hours = sorted({hour for _, hour in report.send_hours})
    totals = {arm: sum(n for (a, _), n in report.send_hours.items() if a == arm) for arm in arms}

    def cell(arm: str, hour: int) -> str:
        count = report.send_hours[(arm, hour)]
        return f"{count:,} ({_share(count, totals[arm])})"

    rows = [[f"{hour:02d}:00", *(cell(arm, hour) for arm in arms)] for hour in hours]
    sources = sum(report.send_time_sources.values())
    return {
        "send_time_local_hours": dg.MetadataValue.md(_table(["local hour", *arms], rows)),
        "send_time_sources": dg.MetadataValue.md(_table(
            ["evidence behind the optimized time", "messages", "share"],
            [[_cell(source), f"{count:,}", _share(count, sources)]
             for source, count in report.send_time_sources.most_common()])),
        **{f"send_time_{arm}_messages": dg.MetadataValue.int(totals[arm]) for arm in arms},
    }


def _accounting(report: MessagesReport) -> str:
    """Where every candidate of this pass went, as a table that adds up to the candidates."""
    outcomes = [
        ("message rendered now", report.rendered),
        ("message rendered by an earlier pass of this run", report.already_rendered),
        ("holdout (no message, the experiment's control)", report.holdout),
        ("suppressed, with a reason (below)", sum(report.suppressed.values())),
        ("waiting for the experiment's winner", report.awaiting_winner),
    ]
    accounted = sum(count for _, count in outcomes)
    if report.candidates > accounted:  # a roll-out pass looks at the waiting remainder only
        outcomes.append(("not part of this pass (a roll-out renders the remainder only)",
                         report.candidates - accounted))
    head = (f"Run **{_cell(report.run_key)}**: **{report.candidates:,}** candidates, **{report.audience:,}** "
            f"eligible; **{report.rendered + report.already_rendered:,}** messages in the run.\n\n")
    rows = [[label, f"{count:,}", _share(count, report.candidates)] for label, count in outcomes if count]
    return head + _table(["outcome", "customers", "share of candidates"], rows)


def _by_variant(report: MessagesReport) -> str:
    if not report.by_variant:
        return "No message rendered in this pass."
    total = sum(report.by_variant.values())
    return _table(["variant", "messages rendered now", "share"],
                  [[_cell(variant), f"{count:,}", _share(count, total)]
                   for variant, count in sorted(report.by_variant.items())])


def previews_metadata(previews: Sequence[Preview], base_url: str | None = None) -> dict:
    """The emails as they render (see personalization/previews.py): the index file, a table of every
    (segment, variant) with its subject and files (and, given the receiver's `base_url`, links to its
    /preview/ route), and the text version of each, truncated to a few KB."""
    if not previews:
        return {"previews": dg.MetadataValue.md("No message in this run, so no previews.")}
    index = previews[0].index_path
    base = f"{base_url.rstrip('/')}/preview/{quote(index.parent.name)}/" if base_url else None
    columns = ["segment", "variant", "subject", "preheader", "sample recipient", "open" if base else "files"]
    rows = [[_cell(p.segment_key), _cell(p.variant_id), _cell(p.subject), _cell(p.preheader), _cell(p.customer_id),
             f"[HTML]({base}{quote(p.html_path.name)}) · [text]({base}{quote(p.text_path.name)})" if base
             else f"`{p.html_path.name}`, `{p.text_path.name}`"]
            for p in previews]
    return {
        "preview_index": dg.MetadataValue.path(str(index)),
        **({"preview_url": dg.MetadataValue.url(base)} if base else {}),
        "preview_count": dg.MetadataValue.int(len(previews)),
        "previews": dg.MetadataValue.md(f"Files in `{index.parent}`; each is one real recipient's message "
                                        f"as rendered.\n\n{_table(columns, rows)}"),
        "preview_text": dg.MetadataValue.md(_preview_texts(previews)),
    }


def _preview_texts(previews: Sequence[Preview]) -> str:
    """Each (segment, variant)'s text version, until PREVIEW_TEXT_CHARS. The UI keeps metadata for
    good, so the sample recipient's first name and address show as placeholders and their unsubscribe
    token (a key to their subscription) is left out."""
    parts, used = [], 0
    for shown, p in enumerate(previews):
        text = disarm_unsubscribe(p.redacted_text().strip())
        if len(text) > PREVIEW_TEXT_CHARS_EACH:
            text = (text[:PREVIEW_TEXT_CHARS_EACH].rstrip()
                    + f"\n[... cut here; the whole text is in {p.text_path.name}]")
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
        part = (f"### {_cell(p.segment_key)} · variant {_cell(p.variant_id)}\n**Subject:** {_cell(p.subject)}\n\n"
                f"{fence}text\n{text}\n{fence}\n")
        if parts and used + len(part) > PREVIEW_TEXT_CHARS:
            parts.append(f"*{len(previews) - shown:,} more of {len(previews):,} not shown here (kept to a few KB): "
                         f"every text version is in the .txt files beside `{p.index_path}`.*")
            break
        parts.append(part)
        used += len(part)
    return "\n".join(parts)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _cell(value) -> str:
    """A value from the data as literal text in markdown: one line, nothing it could format or link."""
    return _MARKDOWN_ACTIVE.sub(r"\\\1", " ".join(str(value).split())) if value not in (None, "") else "-"


def _share(count: int, total: int) -> str:
    return _percent(count / total) if total else "-"


def _percent(fraction: float) -> str:
    return f"{fraction:.1%}"


def _dollars(amount: float) -> str:
    return f"${amount:,.4f}" if amount < 1 else f"${amount:,.2f}"
