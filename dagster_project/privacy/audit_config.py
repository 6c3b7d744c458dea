"""Configuration that decides who is mailed, in the audit chain (docs/design/privacy.md, section 5, kind
`config`): the sending rules (destinations, frequency cap, quiet hours, expiry, sender), the dbt project's
variables, and digests of the models that decide eligibility and the campaigns' and journeys' audiences.

`record_config_if_changed` compares the current snapshot with the last one recorded and records a new
entry only when something changed, so the chain shows when a rule changed, not every run. It runs where
the chain is sealed (the daily run's and the privacy job's ops/audit_log, and `audit seal`). Campaign
pauses and resumes are recorded as they happen (reverse_etl/pauses.py)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import yaml

from dagster_project.dbt_project import DBT_PROJECT_DIR
from dagster_project.privacy import audit
from dagster_project.settings import load_activation_settings
from dagster_project.warehouse import Connection

MODEL_GROUPS = {  # what decides who may be mailed, and who a campaign or journey picks
    "eligibility_models": "models/marts/eligibility",
    "campaign_models": "models/campaigns",
    "journey_models": "models/journeys",
}


def config_snapshot(dbt_dir: Path = DBT_PROJECT_DIR) -> dict:
    activation = load_activation_settings()
    project = yaml.safe_load((dbt_dir / "dbt_project.yml").read_text())
    snapshot = {
        "destinations": list(activation.destinations),
        "frequency_cap": activation.frequency_cap,
        "quiet_hours": list(activation.quiet_hours) if activation.quiet_hours else None,
        "expire_after_hours": str(activation.expire_after_hours),
        "from_email": activation.from_email,
        "dbt_vars_sha256": _sha256(json.dumps(project.get("vars") or {}, sort_keys=True, default=str)),
    }
    for name, folder in MODEL_GROUPS.items():
        files = sorted((dbt_dir / folder).rglob("*.sql")) + sorted((dbt_dir / folder).rglob("*.yml"))
        snapshot[name] = _sha256("".join(f"{p.relative_to(dbt_dir)}\0{_sha256(p.read_text())}\n" for p in files))
    return snapshot


def record_config_if_changed(conn: Connection, now: datetime, snapshot: dict | None = None) -> bool:
    """Record the snapshot as a `config` entry unless it equals the last one recorded; whether it did."""
    snapshot = snapshot if snapshot is not None else config_snapshot()
    audit.ensure_audit_tables(conn)
    if conn.kind == "postgres":  # two runs sealing at once would both see the old snapshot and record the new
        conn.execute(f"SELECT pg_advisory_xact_lock({audit.SEAL_LOCK})")
    if _last_config(conn) == snapshot:
        return False
    audit.record(conn, "config", snapshot, now)
    return True


def _last_config(conn: Connection) -> dict | None:
    """The newest config entry, waiting or sealed (pending entries are newer than every sealed one)."""
    for sql in (f"SELECT payload_json FROM {audit.PENDING} WHERE kind = 'config' "
                "ORDER BY recorded_at DESC, pending_id DESC LIMIT 1",
                f"SELECT payload_json FROM {audit.LOG} WHERE kind = 'config' ORDER BY seq DESC LIMIT 1"):
        rows = conn.fetchall(sql)
        if rows:
            return json.loads(rows[0][0])
    return None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
