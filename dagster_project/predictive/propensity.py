"""Engagement propensity: train, calibrate and evaluate the 7-day click and conversion models against a
recency-frequency baseline, score frames, save and load the artifacts (docs/design/predictive.md, section 6).

Plain Python on DataFrames: the examples come from `int_propensity_examples`, one row per (customer_id,
cutoff_at) with point-in-time features at the weekly cutoff T and labels over (T, T + 7 d].

    label-complete cutoffs, oldest to newest:  T_n ... T_3 | T_2         | T_1
                                               train        | calibration | test

The estimator is fitted on the training cutoffs, its probabilities calibrated on T_2 (disjoint from the
fit), and both it and the baseline are measured on T_1. `passed` is the registry's gate: the model must
beat the baseline's AUC and not lose on log loss.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from threadpoolctl import threadpool_limits

FEATURES = (
    "delivered_30d", "opened_30d", "clicked_30d",
    "delivered_90d", "opened_90d", "clicked_90d",
    "days_since_last_open", "days_since_last_click", "machine_open_share_90d",
    "orders_90d", "revenue_90d", "days_since_last_order",
    "cart_adds_7d", "cart_adds_30d", "days_since_last_cart_add",
    "page_views_30d", "tenure_days",
)
KEYS = ("customer_id", "cutoff_at")
LABELS = ("is_mailed_7d", "clicked_7d", "converted_7d", "is_label_complete")
# model name -> (label column, population is mailed customers only): a customer who was not mailed
# cannot click, while anyone can order.
MODELS = {"click_7d": ("clicked_7d", True), "converted_7d": ("converted_7d", False)}
BASELINE_FEATURES = ("log1p_days_since_last_click", "click_rate_90d", "log1p_delivered_90d")

MIN_CUTOFFS = 3  # train, calibration, test
MAX_TRAIN_ROWS = 500_000
# The design's cap. OpenMP threads spin while they wait: on a machine whose cores are busy with other
# processes, 2 threads fitted the tests' 8,500 rows in 10-14 s against 0.4 s with 1, so callers that share
# the machine pass threads=1.
THREADS = 2
# Isotonic regression overfits small calibration sets (scikit-learn's user guide); below either
# threshold the two-parameter sigmoid is used.
ISOTONIC_MIN_ROWS = 1_000
ISOTONIC_MIN_POSITIVES = 200
CALIBRATION_FOLDS = 5  # CalibratedClassifierCV's default; the frozen model's predictions do not depend on it
# Isotonic calibration gives exactly 0 (or 1) to a block with no positives (negatives); one such test
# positive would dominate the log loss, and no customer is certain. Every probability is clipped to this.
PROBABILITY_FLOOR = 1e-4
CALIBRATION_BINS = 10
DAYS_NEVER_CLICKED = 365

# Small trees and large leaves: a few thousand mailed customers a week overfit deeper trees, which then
# lose to the recency-frequency baseline on held-out time (measured on the 2,000-customer sample).
HGB_PARAMS = {
    "learning_rate": 0.05,
    "max_iter": 100,
    "max_leaf_nodes": 7,
    "min_samples_leaf": 100,
    "l2_regularization": 1.0,
    "early_stopping": False,
}


@dataclass(frozen=True)
class Split:
    """The label-complete examples by cutoff. Dates are naive UTC, like the warehouse's timestamps."""

    train: pd.DataFrame
    calibration: pd.DataFrame
    test: pd.DataFrame
    train_from: datetime
    train_to: datetime
    calibration_cutoff: datetime
    test_cutoff: datetime


@dataclass
class TrainedModel:
    """One trained version: what the registry stores (features, params and metrics are JSON-able) plus the
    two calibrated estimators that `predict` and `predict_baseline` use."""

    model_name: str
    label: str
    features: list[str]
    model: CalibratedClassifierCV
    baseline: CalibratedClassifierCV
    metrics: dict
    params: dict
    train_from: datetime
    train_to: datetime
    calibration_cutoff: datetime
    test_cutoff: datetime
    passed: bool


