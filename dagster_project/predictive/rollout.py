"""The propensity models' roll-out: a version that passed the offline gate serves a share of customers as a
canary, and replaces the serving version only when it does not do worse online; one that does worse is
rolled back (the rules and their numbers: predictive/rollout_rules.py).

Every change of status is recorded in ops.model_decisions (append-only) with its rule, reason and the
numbers it saw. A decision is made once: the status change is conditional (UPDATE ... WHERE status =
the expected one) and the record has a unique key, so two runs deciding at the same moment leave one
change and one record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from dagster_project.predictive import registry
from dagster_project.predictive.propensity import MODELS
from dagster_project.predictive.rollout_rules import (
    PROMOTE,
    ROLL_BACK,
    ArmMetric,
    Verdict,
    WindowMetric,
    pooled,
    verdict,
)
from dagster_project.predictive.scoring import CANARY_SHARE
from dagster_project.warehouse import Connection, Warehouse, columns, ensure_table

DECISIONS = "ops.model_decisions"
DECISION_COLUMNS = columns(
    "model_name:VARCHAR version:INTEGER kind:VARCHAR rule:VARCHAR reason:VARCHAR evidence_json:VARCHAR "
    "decided_at:TIMESTAMP"
)
START_CANARY, SUPERSEDE = "start_canary", "supersede"
METRICS = "marts.propensity_online_metrics"


@dataclass(frozen=True)
class ModelDecision:
    model_name: str
    version: int
    kind: str  # start_canary, promote, rollback, supersede
    rule: str
    reason: str
    evidence: dict
    decided_at: datetime


@dataclass
class RolloutOutcome:
    model_name: str
    serving: int | None = None  # the serving version after this run
    canary: int | None = None  # the version on trial after this run
    verdict: Verdict | None = None  # on the canary that was on trial when the run started
    evidence: dict = field(default_factory=dict)
    decisions: list[ModelDecision] = field(default_factory=list)  # made by this run


def run_rollout(warehouse: Warehouse, now: datetime) -> list[RolloutOutcome]:
    outcomes = []
    for model_name in MODELS:
        outcome = RolloutOutcome(model_name)
        with warehouse.connect() as conn:
            canary, serving = registry.canary(conn, model_name), registry.serving(conn, model_name)
            if canary is not None and serving is not None:
                outcome.evidence = _evidence(conn, model_name, canary.version, serving.version)
                outcome.verdict = verdict(_arm(outcome.evidence["canary"]), _arm(outcome.evidence["serving"]))
                evidence = {"verdict": outcome.verdict.reason, **outcome.evidence}
                if outcome.verdict.action == PROMOTE:
                    _decide(conn, outcome, canary, registry.CANARY, registry.SERVING, PROMOTE,
                            outcome.verdict.rule, outcome.verdict.reason, evidence, now,
                            then_retire=serving)
                elif outcome.verdict.action == ROLL_BACK:
                    _decide(conn, outcome, canary, registry.CANARY, registry.ROLLED_BACK, ROLL_BACK,
                            outcome.verdict.rule, outcome.verdict.reason, evidence, now)
        with warehouse.connect() as conn:
            _start_newest_candidate(conn, outcome, now)
            serving, canary = registry.serving(conn, model_name), registry.canary(conn, model_name)
            outcome.serving = serving.version if serving else None
            outcome.canary = canary.version if canary else None
        outcomes.append(outcome)
    return outcomes


def _start_newest_candidate(conn: Connection, outcome: RolloutOutcome, now: datetime) -> None:
    """With no canary on trial, the newest candidate becomes one; older candidates are superseded (a newer
    version trained on newer data is the one worth a trial)."""
    model_name = outcome.model_name
    if registry.canary(conn, model_name) is not None or registry.serving(conn, model_name) is None:
        return  # (the first passing version serves at registration: there is nothing to trial it against)
    candidates = [v for v in registry.versions(conn, model_name) if v.status == registry.CANDIDATE]
    for older in candidates[1:]:
        _decide(conn, outcome, older, registry.CANDIDATE, registry.RETIRED, SUPERSEDE, "newer_candidate",
                f"version {candidates[0].version} is newer and takes the trial", {}, now)
    if candidates:
        newest = candidates[0]
        _decide(conn, outcome, newest, registry.CANDIDATE, registry.CANARY, START_CANARY, "passed_offline_gate",
                f"serves {CANARY_SHARE:.0%} of customers from the next scoring, against the serving version",
                {"offline": {"model_auc": newest.metrics["model"]["roc_auc"],
                             "baseline_auc": newest.metrics["baseline"]["roc_auc"]}}, now)


def _decide(conn: Connection, outcome: RolloutOutcome, version: registry.ModelVersion, from_status: str,
            to_status: str, kind: str, rule: str, reason: str, evidence: dict, now: datetime,
            then_retire: registry.ModelVersion | None = None) -> None:
    if not registry.change_status(conn, version.model_name, version.version, from_status, to_status):
        return  # another run decided first
    if then_retire is not None:
        registry.change_status(conn, then_retire.model_name, then_retire.version, registry.SERVING, registry.RETIRED)
    decision = ModelDecision(version.model_name, version.version, kind, rule, reason, evidence, now)
    if record_decision(conn, decision):
        outcome.decisions.append(decision)


def _evidence(conn: Connection, model_name: str, canary: int, serving: int) -> dict:
    """Each version on the customers it served, and both on everyone (paired), over the closed windows in
    which the canary served."""
    if not conn.table_exists("marts", "propensity_online_metrics"):
        rows = []
    else:
        rows = conn.fetchall(
            f"SELECT model_version, population, customers, positives, auc FROM {METRICS} "
            "WHERE model_name = ? AND model_version IN (?, ?) AND cutoff_at IN (SELECT cutoff_at FROM "
            f"{METRICS} WHERE model_name = ? AND model_version = ? AND population = 'served') "
            "ORDER BY cutoff_at", [model_name, canary, serving, model_name, canary])
    windows: dict[tuple[int, str], list[WindowMetric]] = {}
    for version, population, customers, positives, auc in rows:
        windows.setdefault((int(version), population), []).append(
            WindowMetric(int(customers), int(positives), None if auc is None else float(auc)))

    def arm(version: int, population: str) -> dict:
        return {"version": version, **pooled(windows.get((version, population), [])).as_evidence()}

    return {"canary": arm(canary, "served"), "serving": arm(serving, "served"),
            "paired_canary": arm(canary, "all"), "paired_serving": arm(serving, "all")}


def _arm(evidence: dict) -> ArmMetric:
    return ArmMetric(evidence["windows"], evidence["customers"], evidence["positives"], evidence["auc"])


def ensure_decisions_table(conn: Connection) -> None:
    ensure_table(conn, DECISIONS, DECISION_COLUMNS, [("model_name", "version", "kind")], registry.DDL_LOCK)


def record_decision(conn: Connection, decision: ModelDecision) -> bool:
    """Append the decision; False when this version already has one of this kind."""
    ensure_decisions_table(conn)
    return conn.execute(
        f"INSERT INTO {DECISIONS} ({', '.join(c.name for c in DECISION_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        [decision.model_name, decision.version, decision.kind, decision.rule, decision.reason,
         json.dumps(decision.evidence, sort_keys=True, allow_nan=False), decision.decided_at]) == 1


def decisions(conn: Connection, model_name: str | None = None) -> list[ModelDecision]:
    """Every decision, oldest first."""
    if not conn.table_exists("ops", "model_decisions"):
        return []
    where, params = ("WHERE model_name = ?", [model_name]) if model_name else ("", [])
    return [ModelDecision(name, int(version), kind, rule, reason, json.loads(evidence), decided_at)
            for name, version, kind, rule, reason, evidence, decided_at in conn.fetchall(
                f"SELECT {', '.join(c.name for c in DECISION_COLUMNS)} FROM {DECISIONS} {where} "
                "ORDER BY decided_at, model_name, version, kind", params)]
