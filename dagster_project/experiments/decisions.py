"""ops.experiment_decisions: every decision an experiment made, with the rule and the numbers it saw.

One row per (campaign, run, kind):
    kind "rollout"     the variant the remainder of a batch run got, and why: rule "significant" (the
                       readout declared it), "deadline" (no winner in time: the control or the configured
                       default) or "manual" (an operator's `decide`, e.g. after a sample ratio mismatch,
                       which blocks every other rule).
    kind "allocation"  the variant shares a bandit run was assigned with (rule "top_two_thompson").

The first decision for a run is final: a second process deciding at the same moment inserts nothing
(ON CONFLICT DO NOTHING on the unique key) and reads the first one back, so both act on the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from dagster_project.warehouse import Connection, columns

TABLE = "ops.experiment_decisions"
COLUMNS = columns(
    "campaign_id:VARCHAR run_key:VARCHAR kind:VARCHAR variant_id:VARCHAR rule:VARCHAR reason:VARCHAR "
    "evidence_json:VARCHAR decided_at:TIMESTAMP"
)
ROLLOUT = "rollout"
ALLOCATION = "allocation"


@dataclass(frozen=True)
class Decision:
    campaign_id: str
    run_key: str
    kind: str
    variant_id: str | None
    rule: str
    reason: str
    decided_at: datetime
    evidence: dict = field(default_factory=dict)  # JSON-able: the readout or the weights it acted on


def ensure_decisions_table(conn: Connection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
    conn.create_table(TABLE, COLUMNS)
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS experiment_decisions__campaign_id__run_key__kind "
                 f"ON {TABLE} (campaign_id, run_key, kind)")


def record_decision(conn: Connection, decision: Decision) -> Decision:
    """Store `decision` unless the run already has one of its kind; returns the one in force."""
    ensure_decisions_table(conn)
    conn.execute(
        f"INSERT INTO {TABLE} ({', '.join(c.name for c in COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        [decision.campaign_id, decision.run_key, decision.kind, decision.variant_id, decision.rule,
         decision.reason, json.dumps(decision.evidence, sort_keys=True, allow_nan=False), decision.decided_at],
    )
    stored = stored_decision(conn, decision.campaign_id, decision.run_key, decision.kind)
    assert stored is not None  # just inserted, or inserted by the run that won
    return stored


def stored_decision(conn: Connection, campaign_id: str, run_key: str, kind: str) -> Decision | None:
    if not conn.table_exists("ops", "experiment_decisions"):
        return None
    rows = conn.fetchall(
        f"SELECT {_READ} FROM {TABLE} WHERE campaign_id = ? AND run_key = ? AND kind = ?",
        [campaign_id, run_key, kind],
    )
    return _decision(campaign_id, rows[0]) if rows else None


def decisions_of(conn: Connection, campaign_id: str) -> list[Decision]:
    """Every decision of the campaign, newest run first."""
    if not conn.table_exists("ops", "experiment_decisions"):
        return []
    return [_decision(campaign_id, row) for row in conn.fetchall(
        f"SELECT {_READ} FROM {TABLE} WHERE campaign_id = ? ORDER BY run_key DESC, kind", [campaign_id])]


_READ = "run_key, kind, variant_id, rule, reason, evidence_json, decided_at"


def _decision(campaign_id: str, row) -> Decision:
    run_key, kind, variant_id, rule, reason, evidence, decided_at = row
    return Decision(campaign_id, run_key, kind, variant_id, rule, reason, decided_at, json.loads(evidence))
