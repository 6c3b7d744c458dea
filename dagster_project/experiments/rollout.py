"""Winner roll-out for batch campaigns with a roll-out experiment (meta.campaign.experiment).

    campaign run renders        the test fraction gets the variants; the remainder is recorded
                                (ops.campaign_assignments, arm NULL) and waits
    every look (the sensor)     readout of the run's test on the experiment's metric -> decide():
        waiting                 not enough units, no significant difference yet, or a sample ratio
                                mismatch (which blocks any decision, the deadline's too)
        decided                 a winner (significant after correction, minimum units reached) or, at
                                the deadline, the default variant; stored in ops.experiment_decisions
    decided                     the remainder is rendered with that variant and handed to the same
                                send path (gates, consent re-check, ledger, exactly once)

Sequential method: looked at as often as outcomes arrive, against the always-valid threshold, which
keeps false winners rare however often it looks (README, "Why you may look every day").
Fixed method: one look, at the deadline (the fixed horizon); a look before it decides nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from dagster_project.experiments.decisions import ROLLOUT, Decision, record_decision, stored_decision
from dagster_project.experiments.readout import Readout
from dagster_project.experiments.spec import readout_options
from dagster_project.experiments.warehouse_readout import metric_specs, variant_readout
from dagster_project.personalization.campaigns import Campaign
from dagster_project.personalization.messages_step import render_campaign_messages
from dagster_project.warehouse import Connection, Warehouse


@dataclass(frozen=True)
class Look:
    """What one look at a waiting run saw: a decision, or why there is none yet."""

    run_key: str
    deadline: datetime
    readout: Readout | None
    decision: Decision | None
    waiting_reason: str | None
    rendered: int = 0  # remainder messages rendered after the decision


def decide(campaign: Campaign, run_key: str, readout: Readout | None, deadline: datetime,
           now: datetime) -> tuple[Decision | None, str | None]:
    """(decision, None) when the rule fires, else (None, why not). Pure: the caller stores it."""
    experiment = campaign.experiment
    assert experiment is not None and experiment.rolls_out
    past_deadline = now >= deadline

    def decision(variant: str, rule: str, reason: str) -> Decision:
        evidence = {"deadline": deadline.isoformat(), "method": experiment.method, "metric": experiment.metric,
                    "min_units_per_arm": experiment.min_units_per_arm,
                    "readout": readout.to_dict() if readout else None}
        return Decision(campaign.campaign_id, run_key, ROLLOUT, variant, rule, reason, now, evidence)

    def at_deadline(why: str) -> tuple[Decision | None, str | None]:
        if past_deadline:
            return decision(experiment.default_variant, "deadline",
                            f"no winner by the deadline {deadline:%Y-%m-%d %H:%M} UTC ({why}); the remainder gets "
                            f"{experiment.default_variant}"), None
        return None, f"{why}; deciding by {deadline:%Y-%m-%d %H:%M} UTC"

    if readout is None:
        return at_deadline("no units with outcomes in the test yet")
    if readout.has_srm:
        # A split that is not the configured one means the assignment or the delivery is broken: no
        # number from this test can be trusted, not even enough to fall back on at the deadline.
        return None, (f"sample ratio mismatch (p = {readout.srm_p_value:.2g}): the arms are not split as configured; "
                      "no decision until it is explained")
    short = [a.arm for a in readout.arms if a.units < experiment.min_units_per_arm]
    if short:
        return at_deadline(f"fewer than {experiment.min_units_per_arm:,} units in {', '.join(short)}")
    if experiment.method == "fixed" and not past_deadline:
        return None, f"fixed horizon: the one look is at the deadline {deadline:%Y-%m-%d %H:%M} UTC"
    rows = [r for r in readout.rows if r.metric == experiment.metric]
    better = [r for r in rows if r.is_significant and r.difference > 0]
    if better:
        # With several significantly better variants, the best observed one: they are each tested
        # against the control, not against each other.
        best = max(better, key=lambda r: r.variant_value)
        return decision(best.variant, "significant",
                        f"{best.variant} beats {readout.control} on {experiment.metric}: {best.variant_value:.4g} vs "
                        f"{best.control_value:.4g}, adjusted p = {best.adjusted_p_value:.2g}"), None
    if rows and all(r.is_significant and r.difference < 0 for r in rows):
        return decision(readout.control, "significant",
                        f"{readout.control} beats every other variant on {experiment.metric} "
                        f"(largest adjusted p = {max(r.adjusted_p_value for r in rows):.2g})"), None
    return at_deadline(f"no significant difference on {experiment.metric} yet")


def waiting_runs(conn: Connection, campaign_id: str) -> list[tuple[str, datetime]]:
    """(run_key, when the run started) of every run whose remainder still waits, oldest first."""
    if not conn.table_exists("ops", "campaign_assignments"):
        return []
    return [(run_key, started) for run_key, started in conn.fetchall(
        "SELECT run_key, min(assigned_at) FROM ops.campaign_assignments WHERE campaign_id = ? "
        "AND run_key IN (SELECT run_key FROM ops.campaign_assignments WHERE campaign_id = ? "
        "AND phase = 'remainder' AND arm IS NULL) GROUP BY run_key ORDER BY run_key",
        [campaign_id, campaign_id])]


def look(conn: Connection, campaign: Campaign, run_key: str, started_at: datetime, now: datetime) -> Look:
    """Evaluate the decision rule for one waiting run, storing the decision when it fires."""
    experiment = campaign.experiment
    deadline = started_at + timedelta(hours=experiment.decide_within_hours)
    stored = stored_decision(conn, campaign.campaign_id, run_key, ROLLOUT)
    if stored is not None:  # decided by an earlier look (or by hand): render what it said
        return Look(run_key, deadline, None, stored, None)
    readout = None
    if conn.table_exists("marts", "experiment_units"):
        readout = variant_readout(conn, campaign, run_key, readout_options(experiment),
                                  metric_specs([experiment.metric]))
    decision, waiting = decide(campaign, run_key, readout, deadline, now)
    if decision is not None:
        decision = record_decision(conn, decision)  # another look may have decided first: keep that one
    return Look(run_key, deadline, readout, decision, waiting)


def decide_manually(warehouse: Warehouse, campaign: Campaign, run_key: str, variant_id: str, reason: str,
                    now: datetime) -> Decision:
    """An operator's decision for a waiting run (after a sample ratio mismatch was explained, or to end
    a test early on purpose); the next roll-out renders the remainder with it."""
    if not (campaign.experiment and campaign.experiment.rolls_out):
        raise ValueError(f"campaign {campaign.campaign_id} has no roll-out experiment (meta.campaign.experiment "
                         "with method sequential or fixed); there is no remainder to decide for")
    variants = [v.variant_id for v in campaign.variants]
    if variant_id not in variants:
        raise ValueError(f"variant {variant_id!r} is not one of campaign {campaign.campaign_id}'s: "
                         f"{', '.join(variants)}")
    if not reason.strip():
        raise ValueError("say why (--reason): the decision is kept with it for whoever reads the readout later")
    with warehouse.connect() as conn:
        waiting = [key for key, _ in waiting_runs(conn, campaign.campaign_id)]
        if run_key not in waiting:
            raise ValueError(f"run {run_key} of {campaign.campaign_id} has no remainder waiting for a winner "
                             f"(waiting: {', '.join(waiting) or 'none'})")
        stored = stored_decision(conn, campaign.campaign_id, run_key, ROLLOUT)
        if stored is not None:
            raise ValueError(f"run {run_key} was already decided: {stored.variant_id} ({stored.rule}, "
                             f"{stored.decided_at:%Y-%m-%d %H:%M}); the next roll-out renders it")
        return record_decision(conn, Decision(campaign.campaign_id, run_key, ROLLOUT, variant_id, "manual",
                                              reason.strip(), now, {"by": "operator"}))


def roll_out(warehouse: Warehouse, campaign: Campaign, renderer, now: datetime) -> list[Look]:
    """Look at every waiting run of the campaign; render the remainder of each decided one.

    Roll-outs of one campaign take turns on PostgreSQL (a session advisory lock, waited for): a second
    one started at the same moment finds the runs decided and rendered, and does nothing. On DuckDB a
    second process cannot open the warehouse while the first works, so it fails and can be re-run."""
    with _rollout_turn(warehouse, campaign.campaign_id):
        with warehouse.connect() as conn:
            looks = [look(conn, campaign, run_key, started, now)
                     for run_key, started in waiting_runs(conn, campaign.campaign_id)]
        done = []
        for seen in looks:
            if seen.decision is not None:
                report = render_campaign_messages(warehouse, campaign, renderer, now, run_key=seen.run_key,
                                                  remainder_only=True)
                seen = Look(seen.run_key, seen.deadline, seen.readout, seen.decision, None, report.rendered)
            done.append(seen)
    return done


@contextmanager
def _rollout_turn(warehouse: Warehouse, campaign_id: str) -> Iterator[None]:
    if warehouse.kind != "postgres":
        yield
        return
    key = int.from_bytes(hashlib.sha256(f"mailroom.rollout:{campaign_id}".encode()).digest()[:8], "big", signed=True)
    with warehouse.session() as guard:  # the lock lives as long as this session
        guard.execute("SELECT pg_advisory_lock(?)", [key])
        guard.commit()
        try:
            yield
        finally:
            guard.execute("SELECT pg_advisory_unlock(?)", [key])
