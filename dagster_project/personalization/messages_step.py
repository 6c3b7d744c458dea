"""Render one message per eligible customer of a campaign run into ops.campaign_messages.

Every candidate is accounted for: a message, the holdout (ops.variant_assignments), the remainder
waiting for an experiment's winner, or a row in ops.campaign_suppressions with the reason (ineligible
per send_eligibility, left out by the campaign's propensity filter, cooldown, no content). Every
eligible candidate's arm and phase in the run is recorded once in ops.campaign_assignments: the
experiment units the readouts count.
Re-running the same run renders nothing twice: a customer who already has a message for the run
keeps it, and a unique key on (campaign, run, customer) refuses a second one.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from dagster_project.experiments.allocation import bandit_variants
from dagster_project.experiments.decisions import ROLLOUT, stored_decision
from dagster_project.personalization.campaigns import Campaign
from dagster_project.personalization.content import ContentUnit
from dagster_project.personalization.ops_tables import bulk_insert, ensure_ops_tables, unit_from_row
from dagster_project.personalization.render import MessageRenderer
from dagster_project.personalization.send_time import send_at
from dagster_project.personalization.variants import (
    HOLDOUT,
    PHASE_FULL,
    PHASE_HOLDOUT,
    PHASE_REMAINDER,
    PHASE_TEST,
    Variant,
    assign_variant,
    in_test_fraction,
)
from dagster_project.predictive.audience import LOW_PROPENSITY, FilterOutcome, low_propensity, read_scores
from dagster_project.predictive.send_time_plan import PlannedSend, SendTimePlanner
from dagster_project.privacy.erased import ERASED, erased_customers
from dagster_project.settings import load_quiet_hours
from dagster_project.timezones import customer_zone
from dagster_project.warehouse import Warehouse

RENDER = "render"
AWAITING_WINNER = "awaiting_winner"


@dataclass
class MessagesReport:
    run_key: str
    candidates: int = 0
    audience: int = 0  # eligible candidates
    holdout: int = 0
    rendered: int = 0
    already_rendered: int = 0
    suppressed: Counter = field(default_factory=Counter)  # reason -> customers
    by_variant: Counter = field(default_factory=Counter)
    new_assignments: int = 0
    awaiting_winner: int = 0  # the remainder of a roll-out experiment, until the decision
    winner: str | None = None  # the variant the remainder gets, once decided
    variant_weights: dict[str, float] | None = None  # a bandit run's shares
    decide_by: datetime | None = None  # a waiting remainder's decision deadline (UTC)
    send_hours: Counter = field(default_factory=Counter)  # (send-time arm or "all", local hour) -> messages
    send_time_sources: Counter = field(default_factory=Counter)  # the optimized arm's evidence -> messages
    audience_filter: FilterOutcome | None = None  # meta.campaign.audience: who it left out of this pass


@dataclass
class RunState:
    """What the warehouse already knows about this campaign and run."""

    assignments: dict[str, str]  # customer -> variant or holdout, still valid for the campaign
    stale: set[str]  # customers whose stored assignment no longer fits (variant removed, new salt)
    rendered: set[str]  # customers with a message in this run
    cooling: set[str]  # customers messaged within the cooldown
    content: dict[tuple[str, str], tuple[str, ContentUnit]]  # (segment, variant) -> (key, unit)
    products: dict[str, list[dict]]
    run_units: dict[str, tuple[str | None, str]]  # customer -> (arm, phase) already recorded for this run
    winner: str | None  # the roll-out decision for this run, if made
    variants: list[Variant]  # the variant shares for this run (a bandit's, or the configured ones)


def render_campaign_messages(
    warehouse: Warehouse, campaign: Campaign, renderer: MessageRenderer, reference_utc: datetime,
    run_key: str | None = None, remainder_only: bool = False,
) -> MessagesReport:
    """Render the run `run_key` (default: the day of `reference_utc`); send times are planned from
    `reference_utc`. With `remainder_only`, only the waiting remainder of a roll-out experiment is
    rendered (with the winner decided for the run), nobody new enters the run."""
    run_key = run_key or reference_utc.date().isoformat()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    report = MessagesReport(run_key=run_key)
    with warehouse.connect() as conn:
        ensure_ops_tables(conn)
        candidates = conn.fetchall(
            f"select customer_id, email, first_name, timezone, segment_key, best_send_hour, is_eligible, "
            f"ineligible_reason from {campaign.relation} order by customer_id"
        )
        state = _run_state(conn, campaign, run_key, reference_utc, now)
        erased = erased_customers(conn, [(row[0], row[1]) for row in candidates if row[6]])
        if campaign.audience:
            report.audience_filter = low_propensity(
                campaign.audience, [row[0] for row in candidates if row[6] and row[0] not in state.run_units],
                read_scores(conn, campaign.audience, campaign.campaign_id))
        planner = None
        if campaign.send_time.mode != "best_hour":
            planner = SendTimePlanner(conn, campaign.send_time, campaign.salt, run_key, reference_utc,
                                      campaign.send_window, load_quiet_hours(), campaign.relation)

    def plan(customer_id: str, tz_name: str | None, segment_key: str | None, best_hour) -> PlannedSend:
        planned = planner.plan(customer_id, tz_name, segment_key) if planner else None
        return planned or PlannedSend(send_at(reference_utc, tz_name, best_hour, campaign.send_window), None, None)

    report.winner = state.winner
    if campaign.experiment and campaign.experiment.method == "bandit":
        report.variant_weights = {v.variant_id: v.weight for v in state.variants}

    assignments, units, messages, suppressions = [], [], [], []
    report.candidates = len(candidates)
    for customer_id, email, first_name, tz_name, segment_key, best_hour, eligible, reason in candidates:
        if remainder_only and state.run_units.get(customer_id, (None, None))[1] != PHASE_REMAINDER:
            continue
        if customer_id in erased:  # brought back by an import after their erasure (privacy/erased.py)
            eligible, reason = False, ERASED
        elif report.audience_filter and customer_id in report.audience_filter.excluded:
            eligible, reason = False, LOW_PROPENSITY  # before assignment: the arms split the narrowed audience
        variant, planned = None, None
        if eligible:
            report.audience += 1
            sticky = state.assignments.get(customer_id)
            if sticky is None:
                sticky = assign_variant(campaign.salt, customer_id, campaign.weighted_variants, campaign.holdout_share)
                assignments.append((campaign.campaign_id, customer_id, sticky, campaign.salt, now))
            if customer_id in state.run_units:
                variant, _ = state.run_units[customer_id]
                variant = variant or state.winner
            else:
                variant, phase = _run_arm(campaign, run_key, customer_id, sticky, state)
                planned = plan(customer_id, tz_name, segment_key, best_hour)
                timed = variant != HOLDOUT  # the send-time arms split the customers who get a message
                units.append((campaign.campaign_id, run_key, customer_id, variant, phase, planned.send_at,
                              reference_utc, now, planned.arm if timed else None, planned.source if timed else None))
        outcome = _outcome(customer_id, segment_key, eligible, reason, variant, state)
        if outcome == HOLDOUT:
            report.holdout += 1
        elif outcome == AWAITING_WINNER:
            report.awaiting_winner += 1
        elif outcome == "already_rendered":
            report.already_rendered += 1
        elif outcome != RENDER:
            report.suppressed[outcome] += 1
            suppressions.append((campaign.campaign_id, run_key, customer_id, outcome, now))
        else:
            content_key, words = state.content[(segment_key, variant)]
            message = renderer.render(
                template=campaign.template, campaign_id=campaign.campaign_id, run_key=run_key,
                customer_id=customer_id, email=email, first_name=first_name, content=words,
                products=state.products.get(customer_id, ()),
            )
            planned = planned or plan(customer_id, tz_name, segment_key, best_hour)  # planned above on entry
            messages.append((
                message.message_id, campaign.campaign_id, run_key, customer_id, variant, segment_key, content_key,
                email, message.subject, message.preheader, message.html, message.text, json.dumps(message.headers),
                planned.send_at, now, None, planned.arm, planned.source,
            ))
            report.by_variant[variant] += 1
            _count_send_time(report, planned, tz_name)

    with warehouse.connect() as conn:
        # Assignments that no longer fit the campaign (variant removed, salt changed) were redrawn.
        for customer_id in state.stale:
            conn.execute("delete from ops.variant_assignments where campaign_id = ? and customer_id = ?",
                         [campaign.campaign_id, customer_id])
        if not remainder_only:  # a roll-out keeps the test run's record of who was suppressed and why
            conn.execute("delete from ops.campaign_suppressions where campaign_id = ? and run_key = ?",
                         [campaign.campaign_id, run_key])
    with warehouse.connect() as conn:
        report.new_assignments = bulk_insert(conn, "ops.variant_assignments", assignments)
        bulk_insert(conn, "ops.campaign_assignments", units)
        if state.winner:
            # The whole remainder is the winner's from the decision on (intent to treat), whether or
            # not each of them could still be sent to.
            conn.execute("update ops.campaign_assignments set arm = ? where campaign_id = ? and run_key = ? "
                         "and phase = ? and arm is null",
                         [state.winner, campaign.campaign_id, run_key, PHASE_REMAINDER])
        bulk_insert(conn, "ops.campaign_suppressions", suppressions)
        report.rendered = bulk_insert(conn, "ops.campaign_messages", messages)
        if report.awaiting_winner:
            started = conn.scalar("select min(assigned_at) from ops.campaign_assignments where campaign_id = ? "
                                  "and run_key = ?", [campaign.campaign_id, run_key])
            report.decide_by = started + timedelta(hours=campaign.experiment.decide_within_hours)
    return report


def _count_send_time(report: MessagesReport, planned: PlannedSend, tz_name: str | None) -> None:
    local_hour = planned.send_at.replace(tzinfo=timezone.utc).astimezone(customer_zone(tz_name)).hour
    report.send_hours[("all", local_hour)] += 1
    if planned.arm:
        report.send_hours[(planned.arm, local_hour)] += 1
    if planned.source:
        report.send_time_sources[planned.source] += 1


def _run_arm(campaign: Campaign, run_key: str, customer_id: str, sticky: str,
             state: RunState) -> tuple[str | None, str]:
    """(arm, phase) of a customer entering this run: the holdout is sticky across runs; the variant
    is the sticky one, or for a bandit drawn from this run's shares; in a roll-out experiment only
    the test fraction gets it now and the remainder waits for the winner (arm None)."""
    if sticky == HOLDOUT:
        return HOLDOUT, PHASE_HOLDOUT
    experiment = campaign.experiment
    if experiment is None:
        return sticky, PHASE_FULL
    if experiment.method == "bandit":
        # The holdout already left; the variants share the rest by this run's weights, drawn afresh
        # each run (a run salt), reproducible from the weights recorded for the run.
        return assign_variant(f"{campaign.salt}|{run_key}", customer_id, state.variants, 0.0), PHASE_FULL
    if in_test_fraction(campaign.salt, run_key, customer_id, experiment.test_fraction):
        return sticky, PHASE_TEST
    return state.winner, PHASE_REMAINDER


def _outcome(customer_id, segment_key, eligible, reason, variant, state: RunState) -> str:
    """RENDER, HOLDOUT, AWAITING_WINNER, "already_rendered", or the suppression reason."""
    if not eligible:
        return reason or "ineligible"
    if variant == HOLDOUT:
        return HOLDOUT
    if customer_id in state.rendered:
        return "already_rendered"
    if variant is None:
        return AWAITING_WINNER
    if customer_id in state.cooling:
        return "cooldown"
    if (segment_key, variant) not in state.content:
        return "no_content_unit"
    return RENDER


def _run_state(conn, campaign: Campaign, run_key: str, reference_utc: datetime, now: datetime) -> RunState:
    valid = {v.variant_id for v in campaign.variants} | {HOLDOUT}
    assignments, stale = {}, set()
    for customer, variant, salt in conn.fetchall(
        "select customer_id, variant_id, salt from ops.variant_assignments where campaign_id = ?",
        [campaign.campaign_id],
    ):
        if variant in valid and salt == campaign.salt:
            assignments[customer] = variant
        else:
            stale.add(customer)
    rendered = {row[0] for row in conn.fetchall(
        "select customer_id from ops.campaign_messages where campaign_id = ? and run_key = ?",
        [campaign.campaign_id, run_key],
    )}
    run_units = {customer: (arm, phase) for customer, arm, phase in conn.fetchall(
        "select customer_id, arm, phase from ops.campaign_assignments where campaign_id = ? and run_key = ?",
        [campaign.campaign_id, run_key],
    )}
    winner = None
    if campaign.experiment and campaign.experiment.rolls_out:
        decision = stored_decision(conn, campaign.campaign_id, run_key, ROLLOUT)
        winner = decision.variant_id if decision else None
    variants = campaign.weighted_variants
    if campaign.experiment and campaign.experiment.method == "bandit":
        variants = bandit_variants(conn, campaign, run_key, now)
    return RunState(assignments, stale, rendered, _in_cooldown(conn, campaign, run_key, reference_utc),
                    current_content(conn, campaign.campaign_id), _products(conn, campaign), run_units, winner,
                    variants)


def _in_cooldown(conn, campaign: Campaign, run_key: str, reference_utc: datetime) -> set[str]:
    """Customers the campaign messaged in an earlier run within its cooldown: a run of those days, or
    a message planned for them (a roll-out remainder goes out days after its run started)."""
    if not campaign.cooldown_days:
        return set()
    since = (reference_utc - timedelta(days=campaign.cooldown_days)).date()
    return {row[0] for row in conn.fetchall(
        "select distinct customer_id from ops.campaign_messages where campaign_id = ? and run_key <> ? "
        "and (run_key >= ? or send_at >= ?)",
        [campaign.campaign_id, run_key, since.isoformat(), datetime.combine(since, datetime.min.time())],
    )}


def current_content(conn, campaign_id: str) -> dict[tuple[str, str], tuple[str, ContentUnit]]:
    rows = conn.fetchall(
        "select current.segment_key, current.variant_id, content.content_key, content.subject, content.preheader, "
        "content.headline, content.body_paragraphs, content.call_to_action "
        "from ops.campaign_content as current "
        "join ops.content as content on content.content_key = current.content_key "
        "where current.campaign_id = ?",
        [campaign_id],
    )
    return {(segment, variant): (key, unit_from_row(row)) for segment, variant, key, *row in rows}


def _products(conn, campaign: Campaign) -> dict[str, list[dict]]:
    if not campaign.product_source:
        return {}
    relation, rank = campaign.product_source
    per_customer: dict[str, list[dict]] = defaultdict(list)
    for customer_id, product_id, name, category, price, currency, url in conn.fetchall(
        f"select customer_id, product_id, product_name, product_category, price, currency, product_url "
        f"from {relation} where {rank} <= ? order by customer_id, {rank}",
        [campaign.products_per_message],
    ):
        per_customer[customer_id].append({
            "product_id": product_id, "name": name, "category": category,
            "price": float(price) if price is not None else None, "currency": currency,
            "url": url,  # checked by the renderer: only an http(s) link becomes an href
        })
    return per_customer
