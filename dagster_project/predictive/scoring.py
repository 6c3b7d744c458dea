"""Score every customer at the latest cutoff of intermediate.int_propensity_examples (T_0, the run's as_of)
with each model's serving version and, while one is on trial, its canary version, into
ops.propensity_scores (docs/design/predictive.md, section 6).

Both versions score every customer, so the roll-out can compare them on the same people; `is_served`
marks the one whose probability campaigns use: the canary serves a stable hash-drawn CANARY_SHARE of
customers, the serving version everyone else. marts.customer_propensity reads the served rows of the
latest cutoff.

Scoring the same cutoff with the same version again writes nothing (a unique key, ON CONFLICT DO
NOTHING), so a retried or concurrent run leaves one set of scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from dagster_project.personalization.ops_tables import insert_rows
from dagster_project.personalization.variants import assignment_bucket
from dagster_project.predictive import propensity, registry
from dagster_project.warehouse import Warehouse, columns, ensure_table

TABLE = "ops.propensity_scores"
COLUMNS = columns(
    "customer_id:VARCHAR model_name:VARCHAR version:INTEGER cutoff_at:TIMESTAMP probability:FLOAT8 "
    "is_served:BOOLEAN scored_at:TIMESTAMP"
)
CANARY_SHARE = 0.2
# The roll-out judges a canary on closed 7-day windows within this; older scores are deleted.
RETENTION = timedelta(weeks=13)
_UNIQUE_KEY = ("model_name", "version", "cutoff_at", "customer_id")


@dataclass
class ScoringReport:
    cutoff_at: datetime | None = None
    customers: int = 0
    # model -> [(version, status, customers served, rows written now)]
    versions: dict[str, list[tuple[int, str, int, int]]] = field(default_factory=dict)
    unscored_models: dict[str, str] = field(default_factory=dict)  # model -> why it has no scores
    deleted_old_rows: int = 0


def is_canary_customer(model_name: str, customer_id: str) -> bool:
    """The stable share of customers a model's canary version serves (the same people for every canary)."""
    return assignment_bucket(f"propensity|{model_name}", customer_id) < CANARY_SHARE


def score_latest_cutoff(warehouse: Warehouse, now: datetime, threads: int = propensity.THREADS,
                        progress=print, cutoff_at: datetime | None = None) -> ScoringReport:
    """Score the latest cutoff, or `cutoff_at` (an earlier weekly cutoff of the examples: a backfill, so
    versions can be compared on windows that have closed already)."""
    report = ScoringReport()
    with warehouse.connect() as conn:
        if not conn.table_exists("intermediate", "int_propensity_examples"):
            raise ValueError("there is nothing to score: intermediate.int_propensity_examples does not exist; "
                             "build the dbt models first (dbt build, or the daily pipeline)")
        cutoffs = [row[0] for row in conn.fetchall(
            "SELECT DISTINCT cutoff_at FROM intermediate.int_propensity_examples ORDER BY cutoff_at DESC")]
        if cutoff_at is not None and cutoff_at not in cutoffs:
            raise ValueError(f"{cutoff_at} is not a cutoff of intermediate.int_propensity_examples; its cutoffs are "
                             f"{', '.join(f'{c:%Y-%m-%d %H:%M:%S}' for c in cutoffs) or 'none'}")
        report.cutoff_at = cutoff_at or (cutoffs[0] if cutoffs else None)
        if report.cutoff_at is None:
            return report
        rows = conn.fetchall(
            f"SELECT customer_id, {', '.join(propensity.FEATURES)} FROM intermediate.int_propensity_examples "
            "WHERE cutoff_at = ? ORDER BY customer_id", [report.cutoff_at])
        by_model = {name: (registry.serving(conn, name), registry.canary(conn, name)) for name in propensity.MODELS}
    frame = pd.DataFrame(rows, columns=["customer_id", *propensity.FEATURES])
    report.customers = len(frame)
    canary_customer = {name: frame["customer_id"].map(lambda c, n=name: is_canary_customer(n, c)).to_numpy()
                       for name in propensity.MODELS}

    for name, (serving, canary) in by_model.items():
        if serving is None:
            report.unscored_models[name] = ("no version serves yet: train one that beats the baseline "
                                            "(the predictive/propensity_model asset)")
            continue
        report.versions[name] = []
        for version in (serving, canary):
            if version is None:
                continue
            if canary is None:
                served = np.ones(len(frame), dtype=bool)
            else:
                served = canary_customer[name] if version is canary else ~canary_customer[name]
            written = _score_version(warehouse, version, frame, served, report.cutoff_at, now, threads)
            report.versions[name].append((version.version, version.status, int(served.sum()), written))
            progress(f"{name} version {version.version} ({version.status}): scored {len(frame):,} customers at "
                     f"{report.cutoff_at:%Y-%m-%d %H:%M}, serves {int(served.sum()):,}; {written:,} rows written")

    with warehouse.connect() as conn:
        if conn.table_exists("ops", "propensity_scores"):
            report.deleted_old_rows = conn.execute(f"DELETE FROM {TABLE} WHERE cutoff_at < ?",
                                                   [cutoffs[0] - RETENTION])
    return report


def _score_version(warehouse: Warehouse, version: registry.ModelVersion, frame: pd.DataFrame, served, cutoff_at,
                   now: datetime, threads: int) -> int:
    with warehouse.connect() as conn:
        ensure_scores_table(conn)
        if conn.scalar(f"SELECT count(*) FROM {TABLE} WHERE model_name = ? AND version = ? AND cutoff_at = ?",
                       [version.model_name, version.version, cutoff_at]):
            return 0  # scored before: the same version on the same features gives the same numbers
    trained = load_version(version)
    probabilities = propensity.predict(trained, frame, threads=threads)
    rows = ((customer, version.model_name, version.version, cutoff_at, float(p), "true" if s else "false", now)
            for customer, p, s in zip(frame["customer_id"], probabilities, served, strict=True))
    with warehouse.connect() as conn:
        staging = "propensity_scores_new"
        conn.create_table(staging, COLUMNS, temporary=True)
        insert_rows(conn, staging, COLUMNS, rows)
        names = ", ".join(c.name for c in COLUMNS)
        return conn.execute(f"INSERT INTO {TABLE} ({names}) SELECT {names} FROM {staging} ON CONFLICT DO NOTHING")


def load_version(version: registry.ModelVersion) -> propensity.TrainedModel:
    path = Path(version.artifact_path)
    if not path.exists():
        raise ValueError(
            f"{version.model_name} version {version.version} ({version.status}) has no artifact at {path}; restore "
            "the models directory (MAILROOM_DATA_DIR/models) or train again (python -m dagster_project.predictive "
            "train) and let the roll-out serve the new version")
    return propensity.load_model(path, version.artifact_sha256)


def ensure_scores_table(conn) -> None:
    ensure_table(conn, TABLE, COLUMNS, [_UNIQUE_KEY], registry.DDL_LOCK)