def time_split(examples: pd.DataFrame, max_train_rows: int = MAX_TRAIN_ROWS) -> Split:
    """Label-complete rows only: the latest cutoff is the test set, the one before it calibrates, all earlier
    ones train. Training is capped at `max_train_rows` by a hash sample of customer_id|cutoff, so the same
    data always keeps the same rows."""
    _require_columns(examples, (*KEYS, "is_label_complete"), "time_split")
    complete = _canonical(examples.loc[_bool(examples["is_label_complete"], "is_label_complete").to_numpy()])
    duplicated = int(complete.duplicated(list(KEYS)).sum())
    if duplicated:
        raise ValueError(
            f"time_split: {duplicated} label-complete rows repeat a (customer_id, cutoff_at) pair; the examples "
            "must have one row per customer and cutoff (check int_propensity_examples' grain)"
        )
    cutoffs = sorted(complete["cutoff_at"].unique())
    if len(cutoffs) < MIN_CUTOFFS:
        raise ValueError(
            f"propensity training (a test, a calibration and at least one training cutoff) needs at least "
            f"{MIN_CUTOFFS} label-complete weekly cutoffs, found {len(cutoffs)}; build more history "
            "(var propensity_training_weeks)"
        )
    test_cutoff, calibration_cutoff = cutoffs[-1], cutoffs[-2]
    train = complete[complete["cutoff_at"] < calibration_cutoff]
    if len(train) > max_train_rows:
        train = train.iloc[np.sort(np.argsort(_row_hashes(train), kind="stable")[:max_train_rows])]
    return Split(
        train=train.reset_index(drop=True),
        calibration=complete[complete["cutoff_at"] == calibration_cutoff].reset_index(drop=True),
        test=complete[complete["cutoff_at"] == test_cutoff].reset_index(drop=True),
        train_from=_datetime(cutoffs[0]),
        train_to=_datetime(cutoffs[-3]),
        calibration_cutoff=_datetime(calibration_cutoff),
        test_cutoff=_datetime(test_cutoff),
    )


