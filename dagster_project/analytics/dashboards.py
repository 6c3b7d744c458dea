"""The five dashboards, built from the metrics marts and written as self-contained HTML files.

    marketing   each campaign's funnel and rates per variant and segment over time, the experiment
                readout, engagement decay and cohort retention
    ops         runs, step durations, gate outcomes, throughput, hand-over errors by destination and
                the receiving servers' response codes
    content     content units by writer, quality scores, guardrail refusals, PII redactions, LLM latency
    cost        LLM spend per day against the daily budget, cost per email, tokens
    compliance  suppressions by reason and stage, consent rejections, opt-outs by source

Key figures come back as numbers too, for Dagster's asset plots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dagster_project.analytics import charts
from dagster_project.analytics.operations import CheckSummary, RunSummary
from dagster_project.analytics.page import Dashboard, Panel, render, write_atomically
from dagster_project.analytics.tables import read
from dagster_project.warehouse import Connection

DASHBOARDS = {"marketing": "Marketing", "ops": "Operations", "content": "ML and content", "cost": "Cost",
              "compliance": "Compliance"}
FUNNEL = ("sends", "deliveries", "human_opens", "clicks", "conversions")
NOT_YET = "No sends yet: this fills in after a campaign has been sent and the provider's events came back."
OUTCOME_COLORS = {"passed": "#2f9e44", "warned": "#f08c00", "failed": "#e03131"}
RUN_COLORS = {"SUCCESS": "#2f9e44", "FAILURE": "#e03131", "CANCELED": "#868e96"}


@dataclass(frozen=True)
class Written:
    dashboard: Dashboard
    path: Path


def write_dashboards(conn: Connection, out_dir: Path, runs: Sequence[RunSummary] = (),
                     checks: Sequence[CheckSummary] = (), daily_budget_usd: float = 0.0,
                     now: datetime | None = None) -> list[Written]:
    now = now or datetime.now()
    built = [marketing(conn), operations(conn, runs, checks), content(conn), cost(conn, daily_budget_usd),
             compliance(conn)]
    links = list(DASHBOARDS.items())
    generated = f"built {now:%Y-%m-%d %H:%M} UTC from the {conn.kind} warehouse"
    written = []
    for dashboard in built:
        path = out_dir / f"{dashboard.name}.html"
        write_atomically(path, render(dashboard, links, generated))
        written.append(Written(dashboard, path))
    return written


# --- marketing ---------------------------------------------------------------------------------------

EMAIL_COLUMNS = ("sent_date", "campaign_id", "variant_id", "segment_key", "sends", "deliveries", "human_opens",
                 "clicks", "unsubscribes", "hard_bounces", "soft_bounces", "spam_complaints", "conversions", "revenue")


def marketing(conn: Connection) -> Dashboard:
    email = read(conn, "marts.metrics_email_daily", EMAIL_COLUMNS,
                 "ORDER BY sent_date, campaign_id, variant_id, segment_key")
    totals = charts.grouped_sums(email, (), FUNNEL + ("revenue",)).get((), dict.fromkeys(FUNNEL + ("revenue",), 0))
    dashboard = Dashboard("marketing", "Marketing", "How each campaign did, per variant and segment")
    _funnel_figures(dashboard, totals)
    if not email:
        dashboard.panels.append(Panel("Campaign funnel", empty_because=NOT_YET))
        return dashboard
    per_arm = charts.grouped_sums(email, ("campaign_id", "variant_id"), FUNNEL)
    dashboard.panels.append(Panel(
        "Funnel per campaign and variant",
        "Messages at each step: sent, delivered, opened by a person, clicked, followed by an order.",
        charts.bars([name.replace("_", " ") for name in FUNNEL],
                    {f"{campaign} · {variant}": [sums[name] for name in FUNNEL]
                     for (campaign, variant), sums in per_arm.items()}, y_title="messages")))
    daily = charts.grouped_sums(email, ("campaign_id", "variant_id", "sent_date"),
                                ("deliveries", "human_opens", "clicks"))
    for rate, numerator in (("Open rate", "human_opens"), ("Click rate", "clicks")):
        series: dict[str, tuple[list, list]] = {}
        for (campaign, variant, day), sums in daily.items():
            x, y = series.setdefault(f"{campaign} · {variant}", ([], []))
            x.append(day)
            y.append(charts.ratio(sums[numerator], sums["deliveries"]))
        dashboard.panels.append(Panel(f"{rate} over time", f"{numerator.replace('_', ' ')} / deliveries, by the "
                                      "day the messages were sent (a day's rate settles as its engagement arrives).",
                                      charts.lines(series, rate.lower(), percent=True)))
    dashboard.panels.append(Panel("Per variant and segment", "All days together.",
                                  table=_segment_table(email)))
    readout = _readout_table(conn)
    dashboard.panels.append(Panel("Experiment readout (each campaign's latest run)",
                                  "Per arm, the holdout beside the variants; counts are customers (intent to treat).",
                                  table=readout or None, empty_because="No experiment has units yet."))
    dashboard.panels.append(_decay_panel(conn))
    dashboard.panels.append(_cohort_panel(conn))
    return dashboard


def _funnel_figures(dashboard: Dashboard, totals: dict) -> None:
    rates = {"open rate": charts.ratio(totals["human_opens"], totals["deliveries"]),
             "click rate": charts.ratio(totals["clicks"], totals["deliveries"])}
    dashboard.figures = {"sent": f"{totals['sends']:,}", "delivered": f"{totals['deliveries']:,}",
                         **{name: _percent(value) for name, value in rates.items()},
                         "conversions": f"{totals['conversions']:,}", "revenue": f"{totals['revenue']:,.2f}"}
    dashboard.numbers = {"sends": totals["sends"], "deliveries": totals["deliveries"],
                         "conversions": totals["conversions"], "revenue": round(float(totals["revenue"]), 2),
                         **{name.replace(" ", "_"): round(value, 4)
                            for name, value in rates.items() if value is not None}}


def _segment_table(email: list[dict]) -> list[dict]:
    values = ("sends", "deliveries", "human_opens", "clicks", "unsubscribes", "hard_bounces", "conversions", "revenue")
    table = []
    for (campaign, variant, segment), sums in charts.grouped_sums(
            email, ("campaign_id", "variant_id", "segment_key"), values).items():
        table.append({"campaign": campaign, "variant": variant, "segment": segment, "sent": sums["sends"],
                      "delivered": _percent(charts.ratio(sums["deliveries"], sums["sends"])),
                      "opened": _percent(charts.ratio(sums["human_opens"], sums["deliveries"])),
                      "clicked": _percent(charts.ratio(sums["clicks"], sums["deliveries"])),
                      "click-to-open": _percent(charts.ratio(sums["clicks"], sums["human_opens"])),
                      "unsubscribed": _percent(charts.ratio(sums["unsubscribes"], sums["deliveries"])),
                      "hard bounced": _percent(charts.ratio(sums["hard_bounces"], sums["sends"])),
                      "conversions": sums["conversions"], "revenue": f"{sums['revenue']:,.2f}"})
    return table


def _readout_table(conn: Connection) -> list[dict]:
    columns = ("campaign_id", "run_key", "arm", "units", "sends", "clicks", "conversions", "revenue")
    rows = read(conn, "marts.campaign_performance", columns,
                "AS p WHERE run_key = (SELECT max(run_key) FROM marts.campaign_performance AS l "
                "WHERE l.campaign_id = p.campaign_id) ORDER BY campaign_id, is_holdout, arm")
    return [{"campaign": campaign, "run": run, "arm": arm, "customers": s["units"], "sent": s["sends"],
             "clicked": s["clicks"], "converted": _percent(charts.ratio(s["conversions"], s["units"])),
             "revenue / customer": f"{charts.ratio(s['revenue'], s['units']) or 0:,.2f}"}
            for (campaign, run, arm), s in charts.grouped_sums(
                rows, ("campaign_id", "run_key", "arm"),
                ("units", "sends", "clicks", "conversions", "revenue")).items()]


def _decay_panel(conn: Connection) -> Panel:
    """Per lifecycle stage (the segment key's part before ':'), so the lines stay few enough to read."""
    rows = read(conn, "marts.metrics_engagement_decay", ("segment_key", "message_number", "deliveries",
                                                          "human_opens"))
    for row in rows:
        row["stage"] = row["segment_key"].split(":", 1)[0]
    sums = charts.grouped_sums(sorted(rows, key=lambda r: (r["stage"], r["message_number"])),
                               ("stage", "message_number"), ("deliveries", "human_opens"))
    series: dict[str, tuple[list, list]] = {}
    for (stage, number), counts in sums.items():
        x, y = series.setdefault(stage, ([], []))
        x.append(number)
        y.append(charts.ratio(counts["human_opens"], counts["deliveries"]))
    return Panel("Engagement decay per segment", "Open rate of each customer's 1st, 2nd, 3rd... message, per "
                 "lifecycle stage: a falling line is mail fatigue (per segment in marts.metrics_engagement_decay).",
                 charts.lines(series, "open rate", percent=True, x_title="message number") if rows else None,
                 empty_because=NOT_YET)


def _cohort_panel(conn: Connection) -> Panel:
    rows = read(conn, "marts.metrics_engagement_cohorts", ("signup_month", "months_since_signup", "retention_rate"))
    for row in rows:
        row["signup_month"] = f"{row['signup_month']:%Y-%m}"
    if not rows:
        return Panel("Engagement retention by signup month", empty_because=NOT_YET)
    x, y, z = charts.pivot(rows, "months_since_signup", "signup_month", "retention_rate")
    return Panel("Engagement retention by signup month", "Share of each signup month's customers who opened or "
                 "clicked in each later month (0 = the signup month).",
                 charts.heatmap([f"+{m}" for m in x], y, z, "engaged", percent=True))


# --- ops -----------------------------------------------------------------------------------------------

def operations(conn: Connection, runs: Sequence[RunSummary], checks: Sequence[CheckSummary]) -> Dashboard:
    dashboard = Dashboard("ops", "Operations", "Runs, steps, gates, throughput and errors")
    delivery = read(conn, "marts.metrics_delivery_daily", ("destination", "send_state", "error_class", "messages",
                                                            "retries"))
    outcome = lambda row: row["send_state"] if row["error_class"] == "none" else f"failed: {row['error_class']}"  # noqa: E731
    by_outcome = charts.grouped_sums(({**row, "outcome": outcome(row)} for row in delivery),
                                     ("destination", "outcome"), ("messages", "retries"))
    failed = sum(s["messages"] for (_, o), s in by_outcome.items() if o.startswith("failed"))
    handed = sum(s["messages"] for (_, o), s in by_outcome.items() if o == "accepted")
    dashboard.figures = {"runs": f"{len(runs):,}", "failed runs": f"{sum(r.status == 'FAILURE' for r in runs):,}",
                         "handed over": f"{handed:,}", "failed hand-overs": f"{failed:,}",
                         "retries": f"{sum(s['retries'] for s in by_outcome.values()):,}"}
    dashboard.numbers = {"runs": len(runs), "handed_over": handed, "failed_handovers": failed}
    timed = [run for run in runs if run.seconds is not None]
    dashboard.panels.append(Panel(
        "Runs", "Each run's wall time, by status (the latest 50).",
        charts.bars([f"{r.started_at:%m-%d %H:%M:%S} {r.job_name}" if r.started_at else r.run_id[:8] for r in timed],
                    {status: [r.seconds if r.status == status else 0 for r in timed]
                     for status in sorted({r.status for r in timed})}, stacked=True, y_title="seconds",
                    colors=RUN_COLORS)
        if timed else None, empty_because="No finished run yet (the run that wrote this page was still going)."
        if runs else "No runs in this Dagster instance yet."))
    steps = sorted(((seconds, f"{run.job_name} · {step}") for run in _latest_per_job(runs)
                    for step, seconds in run.step_seconds.items()), reverse=True)[:15]
    dashboard.panels.append(Panel(
        "Slowest steps (each job's latest run)", "", charts.bars([name for _, name in reversed(steps)],
                                                                 {"seconds": [s for s, _ in reversed(steps)]},
                                                                 horizontal=True, y_title="seconds")
        if steps else None, empty_because="No finished steps yet."))
    dashboard.panels.append(Panel(
        "Gate outcomes", "Asset check evaluations per check: a failed blocking gate stops what is below it.",
        charts.bars([c.check for c in checks], {"passed": [c.passed for c in checks],
                                                 "warned": [c.warned for c in checks],
                                                 "failed": [c.failed for c in checks]}, stacked=True,
                    horizontal=True, y_title="evaluations", colors=OUTCOME_COLORS) if checks else None,
        empty_because="No gate has run yet."))
    dashboard.panels.extend(_throughput_panels(conn))
    destinations = sorted({d for d, _ in by_outcome})
    outcomes = sorted({o for _, o in by_outcome})
    dashboard.panels.append(Panel(
        "Hand-over outcomes by destination", "Messages per ledger outcome; failures by their error class.",
        charts.bars(destinations, {o: [by_outcome.get((d, o), {"messages": 0})["messages"] for d in destinations]
                                   for o in outcomes}, stacked=True, y_title="messages")
        if delivery else None, empty_because=NOT_YET))
    responses = read(conn, "marts.metrics_provider_responses_daily", ("event_date", "event_type", "smtp_status",
                                                                       "events"))
    for row in responses:
        row["response"] = (f"{row['event_type']} {row['smtp_status']}" if row["smtp_status"] != "none"
                           else row["event_type"])
    x, y, z = charts.pivot(responses, "event_date", "response", "events")
    dashboard.panels.append(Panel(
        "Provider responses per day", "The provider's delivery events by SMTP status code (250 delivered, 4.x.x "
        "deferred, 5.x.x refused).", charts.heatmap(x, y, z, "events") if responses else None,
        empty_because="No provider delivery events yet."))
    return dashboard


def _latest_per_job(runs: Sequence[RunSummary]) -> list[RunSummary]:
    latest: dict[str, RunSummary] = {}
    for run in runs:
        current = latest.get(run.job_name)
        if run.step_seconds and (current is None
                                 or (run.started_at or datetime.min) > (current.started_at or datetime.min)):
            latest[run.job_name] = run
    return list(latest.values())


def _throughput_panels(conn: Connection) -> list[Panel]:
    columns = ("campaign_id", "run_key", "messages_rendered", "render_seconds", "messages_handed_over",
               "handover_seconds", "handed_over_per_second")
    rows = read(conn, "marts.metrics_send_runs", columns, "ORDER BY campaign_id, run_key")
    if not rows:
        return [Panel("Throughput per campaign run", empty_because="No campaign has rendered messages yet.")]
    labels = [f"{row['campaign_id']} {row['run_key']}" for row in rows]
    speed = [{"campaign": r["campaign_id"], "run": r["run_key"], "rendered": r["messages_rendered"],
              "render seconds": r["render_seconds"], "handed over": r["messages_handed_over"],
              "hand-over seconds": r["handover_seconds"], "per second": r["handed_over_per_second"]} for r in rows]
    return [Panel("Throughput per campaign run", "Messages rendered and handed over per run.",
                  charts.bars(labels, {"rendered": [r["messages_rendered"] for r in rows],
                                       "handed over": [r["messages_handed_over"] for r in rows]}, y_title="messages")),
            Panel("How long each run took", "First to last message rendered; first claim to the provider's last "
                  "answer (no rate for a span under a second).", table=speed)]


# --- content -------------------------------------------------------------------------------------------

CONTENT_COLUMNS = ("activity_date", "campaign_id", "messages_rendered", "content_units", "llm_units",
                   "rule_fallbacks", "pii_redactions", "units_in_review", "avg_quality_score", "llm_calls",
                   "cost_usd")


def content(conn: Connection) -> Dashboard:
    rows = read(conn, "marts.metrics_content_daily", CONTENT_COLUMNS, "ORDER BY activity_date, campaign_id")
    sums = charts.grouped_sums(rows, (), ("content_units", "llm_units", "rule_fallbacks", "pii_redactions",
                                          "units_in_review", "llm_calls")).get((), {})
    dashboard = Dashboard("content", "ML and content", "Who wrote the content, how good it is, what the guardrails did")
    calls = read(conn, "marts.metrics_llm_daily", ("called_date", "llm_calls", "guardrail_rejections", "api_errors",
                                                    "latency_p95_seconds"), "ORDER BY called_date")
    call_sums = charts.grouped_sums(calls, (), ("llm_calls", "guardrail_rejections", "api_errors")).get((), {})
    dashboard.figures = {"content units": f"{sums.get('content_units', 0):,}",
                         "written by an LLM": f"{sums.get('llm_units', 0):,}",
                         "rule fallbacks": f"{sums.get('rule_fallbacks', 0):,}",
                         "PII redactions": f"{sums.get('pii_redactions', 0):,}",
                         "in review": f"{sums.get('units_in_review', 0):,}",
                         "guardrail rejection rate": _percent(charts.ratio(call_sums.get("guardrail_rejections", 0),
                                                                           call_sums.get("llm_calls", 0)))}
    dashboard.numbers = {"content_units": sums.get("content_units", 0), "pii_redactions": sums.get("pii_redactions", 0),
                         "rule_fallbacks": sums.get("rule_fallbacks", 0), "llm_calls": call_sums.get("llm_calls", 0)}
    written = [row for row in rows if row["content_units"]]
    if not written:
        dashboard.panels.append(Panel("Content", empty_because="No content written yet."))
        return dashboard
    labels = [f"{row['activity_date']} {row['campaign_id']}" for row in written]
    dashboard.panels.append(Panel(
        "Content units by writer", "An LLM's, or the rules' (as configured, or as a fallback after the LLM failed).",
        charts.bars(labels, {"LLM": [r["llm_units"] for r in written],
                             "rules (fallback)": [r["rule_fallbacks"] for r in written],
                             "rules": [r["content_units"] - r["llm_units"] - r["rule_fallbacks"] for r in written]},
                    stacked=True, y_title="content units")))
    series: dict[str, tuple[list, list]] = {}
    for row in written:
        x, y = series.setdefault(row["campaign_id"], ([], []))
        x.append(row["activity_date"])
        y.append(row["avg_quality_score"])
    dashboard.panels.append(Panel("Quality score", "Mean quality score of the content written each day (0 to 1).",
                                  charts.lines(series, "quality score")))
    dashboard.panels.append(Panel(
        "Guardrails and personal data", "Drafts with personal data redacted, and units held for a person's review.",
        charts.bars(labels, {"PII redactions": [r["pii_redactions"] for r in written],
                             "in review": [r["units_in_review"] for r in written]}, y_title="content units")))
    dashboard.panels.append(Panel(
        "LLM requests", "Requests per day by outcome; the 95th percentile latency is in the hover.",
        charts.bars([c["called_date"] for c in calls], {
            "ok": [c["llm_calls"] - c["guardrail_rejections"] - c["api_errors"] for c in calls],
            "refused by the guardrails": [c["guardrail_rejections"] for c in calls],
            "endpoint errors": [c["api_errors"] for c in calls]}, stacked=True, y_title="requests")
        if calls else None,
        empty_because="No LLM requests: content is written by the rules. Set OPENAI_API_KEY to write it with an LLM."))
    return dashboard


# --- cost ----------------------------------------------------------------------------------------------

def cost(conn: Connection, daily_budget_usd: float) -> Dashboard:
    rows = read(conn, "marts.metrics_content_daily", ("activity_date", "campaign_id", "messages_rendered",
                                                       "cost_usd"), "ORDER BY activity_date")
    per_day = charts.grouped_sums(rows, ("activity_date",), ("cost_usd", "messages_rendered"))
    tokens = charts.grouped_sums(read(conn, "marts.metrics_llm_daily", ("called_date", "input_tokens",
                                                                         "output_tokens")),
                                 ("called_date",), ("input_tokens", "output_tokens"))
    spent = sum(s["cost_usd"] for s in per_day.values())
    rendered = sum(s["messages_rendered"] for s in per_day.values())
    latest = per_day[max(per_day)]["cost_usd"] if per_day else 0.0
    dashboard = Dashboard("cost", "Cost", "LLM spend against the daily budget")
    dashboard.figures = {"spent (all days)": f"${spent:,.4f}", "latest day": f"${latest:,.4f}",
                         "daily budget": f"${daily_budget_usd:,.2f}",
                         "per 1,000 emails": f"${(charts.ratio(spent, rendered) or 0) * 1000:,.4f}"}
    dashboard.numbers = {"spent_usd": round(spent, 6), "latest_day_usd": round(latest, 6),
                         "cost_per_email_usd": round(charts.ratio(spent, rendered) or 0, 8)}
    if not per_day:
        dashboard.panels.append(Panel("Daily spend", empty_because="No content written yet."))
        return dashboard
    days = [day for (day,) in per_day]
    figure = charts.bars(days, {"spend (USD)": [per_day[(d,)]["cost_usd"] for d in days]}, y_title="USD")
    figure.add_scatter(name="daily budget", x=days, y=[daily_budget_usd] * len(days), mode="lines",
                       line=dict(dash="dash", color="#c0392b"))
    dashboard.panels.append(Panel("Daily LLM spend against the budget", "The content step stops calling the LLM "
                                  "for the day at the budget (MAILROOM_LLM_DAILY_BUDGET_USD) and falls back to the "
                                  "rules.", figure))
    series: dict[str, tuple[list, list]] = {}
    for row in rows:
        if row["messages_rendered"]:
            x, y = series.setdefault(row["campaign_id"], ([], []))
            x.append(row["activity_date"])
            y.append(row["cost_usd"] / row["messages_rendered"] * 1000)
    dashboard.panels.append(Panel("Cost per 1,000 emails", "LLM spend of the day over the messages rendered that day.",
                                  charts.lines(series, "USD per 1,000 emails") if series else None,
                                  empty_because="No messages rendered yet."))
    dashboard.panels.append(Panel(
        "Tokens per day", "", charts.bars([d for (d,) in tokens], {
            "input": [s["input_tokens"] for s in tokens.values()],
            "output": [s["output_tokens"] for s in tokens.values()]}, stacked=True, y_title="tokens")
        if tokens else None, empty_because="No LLM requests: content is written by the rules, at no cost."))
    return dashboard


# --- compliance ----------------------------------------------------------------------------------------

def compliance(conn: Connection) -> Dashboard:
    suppressions = read(conn, "marts.metrics_suppressions_daily",
                        ("activity_date", "stage", "reason", "is_consent", "customers"), "ORDER BY activity_date")
    opt_outs = read(conn, "marts.metrics_opt_outs_daily", ("opted_out_date", "source", "opt_outs"),
                    "ORDER BY opted_out_date")
    messages = conn.scalar("SELECT count(*) FROM ops.campaign_messages") if conn.table_exists(
        "ops", "campaign_messages") else 0
    audience = sum(row["customers"] for row in suppressions if row["stage"] == "audience")
    consent = sum(row["customers"] for row in suppressions if row["is_consent"])
    considered = audience + int(messages or 0)
    dashboard = Dashboard("compliance", "Compliance", "Who was not mailed and why; consent and opt-outs")
    dashboard.figures = {"suppressed (audience)": f"{audience:,}",
                         "stopped before sending":
                             f"{sum(r['customers'] for r in suppressions if r['stage'] == 'pre_send'):,}",
                         "consent rejections": f"{consent:,}",
                         "consent rejection rate": _percent(charts.ratio(consent, considered)),
                         "opt-outs": f"{sum(row['opt_outs'] for row in opt_outs):,}"}
    dashboard.numbers = {"suppressed": audience, "consent_rejections": consent,
                         "opt_outs": sum(row["opt_outs"] for row in opt_outs)}
    if (rate := charts.ratio(consent, considered)) is not None:
        dashboard.numbers["consent_rejection_rate"] = round(rate, 4)
    by_reason = charts.grouped_sums(suppressions, ("stage", "reason"), ("customers",))
    reasons = sorted({reason for _, reason in by_reason}, key=lambda r: -sum(
        s["customers"] for (_, reason), s in by_reason.items() if reason == r))
    dashboard.panels.append(Panel(
        "Suppressions by reason", "audience: left out of a campaign's run; pre_send: stopped by the last look before "
        "sending (consent withdrawn, a bounce, the frequency cap...).",
        charts.bars(reasons, {stage: [by_reason.get((stage, r), {"customers": 0})["customers"] for r in reasons]
                              for stage in ("audience", "pre_send")}, stacked=True, horizontal=True,
                    y_title="customers") if suppressions else None,
        empty_because="No campaign has run yet."))
    consent_days = charts.grouped_sums([r for r in suppressions if r["is_consent"]], ("activity_date", "reason"),
                                       ("customers",))
    x, y, z = charts.pivot([{"day": d, "reason": r, "customers": s["customers"]}
                            for (d, r), s in consent_days.items()], "day", "reason", "customers")
    dashboard.panels.append(Panel("Consent rejections per day", "Customers not mailed for a consent reason "
                                  "(no opt-in where one is required, CASL consent expired, opted out).",
                                  charts.bars(x, {reason: row for reason, row in zip(y, z)}, stacked=True,
                                              y_title="customers") if consent_days else None,
                                  empty_because="No consent rejections."))
    by_source = charts.grouped_sums(opt_outs, ("opted_out_date", "source"), ("opt_outs",))
    x, y, z = charts.pivot([{"day": d, "source": s, "n": v["opt_outs"]} for (d, s), v in by_source.items()],
                           "day", "source", "n")
    dashboard.panels.append(Panel("Opt-outs by source", "Consent withdrawn per capture source, the provider's "
                                  "unsubscribes and spam complaints.",
                                  charts.bars(x, {source: row for source, row in zip(y, z)}, stacked=True,
                                              y_title="opt-outs") if opt_outs else None,
                                  empty_because="No opt-outs yet."))
    return dashboard


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"

