"""The propensity model on synthetic examples (pure: no warehouse, no Dagster): it beats the recency-frequency
baseline when the label depends on something the baseline cannot see, its probabilities are calibrated, the
time split never mixes cutoffs, and the artifacts and fingerprints are what the registry relies on."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve

from dagster_project.predictive.propensity import (
    FEATURES,
    MODELS,
    calibration_table,
    data_fingerprint,
    load_model,
    predict,
    predict_baseline,
    save_model,
    time_split,
    train_model,
)

AS_OF = pd.Timestamp("2025-06-01")
# OpenMP threads spin while they wait: on a machine whose cores run other tests, 2 threads are ~25x slower.
THREADS = 1


def make_examples(seed: int = 0, customers: int = 5_000, weeks: int = 6) -> pd.DataFrame:
    """Weekly cutoffs AS_OF - 7k d, k = weeks-1..0; the newest (k = 0) is not label-complete. A click is
    driven by cart adds in the last 7 days (which the baseline does not see) and by click recency and rate
    (which it does); conversion by cart adds and the click. Counts and recencies have NULLs where there is
    nothing to count from."""
    rng = np.random.default_rng(seed)
    responsiveness = rng.beta(1.5, 6.0, customers)
    shopper = rng.beta(1.0, 4.0, customers)
    first_seen = rng.integers(30, 1_500, customers)
    ids = [f"c{i:05d}" for i in range(customers)]
    frames = []
    for k in range(weeks - 1, -1, -1):
        delivered_90d = rng.poisson(8, customers)
        opened_90d = rng.binomial(delivered_90d, np.clip(2 * responsiveness, 0, 1))
        clicked_90d = rng.binomial(opened_90d, 0.4)
        delivered_30d = rng.binomial(delivered_90d, 0.35)
        opened_30d = rng.binomial(np.minimum(opened_90d, delivered_30d), 0.8)
        days_since_last_click = np.where(
            clicked_90d > 0, rng.exponential(20 / (0.2 + 5 * responsiveness)).round(), np.nan)
        cart_adds_7d = rng.poisson(1.2 * shopper)
        cart_adds_30d = cart_adds_7d + rng.poisson(3 * shopper)
        orders_90d = rng.poisson(1.5 * shopper)
        frame = pd.DataFrame({
            "customer_id": ids,
            "cutoff_at": AS_OF - pd.Timedelta(days=7 * k),
            "delivered_30d": delivered_30d,
            "opened_30d": opened_30d,
            "clicked_30d": rng.binomial(np.minimum(clicked_90d, opened_30d), 0.8),
            "delivered_90d": delivered_90d,
            "opened_90d": opened_90d,
            "clicked_90d": clicked_90d,
            "days_since_last_open": np.where(opened_90d > 0, rng.integers(0, 90, customers), np.nan),
            "days_since_last_click": days_since_last_click,
            "machine_open_share_90d": np.where(opened_90d > 0, rng.beta(1, 3, customers), np.nan),
            "orders_90d": orders_90d,
            "revenue_90d": orders_90d * rng.gamma(2, 30, customers),
            "days_since_last_order": np.where(orders_90d > 0, rng.integers(0, 90, customers), np.nan),
            "cart_adds_7d": cart_adds_7d,
            "cart_adds_30d": cart_adds_30d,
            "days_since_last_cart_add": np.where(cart_adds_30d > 0, rng.integers(0, 30, customers), np.nan),
            "page_views_30d": rng.poisson(2 + 10 * shopper),
            "tenure_days": first_seen + 7 * (weeks - k),
        })
        click_logit = (-1.2 + 1.8 * np.minimum(cart_adds_7d, 3)
                       - 0.45 * np.log1p(np.nan_to_num(days_since_last_click, nan=365.0))
                       + 1.5 * clicked_90d / np.maximum(delivered_90d, 1))
        mailed = rng.random(customers) < 0.8
        clicked = mailed & (rng.random(customers) < 1 / (1 + np.exp(-click_logit)))
        convert_logit = -3.5 + 0.9 * np.minimum(cart_adds_7d, 3) + 1.5 * clicked
        frame["is_mailed_7d"] = mailed
        frame["clicked_7d"] = clicked
        frame["converted_7d"] = rng.random(customers) < 1 / (1 + np.exp(-convert_logit))
        frame["is_label_complete"] = k >= 1
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def examples() -> pd.DataFrame:
    return make_examples()


@pytest.fixture(scope="module")
def click_model(examples):
    return train_model(examples, "click_7d", threads=THREADS)


def test_the_model_beats_the_recency_frequency_baseline(click_model, examples):
    metrics = click_model.metrics
    model, baseline = metrics["model"], metrics["baseline"]
    assert model["roc_auc"] > baseline["roc_auc"] + 0.02, (model["roc_auc"], baseline["roc_auc"])
    assert model["log_loss"] < baseline["log_loss"] and model["brier"] < baseline["brier"]
    assert click_model.passed
    # Measured on the mailed customers of the newest complete cutoff only.
    test = examples[(examples["cutoff_at"] == AS_OF - pd.Timedelta(days=7)) & examples["is_mailed_7d"]]
    assert (metrics["test_rows"], metrics["test_positives"]) == (len(test), int(test["clicked_7d"].sum()))
    assert click_model.params["calibration_method"] == "isotonic"  # >= 1,000 rows and >= 50 positives
    assert click_model.features == list(FEATURES) and click_model.label == "clicked_7d"
    # What the registry stores goes into JSON as it is.
    assert json.loads(json.dumps(metrics)) == metrics
    assert json.loads(json.dumps(click_model.params)) == click_model.params


def test_probabilities_are_calibrated_on_the_held_out_cutoff(click_model, examples):
    table = click_model.metrics["model"]["calibration"]
    checked = [row for row in table if row["count"] >= 100]
    assert len(checked) >= 5
    for row in checked:
        assert abs(row["predicted"] - row["observed"]) <= 0.07, row
    assert sum(row["count"] for row in table) == click_model.metrics["test_rows"]

    # The table is calibration_curve(strategy="quantile") plus counts.
    test = examples[(examples["cutoff_at"] == AS_OF - pd.Timedelta(days=7)) & examples["is_mailed_7d"]]
    scores = predict(click_model, test, threads=THREADS)
    observed, predicted = calibration_curve(test["clicked_7d"], scores, n_bins=10, strategy="quantile")
    ours = calibration_table(test["clicked_7d"].to_numpy(dtype=float), scores)
    np.testing.assert_allclose([row["observed"] for row in ours], observed, rtol=1e-12)
    np.testing.assert_allclose([row["predicted"] for row in ours], predicted, rtol=1e-12)


def test_lift_is_highest_in_the_top_decile(click_model):
    lift = click_model.metrics["model"]["lift"]
    assert [row["decile"] for row in lift] == list(range(1, 11))
    assert sum(row["count"] for row in lift) == click_model.metrics["test_rows"]
    assert sum(round(row["rate"] * row["count"]) for row in lift) == click_model.metrics["test_positives"]
    assert lift[0]["lift"] > 2 > 0.5 > lift[-1]["lift"]
    assert lift[0]["lift"] > click_model.metrics["baseline"]["lift"][0]["lift"]


def test_conversion_is_modelled_over_every_customer(examples):
    trained = train_model(examples, "converted_7d", threads=THREADS)
    test = examples[examples["cutoff_at"] == AS_OF - pd.Timedelta(days=7)]
    assert trained.metrics["test_rows"] == len(test)  # not only the mailed ones
    assert trained.metrics["test_positives"] == int(test["converted_7d"].sum())
    assert trained.params["population"] == "all" and trained.label == "converted_7d"
    assert trained.metrics["model"]["roc_auc"] > 0.6
    assert MODELS == {"click_7d": ("clicked_7d", True), "converted_7d": ("converted_7d", False)}


def test_the_time_split_keeps_cutoffs_apart_and_labels_complete(examples):
    examples = examples.copy()
    first = AS_OF - pd.Timedelta(days=35)
    # A few rows of an old cutoff whose labels are not complete: they stay out like the newest cutoff does.
    incomplete = examples.index[examples["cutoff_at"] == first][:10]
    examples.loc[incomplete, "is_label_complete"] = False

    split = time_split(examples)

    cutoffs = [set(frame["cutoff_at"]) for frame in (split.train, split.calibration, split.test)]
    assert cutoffs == [{first, AS_OF - pd.Timedelta(days=28), AS_OF - pd.Timedelta(days=21)},
                       {AS_OF - pd.Timedelta(days=14)}, {AS_OF - pd.Timedelta(days=7)}]
    assert (split.train_from, split.train_to) == (first, AS_OF - pd.Timedelta(days=21))
    assert split.calibration_cutoff == AS_OF - pd.Timedelta(days=14)
    assert split.test_cutoff == AS_OF - pd.Timedelta(days=7)
    for frame in (split.train, split.calibration, split.test):
        assert frame["is_label_complete"].all()
    kept = set(zip(split.train["customer_id"], split.train["cutoff_at"]))
    assert not kept & set(zip(examples.loc[incomplete, "customer_id"], examples.loc[incomplete, "cutoff_at"]))
    assert len(split.train) == 3 * 5_000 - 10


def test_fewer_than_three_complete_cutoffs_is_refused(examples):
    two = examples[examples["cutoff_at"] >= AS_OF - pd.Timedelta(days=14)]  # 2 complete cutoffs + the newest
    message = "needs at least 3 label-complete weekly cutoffs, found 2; build more history " \
              "(var propensity_training_weeks)"
    with pytest.raises(ValueError, match=re.escape(message)):
        time_split(two)
    with pytest.raises(ValueError, match="found 2"):
        train_model(two, "click_7d", threads=THREADS)


@pytest.mark.parametrize(("cutoffs_days_back", "which"), [((7, 14, 21, 28, 35), "training set"),
                                                           ((7,), "test set")])
def test_a_label_with_one_class_is_refused(examples, cutoffs_days_back, which):
    examples = examples.copy()
    examples.loc[examples["cutoff_at"].isin([AS_OF - pd.Timedelta(days=d) for d in cutoffs_days_back]),
                 "clicked_7d"] = False
    with pytest.raises(ValueError, match=rf"click_7d: the {which} .* has only one class of clicked_7d \(all false\)"):
        train_model(examples, "click_7d", threads=THREADS)


def test_an_unknown_model_name_is_refused(examples):
    with pytest.raises(ValueError, match="unknown propensity model 'opened_7d'; known models: click_7d, converted_7d"):
        train_model(examples, "opened_7d")


def test_a_saved_model_loads_only_unchanged(click_model, examples, tmp_path):
    path = tmp_path / "models" / "click_7d" / "v1.joblib"
    sha256 = save_model(click_model, path)
    frame = examples.sample(500, random_state=1)

    loaded = load_model(path, sha256)

    np.testing.assert_array_equal(predict(loaded, frame, threads=THREADS), predict(click_model, frame, threads=THREADS))
    np.testing.assert_array_equal(predict_baseline(loaded, frame, threads=THREADS),
                                  predict_baseline(click_model, frame, threads=THREADS))
    assert (loaded.metrics, loaded.params, loaded.test_cutoff) == (click_model.metrics, click_model.params,
                                                                   click_model.test_cutoff)

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"refusing to load the propensity model {path}"):
        load_model(path, sha256)


def test_predictions_are_probabilities_and_handle_missing_features(click_model, examples):
    frame = examples.head(200).copy()
    frame[list(FEATURES)] = np.nan  # a brand-new customer: nothing known
    scores = predict(click_model, frame, threads=THREADS)
    assert scores.shape == (200,) and np.all((scores > 0) & (scores < 1))
    assert len(set(scores)) == 1  # identical rows, identical scores


def test_the_data_fingerprint_depends_on_the_data_not_its_order(examples):
    fingerprint = data_fingerprint(examples)
    shuffled = examples.sample(frac=1.0, random_state=3)[list(reversed(examples.columns))].assign(extra=1)
    assert data_fingerprint(shuffled) == fingerprint
    # The same numbers in another dtype (DuckDB and PostgreSQL return different ones) are the same data.
    assert data_fingerprint(examples.astype({"delivered_90d": "float64", "tenure_days": "Int64"})) == fingerprint

    flipped = examples.copy()
    row = flipped.index[flipped["is_label_complete"]][123]
    flipped.loc[row, "clicked_7d"] = not flipped.loc[row, "clicked_7d"]
    assert data_fingerprint(flipped) != fingerprint

    unscored = examples.copy()  # rows whose labels are not complete are not training data
    row = unscored.index[~unscored["is_label_complete"]][0]
    unscored.loc[row, "cart_adds_7d"] += 1
    assert data_fingerprint(unscored) == fingerprint


def test_the_training_cap_is_a_deterministic_hash_sample(examples):
    capped = time_split(examples, max_train_rows=1_000)
    again = time_split(examples.sample(frac=1.0, random_state=5), max_train_rows=1_000)

    keys = list(zip(capped.train["customer_id"], capped.train["cutoff_at"]))
    assert len(keys) == 1_000
    assert keys == list(zip(again.train["customer_id"], again.train["cutoff_at"]))
    # A sample across customers and cutoffs, not the first rows.
    assert capped.train["cutoff_at"].nunique() == 3 and capped.train["customer_id"].nunique() > 900
    assert capped.train["customer_id"].max() > "c04000"
    # Only training is capped.
    assert (len(capped.calibration), len(capped.test)) == (5_000, 5_000)
    assert len(time_split(examples).train) == 15_000