def train_model(examples: pd.DataFrame, model_name: str, random_state: int = 0, *,
                max_train_rows: int = MAX_TRAIN_ROWS, threads: int = THREADS) -> TrainedModel:
    """Fit the gradient-boosted model and the baseline on the training cutoffs, calibrate both on the
    calibration cutoff and measure both on the test cutoff. `threads` caps the OpenMP and BLAS pools."""
    if model_name not in MODELS:
        raise ValueError(f"unknown propensity model {model_name!r}; known models: {', '.join(MODELS)}")
    label, mailed_only = MODELS[model_name]
    _require_columns(examples, (*KEYS, *FEATURES, *LABELS), f"train_model({model_name!r})")
    split = time_split(examples, max_train_rows=max_train_rows)
    train, calibration, test = (_population(frame, mailed_only) for frame in (split.train, split.calibration,
                                                                               split.test))
    sets = {
        "training set": (train, f"cutoffs {split.train_from:%Y-%m-%d}..{split.train_to:%Y-%m-%d}"),
        "calibration set": (calibration, f"cutoff {split.calibration_cutoff:%Y-%m-%d}"),
        "test set": (test, f"cutoff {split.test_cutoff:%Y-%m-%d}"),
    }
    y = {name: _bool(frame[label], label).to_numpy(dtype=np.int8) for name, (frame, _) in sets.items()}
    population = "mailed customers" if mailed_only else "all customers"
    for name, (frame, where) in sets.items():
        positives = int(y[name].sum())
        if positives in (0, len(frame)):
            raise ValueError(
                f"{model_name}: the {name} ({where}, {len(frame):,} rows of {population}) has only one class of "
                f"{label} ({'all true' if positives else 'all false'}); check the label in int_propensity_examples "
                "or build more history (var propensity_training_weeks)"
            )
    positives, negatives = int(y["calibration set"].sum()), int((1 - y["calibration set"]).sum())
    if min(positives, negatives) < CALIBRATION_FOLDS:
        raise ValueError(
            f"{model_name}: the calibration set ({sets['calibration set'][1]}) has {positives} positives and "
            f"{negatives} negatives of {label}; calibration needs at least {CALIBRATION_FOLDS} of each"
        )
    method = "isotonic" if len(calibration) >= ISOTONIC_MIN_ROWS and positives >= ISOTONIC_MIN_POSITIVES \
        else "sigmoid"

    with threadpool_limits(limits=threads):
        estimator = HistGradientBoostingClassifier(**HGB_PARAMS, random_state=random_state)
        estimator.fit(_feature_matrix(train), y["training set"])
        model = _calibrate(estimator, _feature_matrix(calibration), y["calibration set"], method)
        reference = LogisticRegression(max_iter=1_000)
        reference.fit(_baseline_matrix(train), y["training set"])
        baseline = _calibrate(reference, _baseline_matrix(calibration), y["calibration set"], method)
        scores = _clip(model.predict_proba(_feature_matrix(test))[:, 1])
        baseline_scores = _clip(baseline.predict_proba(_baseline_matrix(test))[:, 1])

    y_test = y["test set"]
    metrics = {
        "test_rows": len(test),
        "test_positives": int(y_test.sum()),
        "test_base_rate": float(y_test.mean()),
        "model": evaluate(y_test, scores),
        "baseline": evaluate(y_test, baseline_scores),
    }
    passed = bool(metrics["model"]["roc_auc"] > metrics["baseline"]["roc_auc"]
                  and metrics["model"]["log_loss"] <= metrics["baseline"]["log_loss"])
    params = {
        "estimator": "HistGradientBoostingClassifier",
        **HGB_PARAMS,
        "random_state": random_state,
        "calibration_method": method,
        "probability_floor": PROBABILITY_FLOOR,
        "population": "is_mailed_7d" if mailed_only else "all",
        "baseline": {"estimator": "LogisticRegression", "features": list(BASELINE_FEATURES)},
        "max_train_rows": max_train_rows,
        "train_rows": len(train),
        "calibration_rows": len(calibration),
        "calibration_positives": positives,
        "threads": threads,
    }
    return TrainedModel(
        model_name=model_name, label=label, features=list(FEATURES), model=model, baseline=baseline,
        metrics=metrics, params=params, train_from=split.train_from, train_to=split.train_to,
        calibration_cutoff=split.calibration_cutoff, test_cutoff=split.test_cutoff, passed=passed,
    )


def predict(trained: TrainedModel, frame: pd.DataFrame, *, threads: int = THREADS) -> np.ndarray:
    """Calibrated probabilities of the label for every row of a frame with the model's feature columns."""
    _require_columns(frame, trained.features, f"predict({trained.model_name!r})")
    with threadpool_limits(limits=threads):
        return _clip(trained.model.predict_proba(_feature_matrix(frame, trained.features))[:, 1])


def predict_baseline(trained: TrainedModel, frame: pd.DataFrame, *, threads: int = THREADS) -> np.ndarray:
    """The recency-frequency baseline's calibrated probabilities for every row of the frame."""
    _require_columns(frame, ("days_since_last_click", "clicked_90d", "delivered_90d"),
                     f"predict_baseline({trained.model_name!r})")
    with threadpool_limits(limits=threads):
        return _clip(trained.baseline.predict_proba(_baseline_matrix(frame))[:, 1])


