"""ops.model_registry: every trained version of a propensity model, with what it was trained on, how it
did on held-out time against the recency-frequency baseline, where its artifact is, and its status.

status: serving (campaigns use its scores), candidate (passed the offline gate, waiting for a trial),
canary (on trial: it serves a share of customers until the roll-out promotes or rolls it back; see
predictive/rollout.py), rejected (did not beat the baseline on held-out time), retired (replaced by a
better version, or superseded before its trial), rolled_back (did worse online than the serving one).

A version is registered once per (model, data fingerprint, code version): training again on the same
data registers nothing. Two processes training at once insert one row (ON CONFLICT DO NOTHING on
both unique keys) and both read it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from dagster_project.warehouse import Connection, columns, ensure_table

TABLE = "ops.model_registry"
COLUMNS = columns(
    "model_name:VARCHAR version:INTEGER status:VARCHAR features_json:VARCHAR params_json:VARCHAR "
    "metrics_json:VARCHAR train_from:TIMESTAMP train_to:TIMESTAMP calibration_cutoff:TIMESTAMP "
    "test_cutoff:TIMESTAMP data_fingerprint:VARCHAR code_version:VARCHAR artifact_path:VARCHAR "
    "artifact_sha256:VARCHAR trained_at:TIMESTAMP"
)
SERVING, CANDIDATE, CANARY, REJECTED = "serving", "candidate", "canary", "rejected"
RETIRED, ROLLED_BACK = "retired", "rolled_back"


@dataclass(frozen=True)
class ModelVersion:
    model_name: str
    version: int
    status: str
    features: list[str]
    params: dict
    metrics: dict
    train_from: datetime
    train_to: datetime
    calibration_cutoff: datetime
    test_cutoff: datetime
    data_fingerprint: str
    code_version: str
    artifact_path: str
    artifact_sha256: str
    trained_at: datetime


# PostgreSQL advisory lock key of the predictive tables' creators (reverse_etl/suppressions.py has 7_362_005)
DDL_LOCK = 7_362_006


def ensure_registry(conn: Connection) -> None:
    ensure_table(conn, TABLE, COLUMNS, [("model_name", "version"), ("model_name", "data_fingerprint", "code_version")],
                 DDL_LOCK)


def trained_on(conn: Connection, model_name: str, data_fingerprint: str, code_version: str) -> ModelVersion | None:
    """The version already trained on this data by this code, if any."""
    if not conn.table_exists("ops", "model_registry"):
        return None
    rows = conn.fetchall(f"SELECT {_READ} FROM {TABLE} WHERE model_name = ? AND data_fingerprint = ? "
                         "AND code_version = ?", [model_name, data_fingerprint, code_version])
    return _version(rows[0]) if rows else None


def next_version(conn: Connection, model_name: str) -> int:
    ensure_registry(conn)
    return int(conn.scalar(f"SELECT coalesce(max(version), 0) + 1 FROM {TABLE} WHERE model_name = ?",
                           [model_name]))


def register(conn: Connection, version: ModelVersion) -> ModelVersion | None:
    """Store `version` unless this data and code were registered already; returns the one stored, or
    None when another run took the version number for other data (pick the next number and retry).
    The first version that passes the gate serves at once (there is nothing to compare it with online)."""
    ensure_registry(conn)
    status = version.status
    if status == CANDIDATE and serving(conn, version.model_name) is None:
        status = SERVING
    conn.execute(
        f"INSERT INTO {TABLE} ({', '.join(c.name for c in COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in COLUMNS)}) ON CONFLICT DO NOTHING",
        [version.model_name, version.version, status, json.dumps(version.features),
         json.dumps(version.params, sort_keys=True), json.dumps(version.metrics, sort_keys=True, allow_nan=False),
         version.train_from, version.train_to, version.calibration_cutoff, version.test_cutoff,
         version.data_fingerprint, version.code_version, version.artifact_path, version.artifact_sha256,
         version.trained_at],
    )
    return trained_on(conn, version.model_name, version.data_fingerprint, version.code_version)


def serving(conn: Connection, model_name: str) -> ModelVersion | None:
    if not conn.table_exists("ops", "model_registry"):
        return None
    rows = conn.fetchall(f"SELECT {_READ} FROM {TABLE} WHERE model_name = ? AND status = ? "
                         "ORDER BY version DESC LIMIT 1", [model_name, SERVING])
    return _version(rows[0]) if rows else None


def canary(conn: Connection, model_name: str) -> ModelVersion | None:
    """The version on trial, if any (the roll-out keeps at most one)."""
    if not conn.table_exists("ops", "model_registry"):
        return None
    rows = conn.fetchall(f"SELECT {_READ} FROM {TABLE} WHERE model_name = ? AND status = ? "
                         "ORDER BY version DESC LIMIT 1", [model_name, CANARY])
    return _version(rows[0]) if rows else None


def change_status(conn: Connection, model_name: str, version: int, from_status: str, to_status: str) -> bool:
    """Move a version from one status to another; False when it was no longer in `from_status` (a concurrent
    run moved it first: PostgreSQL re-checks the condition after the other transaction commits)."""
    return conn.execute(f"UPDATE {TABLE} SET status = ? WHERE model_name = ? AND version = ? AND status = ?",
                        [to_status, model_name, version, from_status]) == 1


def versions(conn: Connection, model_name: str) -> list[ModelVersion]:
    """Every version of the model, newest first."""
    if not conn.table_exists("ops", "model_registry"):
        return []
    return [_version(row) for row in conn.fetchall(
        f"SELECT {_READ} FROM {TABLE} WHERE model_name = ? ORDER BY version DESC", [model_name])]


_READ = ", ".join(c.name for c in COLUMNS)


def _version(row) -> ModelVersion:
    (model_name, version, status, features, params, metrics, train_from, train_to, calibration_cutoff, test_cutoff,
     fingerprint, code_version, artifact_path, artifact_sha256, trained_at) = row
    return ModelVersion(model_name, int(version), status, json.loads(features), json.loads(params),
                        json.loads(metrics), train_from, train_to, calibration_cutoff, test_cutoff, fingerprint,
                        code_version, artifact_path, artifact_sha256, trained_at)
