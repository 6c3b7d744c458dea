"""Serving the propensity models on the session sample, both engines: scores from the serving version and a
canary (each customer served by exactly one), marts.customer_propensity and marts.propensity_online_metrics
built by dbt from them, and a campaign's audience filter leaving out the lowest decile."""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from journey_helpers import renderer
from sklearn.metrics import roc_auc_score

from dagster_project.personalization.campaigns import campaigns_from_manifest
from dagster_project.personalization.messages_step import render_campaign_messages
from dagster_project.predictive import registry
from dagster_project.predictive.audience import LOW_PROPENSITY
from dagster_project.predictive.propensity import MODELS, predict, save_model, train_model
from dagster_project.predictive.scoring import is_canary_customer, load_version, score_latest_cutoff
from dagster_project.predictive.training import read_examples
from dagster_project.warehouse import Warehouse

from conftest import _copy_warehouse
from dbt_runner import dbt

NOW = datetime(2026, 11, 2, 6, 40)


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def scored(request, built_templates, prepared_dbt, tmp_path_factory):
    """A copy of the session's campaigned sample, once per engine for the module (the tests only add to it).
    click_7d: version 1 serves, version 2 (trained on half the rows) is the canary; converted_7d: version 1
    serves. Scored at the latest cutoff and, as a backfill, at the two before it; dbt built on top."""
    cleanup = ExitStack()
    request.addfinalizer(cleanup.close)
    tmp_path = tmp_path_factory.mktemp(f"scored-{request.param}")
    settings = _copy_warehouse(built_templates(request.param, "campaigns").settings, tmp_path / "data", request,
                               cleanup)
    warehouse = Warehouse(settings)
    with warehouse.connect() as conn:
        examples = read_examples(conn)
    plan = {"click_7d": [(registry.SERVING, None), (registry.CANARY, len(examples) // 2)],
            "converted_7d": [(registry.SERVING, None)]}
    for model_name, versions in plan.items():
        for number, (status, max_rows) in enumerate(versions, start=1):
            trained = train_model(examples, model_name, threads=1, **({"max_train_rows": max_rows} if max_rows else {}))
            path = tmp_path / "models" / f"{model_name}-{number}.joblib"
            with warehouse.connect() as conn:
                registry.register(conn, registry.ModelVersion(
                    model_name=model_name, version=number, status=status, features=trained.features,
                    params=trained.params, metrics=trained.metrics, train_from=trained.train_from,
                    train_to=trained.train_to, calibration_cutoff=trained.calibration_cutoff,
                    test_cutoff=trained.test_cutoff, data_fingerprint="sample", code_version=f"test-{number}",
                    artifact_path=str(path), artifact_sha256=save_model(trained, path), trained_at=NOW))
    cutoffs = sorted(examples["cutoff_at"].unique(), reverse=True)
    for cutoff in cutoffs[:3]:
        score_latest_cutoff(warehouse, NOW, threads=1, progress=lambda _: None,
                            cutoff_at=pd.Timestamp(cutoff).to_pydatetime())
    dbt(settings, "build", "--select", "stg_ops__propensity_scores+")
    return warehouse, examples, [pd.Timestamp(c).to_pydatetime() for c in cutoffs[:3]]


def frame(conn, sql: str, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(conn.fetchall(sql), columns=columns)


def test_each_customer_is_served_by_one_version_and_every_version_scores_everyone(scored):
    warehouse, examples, (latest, *_) = scored
    with warehouse.connect() as conn:
        scores = frame(conn, "SELECT customer_id, model_name, version, cutoff_at, probability, is_served "
                             "FROM ops.propensity_scores", ["customer_id", "model_name", "version", "cutoff_at",
                                                            "probability", "is_served"])
        versions = {(v.model_name, v.version): v for name in MODELS for v in registry.versions(conn, name)}
    at_latest = examples[examples["cutoff_at"] == latest].sort_values("customer_id")
    for (model_name, number), version in versions.items():
        mine = scores[(scores.model_name == model_name) & (scores.version == number) & (scores.cutoff_at == latest)]
        mine = mine.sort_values("customer_id")
        assert list(mine.customer_id) == list(at_latest.customer_id)
        expected = predict(load_version(version), at_latest, threads=1)
        np.testing.assert_array_equal(mine.probability.to_numpy(), expected)  # every bit, through the warehouse
    click = scores[(scores.model_name == "click_7d") & (scores.cutoff_at == latest)]
    served = click[click.is_served.astype(bool)]
    assert served.customer_id.is_unique and set(served.customer_id) == set(at_latest.customer_id)
    canary = set(served[served.version == 2].customer_id)
    assert canary == {c for c in at_latest.customer_id if is_canary_customer("click_7d", c)}
    assert 0.1 < len(canary) / len(served) < 0.3
    conversion = scores[scores.model_name == "converted_7d"]
    assert conversion.is_served.astype(bool).all()
    # Scoring the same cutoff again writes nothing.
    again = score_latest_cutoff(warehouse, NOW + timedelta(hours=1), threads=1, progress=lambda _: None)
    assert [written for _, _, _, written in again.versions["click_7d"]] == [0, 0]


def test_customer_propensity_holds_the_served_probability_and_even_deciles(scored):
    warehouse, _, (latest, *_) = scored
    with warehouse.connect() as conn:
        mart = frame(conn, "SELECT customer_id, p_click_7d, click_decile, click_model_version, click_scored_at, "
                           "p_convert_7d, convert_decile FROM marts.customer_propensity",
                     ["customer_id", "p", "decile", "version", "scored_at", "p_convert", "convert_decile"])
        served = dict(conn.fetchall("SELECT customer_id, probability FROM ops.propensity_scores WHERE is_served "
                                    "AND model_name = 'click_7d' AND cutoff_at = ?", [latest]))
    assert mart.customer_id.is_unique and set(mart.customer_id) == set(served)
    assert (mart.p == mart.customer_id.map(served)).all() and (mart.scored_at == latest).all()
    assert set(mart[mart.version == 2].customer_id) == {c for c in served if is_canary_customer("click_7d", c)}
    sizes = mart.groupby("decile").size()
    assert list(sizes.index) == list(range(1, 11)) and sizes.max() - sizes.min() <= 1
    by_decile = mart.groupby("decile").p.agg(["min", "max"])
    assert (by_decile["max"].to_numpy()[:-1] <= by_decile["min"].to_numpy()[1:]).all()  # 1 lowest, 10 highest
    assert mart.p_convert.notna().all() and set(mart.convert_decile) == set(range(1, 11))


def test_online_metrics_are_the_auc_of_each_version_on_the_labels_of_the_closed_window(scored):
    warehouse, examples, (latest, closed, earlier) = scored
    with warehouse.connect() as conn:
        metrics = frame(conn, "SELECT model_name, model_version, cutoff_at, population, customers, positives, auc "
                              "FROM marts.propensity_online_metrics",
                        ["model_name", "version", "cutoff_at", "population", "customers", "positives", "auc"])
        scores = frame(conn, "SELECT customer_id, model_name, version, cutoff_at, probability, is_served "
                             "FROM ops.propensity_scores", ["customer_id", "model_name", "version", "cutoff_at",
                                                            "probability", "is_served"])
    assert set(metrics.cutoff_at) == {closed, earlier}  # the latest window has not closed
    labels = examples.set_index(["cutoff_at", "customer_id"])
    checked = 0
    for row in metrics.itertuples():
        label, mailed_only = MODELS[row.model_name]
        mine = scores[(scores.model_name == row.model_name) & (scores.version == row.version)
                      & (scores.cutoff_at == row.cutoff_at)]
        if row.population == "served":
            mine = mine[mine.is_served.astype(bool)]
        outcome = labels.loc[[(row.cutoff_at, c) for c in mine.customer_id]]  # int_propensity_examples' labels
        population = outcome["is_mailed_7d"].astype(bool).to_numpy() if mailed_only else np.ones(len(mine), bool)
        y = outcome[label].astype(int).to_numpy()[population]
        assert (row.customers, row.positives) == (population.sum(), y.sum()), row
        if 0 < y.sum() < len(y):
            assert row.auc == pytest.approx(roc_auc_score(y, mine.probability.to_numpy()[population]), abs=1e-12)
            checked += 1
    assert checked >= 4


def test_a_campaign_leaves_out_its_lowest_decile_and_records_why(scored, prepared_dbt):
    warehouse, _, _ = scored
    [weekly] = [c for c in campaigns_from_manifest(json.loads(prepared_dbt.manifest_path.read_text()))
                if c.campaign_id == "weekly_picks"]
    assert weekly.audience.model == "click_7d" and weekly.audience.value == 1
    reference = warehouse.settings.reference_time() + timedelta(days=7)  # the next weekly run
    report = render_campaign_messages(warehouse, weekly, renderer(), reference)
    with warehouse.connect() as conn:
        eligible = {row[0] for row in conn.fetchall(f"SELECT customer_id FROM {weekly.relation} WHERE is_eligible")}
        bottom = {row[0] for row in conn.fetchall(
            "SELECT customer_id FROM marts.customer_propensity WHERE click_decile = 1")}
        left_out = {row[0] for row in conn.fetchall(
            "SELECT customer_id FROM ops.campaign_suppressions WHERE campaign_id = 'weekly_picks' AND run_key = ? "
            "AND reason = ?", [report.run_key, LOW_PROPENSITY])}
        assigned = {row[0] for row in conn.fetchall(
            "SELECT customer_id FROM ops.campaign_assignments WHERE campaign_id = 'weekly_picks' AND run_key = ?",
            [report.run_key])}
    assert left_out == eligible & bottom and left_out
    assert not left_out & assigned  # the experiment's arms split the narrowed audience
    assert report.suppressed[LOW_PROPENSITY] == len(left_out) == len(report.audience_filter.excluded)
    assert report.audience == len(eligible) - len(left_out)