def evaluate(y: np.ndarray, scores: np.ndarray) -> dict:
    """roc_auc, log_loss, brier, the 10-bin quantile calibration table and lift by decile (decile 1 holds the
    highest scores). Plain floats and lists, so the dict goes into JSON as it is."""
    y = np.asarray(y, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    return {
        "roc_auc": float(roc_auc_score(y, scores)),
        "log_loss": float(log_loss(y, scores, labels=[0, 1])),
        "brier": float(brier_score_loss(y, scores)),
        "calibration": calibration_table(y, scores),
        "lift": lift_by_decile(y, scores),
    }


def calibration_table(y: np.ndarray, scores: np.ndarray, n_bins: int = CALIBRATION_BINS) -> list[dict]:
    """Mean predicted probability, observed rate and count per quantile bin: the binning of scikit-learn's
    `calibration_curve(strategy="quantile")` (tied scores can leave a bin empty; empty bins are left out),
    with the counts it does not return."""
    edges = np.percentile(scores, np.linspace(0, 100, n_bins + 1))
    bins = np.searchsorted(edges[1:-1], scores)
    counts = np.bincount(bins, minlength=n_bins)
    predicted = np.bincount(bins, weights=scores, minlength=n_bins)
    observed = np.bincount(bins, weights=y, minlength=n_bins)
    return [{"bin": int(b) + 1, "predicted": float(predicted[b] / counts[b]),
             "observed": float(observed[b] / counts[b]), "count": int(counts[b])} for b in np.flatnonzero(counts)]


def lift_by_decile(y: np.ndarray, scores: np.ndarray) -> list[dict]:
    """Rate per score decile over the base rate. Ties are broken by row order, so the deciles are equal-sized."""
    order = np.argsort(-scores, kind="stable")
    base_rate = float(y.mean())
    rows = []
    for decile, rows_of_decile in enumerate(np.array_split(order, 10), start=1):
        rate = float(y[rows_of_decile].mean()) if len(rows_of_decile) else 0.0
        rows.append({"decile": decile, "count": len(rows_of_decile), "rate": rate,
                     "lift": rate / base_rate if base_rate else 0.0})
    return rows


def save_model(trained: TrainedModel, path: str | os.PathLike) -> str:
    """Write the model with joblib (atomically: a reader never sees half a file) and return its sha256, which
    `load_model` checks."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    joblib.dump(trained, buffer)
    data = buffer.getvalue()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()


def load_model(path: str | os.PathLike, sha256: str) -> TrainedModel:
    """Load a model written by `save_model`. The file is a pickle, which runs code when loaded, so it is
    loaded only when its bytes have the sha256 recorded for it (our own files, unchanged)."""
    data = Path(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256.lower():
        raise ValueError(
            f"refusing to load the propensity model {path}: its sha256 is {actual}, the registry recorded "
            f"{sha256}; the file was changed or is not ours (retrain to write a new version)"
        )
    trained = joblib.load(io.BytesIO(data))
    if not isinstance(trained, TrainedModel):
        raise ValueError(f"{path} holds a {type(trained).__name__}, not a TrainedModel")
    return trained


def data_fingerprint(examples: pd.DataFrame) -> str:
    """sha256 of the label-complete rows' keys, features and labels (other columns are ignored), encoded
    independently of row order, column order and dtype (an integer 3 and a float 3.0 are the same value), so
    the same data gives the same fingerprint on either engine."""
    columns = (*KEYS, *FEATURES, *LABELS)
    _require_columns(examples, columns, "data_fingerprint")
    frame = _canonical(examples.loc[_bool(examples["is_label_complete"], "is_label_complete").to_numpy(),
                                    list(columns)])
    encoded = pd.DataFrame({
        "customer_id": frame["customer_id"],
        "cutoff_at": frame["cutoff_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        **{name: _numeric(frame[name], name) + 0.0 for name in FEATURES},  # + 0.0 turns -0.0 into 0.0
        **{name: _nullable_bool(frame[name]) for name in LABELS},
    })
    encoded = encoded.sort_values(list(encoded.columns), kind="stable", na_position="last")
    digest = hashlib.sha256(f"propensity-examples:v1:{len(encoded)}".encode())
    for name in encoded.columns:
        digest.update(b"\x00" + name.encode() + b"\x00")
        values = encoded[name]
        if name in FEATURES:
            array = values.to_numpy(dtype=np.float64, copy=True)
            array[np.isnan(array)] = np.nan  # one NaN bit pattern
            digest.update(array.astype("<f8").tobytes())
        elif name in LABELS:
            digest.update(values.to_numpy(dtype=np.int8).tobytes())
        else:
            digest.update(json.dumps(values.tolist()).encode())
    return digest.hexdigest()


def _calibrate(fitted, X: np.ndarray, y: np.ndarray, method: str) -> CalibratedClassifierCV:
    calibrated = CalibratedClassifierCV(FrozenEstimator(fitted), method=method, cv=CALIBRATION_FOLDS)
    return calibrated.fit(X, y)


def _population(frame: pd.DataFrame, mailed_only: bool) -> pd.DataFrame:
    if not mailed_only:
        return frame
    return frame[_bool(frame["is_mailed_7d"], "is_mailed_7d").to_numpy()].reset_index(drop=True)


def _feature_matrix(frame: pd.DataFrame, features=FEATURES) -> np.ndarray:
    """float64, NULL -> NaN (the estimator's native missing value)."""
    return np.column_stack([_numeric(frame[name], name) for name in features])


def _baseline_matrix(frame: pd.DataFrame) -> np.ndarray:
    """Recency and frequency of clicks: log1p(days since the last click, 365 when never), the 90-day click
    rate per delivery and log1p(90-day deliveries); missing counts are 0."""
    days = np.nan_to_num(_numeric(frame["days_since_last_click"], "days_since_last_click"), nan=DAYS_NEVER_CLICKED)
    clicked = np.nan_to_num(_numeric(frame["clicked_90d"], "clicked_90d"), nan=0.0)
    delivered = np.nan_to_num(_numeric(frame["delivered_90d"], "delivered_90d"), nan=0.0)
    return np.column_stack([np.log1p(np.maximum(days, 0.0)), clicked / np.maximum(delivered, 1.0),
                            np.log1p(np.maximum(delivered, 0.0))])


def _numeric(column: pd.Series, name: str) -> np.ndarray:
    try:
        return pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise ValueError(f"propensity feature {name} must be numeric (NULL allowed): {error}") from None


def _bool(column: pd.Series, name: str) -> pd.Series:
    """A boolean column without NULLs (a NULL label of a label-complete row is a data error, not a false)."""
    nulls = int(column.isna().sum())
    if nulls:
        raise ValueError(f"{name} is NULL in {nulls:,} rows; it must be true or false (check int_propensity_examples)")
    return column.astype(bool)


def _nullable_bool(column: pd.Series) -> pd.Series:
    """0/1, and 2 for NULL, for the fingerprint."""
    return column.astype("boolean").astype("Int8").fillna(2).astype(np.int8)


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """customer_id as str and cutoff_at as naive UTC, sorted by (cutoff_at, customer_id): a canonical order,
    so the estimator's result does not depend on the order the warehouse returned the rows in."""
    frame = frame.copy()
    frame["customer_id"] = frame["customer_id"].astype(str)
    cutoffs = pd.to_datetime(frame["cutoff_at"])
    if cutoffs.dt.tz is not None:
        cutoffs = cutoffs.dt.tz_convert("UTC").dt.tz_localize(None)
    frame["cutoff_at"] = cutoffs.astype("datetime64[us]")
    return frame.sort_values(["cutoff_at", "customer_id"], kind="stable").reset_index(drop=True)


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """The first 8 bytes of sha256("customer_id|cutoff ISO"), as unsigned integers: stable across processes
    and library versions (unlike Python's hash() or pandas' hash_pandas_object)."""
    keys = frame["customer_id"] + "|" + frame["cutoff_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return np.fromiter((int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") for key in keys),
                       dtype=np.uint64, count=len(keys))


def _datetime(value) -> datetime:
    return pd.Timestamp(value).to_pydatetime()


def _clip(probabilities: np.ndarray) -> np.ndarray:
    return np.clip(probabilities, PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)


def _require_columns(frame: pd.DataFrame, columns, where: str) -> None:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise ValueError(f"{where}: the examples lack the columns {', '.join(missing)} "
                         "(expected the columns of int_propensity_examples)")
