"""Train the propensity models on intermediate.int_propensity_examples and register every version.

Training again on the same examples with the same code registers nothing (the registry's unique data
fingerprint and code version). Two processes training at once: both may fit, one row wins, the loser
deletes its artifact and reads the winner's row back.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from dagster_project.predictive import propensity, registry
from dagster_project.warehouse import Warehouse

EXAMPLES_TABLE = "intermediate.int_propensity_examples"
EXAMPLE_COLUMNS = (*propensity.KEYS, *propensity.FEATURES, *propensity.LABELS)


@dataclass(frozen=True)
class TrainingOutcome:
    version: registry.ModelVersion
    trained_now: bool  # False: this data and code were registered before (or by a concurrent run)


def read_examples(conn) -> pd.DataFrame:
    rows = conn.fetchall(f"SELECT {', '.join(EXAMPLE_COLUMNS)} FROM {EXAMPLES_TABLE}")
    return pd.DataFrame(rows, columns=list(EXAMPLE_COLUMNS))


def code_version() -> str:
    """The model code's fingerprint: a change to how models are trained makes a new version."""
    return hashlib.sha256(Path(propensity.__file__).read_bytes()).hexdigest()[:16]


def train_and_register(warehouse: Warehouse, models_dir: Path, now: datetime,
                       threads: int = propensity.THREADS, progress=print) -> list[TrainingOutcome]:
    with warehouse.connect() as conn:
        examples = read_examples(conn)
    fingerprint, code = propensity.data_fingerprint(examples), code_version()
    outcomes = []
    for model_name in propensity.MODELS:
        with warehouse.connect() as conn:
            existing = registry.trained_on(conn, model_name, fingerprint, code)
        if existing is not None:
            progress(f"{model_name}: version {existing.version} was trained on these examples already")
            outcomes.append(TrainingOutcome(existing, False))
            continue
        progress(f"{model_name}: training on {len(examples):,} examples")
        trained = propensity.train_model(examples, model_name, threads=threads)
        outcomes.append(_register(warehouse, models_dir, trained, fingerprint, code, now))
    return outcomes


def _register(warehouse: Warehouse, models_dir: Path, trained: propensity.TrainedModel, fingerprint: str,
              code: str, now: datetime) -> TrainingOutcome:
    path = models_dir / trained.model_name / f"{uuid.uuid4().hex}.joblib"
    sha256 = propensity.save_model(trained, path)
    for _ in range(3):  # a concurrent run may take the version number first
        with warehouse.connect() as conn:
            number = registry.next_version(conn, trained.model_name)
            stored = registry.register(conn, registry.ModelVersion(
                model_name=trained.model_name, version=number,
                status=registry.CANDIDATE if trained.passed else registry.REJECTED,
                features=list(trained.features), params=trained.params, metrics=trained.metrics,
                train_from=trained.train_from, train_to=trained.train_to,
                calibration_cutoff=trained.calibration_cutoff, test_cutoff=trained.test_cutoff,
                data_fingerprint=fingerprint, code_version=code, artifact_path=str(path), artifact_sha256=sha256,
                trained_at=now))
        if stored is not None:
            won = stored.artifact_path == str(path)
            if not won:
                path.unlink(missing_ok=True)  # another run registered this data first
            return TrainingOutcome(stored, won)
    raise RuntimeError(f"could not register {trained.model_name}: the version number kept being taken")
