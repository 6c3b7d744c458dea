"""The propensity models' roll-out: the rules on their edges (pure), and the status changes and decisions
they make in a real warehouse, once, even when two runs decide at the same moment.

The warehouse tests write marts.propensity_online_metrics rows by hand (the smallest state that can fail
a rule); test_propensity_serving.py checks that dbt computes that mart from real scores and events."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from dagster_project.predictive import registry
from dagster_project.predictive.rollout import decisions, run_rollout
from dagster_project.predictive.rollout_rules import (
    PROMOTE,
    ROLL_BACK,
    WAIT,
    ArmMetric,
    WindowMetric,
    pooled,
    verdict,
)
from dagster_project.settings import project_root

from conftest import settings_environment

NOW = datetime(2026, 11, 30, 7, 0)


def arm(auc: float, positives: int = 30, windows: int = 1) -> ArmMetric:
    return ArmMetric(windows=windows, customers=10 * positives, positives=positives, auc=auc)


@pytest.mark.parametrize(("serving", "canary", "positives", "expected"), [
    (0.70, 0.664, 30, ROLL_BACK),  # 0.664 < 0.95 x 0.70 = 0.665
    (0.70, 0.666, 30, WAIT),  # within 5%, one window: not yet promoted either
    (0.70, 0.600, 29, WAIT),  # far worse, but 29 positives are too few to say so
])
def test_the_rollback_rule_on_its_edges(serving, canary, positives, expected):
    assert verdict(arm(canary, positives), arm(serving, 30)).action == expected


def test_a_canary_not_worse_after_two_windows_is_promoted_and_one_a_little_worse_for_four_is_rolled_back():
    assert verdict(arm(0.696, windows=2), arm(0.70, windows=2)).action == PROMOTE  # within 0.005
    assert verdict(arm(0.694, windows=2), arm(0.70, windows=2)).action == WAIT
    assert verdict(arm(0.694, windows=3), arm(0.70, windows=3)).action == WAIT
    given_up = verdict(arm(0.694, windows=4), arm(0.70, windows=4))
    assert (given_up.action, given_up.rule) == (ROLL_BACK, "not_better_in_time")


def test_a_serving_version_without_evidence_holds_the_canary_back():
    waiting = verdict(arm(0.8, windows=3), ArmMetric(windows=3, customers=100, positives=12, auc=0.7))
    assert waiting.action == WAIT and "serving version has 12 positives" in waiting.reason


def test_windows_pool_by_their_pairs_not_by_count():
    # 10 positives of 100 (900 pairs) at 0.9, 50 of 100 (2,500 pairs) at 0.5
    metric = pooled([WindowMetric(100, 10, 0.9), WindowMetric(100, 50, 0.5), WindowMetric(20, 0, None)])
    assert metric.auc == pytest.approx((900 * 0.9 + 2500 * 0.5) / 3400)
    assert (metric.windows, metric.customers, metric.positives) == (3, 220, 60)
    assert pooled([]).auc is None


# --- in a warehouse ---------------------------------------------------------------------------------

def register(conn, version: int, status: str, model_name: str = "click_7d") -> None:
    registry.register(conn, registry.ModelVersion(
        model_name=model_name, version=version, status=status, features=["clicked_90d"], params={},
        metrics={"model": {"roc_auc": 0.7}, "baseline": {"roc_auc": 0.65}}, train_from=NOW, train_to=NOW,
        calibration_cutoff=NOW, test_cutoff=NOW, data_fingerprint=f"data-{version}", code_version="test",
        artifact_path=f"/nowhere/{version}.joblib", artifact_sha256="0" * 64, trained_at=NOW))


def force_status(conn, version: int, status: str, model_name: str = "click_7d") -> None:
    conn.execute("UPDATE ops.model_registry SET status = ? WHERE model_name = ? AND version = ?",
                 [status, model_name, version])


def write_online_metrics(conn, rows: list[tuple[int, int, str, int, int, float | None]]) -> None:
    """(version, weeks back, population, customers, positives, auc) of click_7d."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS marts")
    conn.execute("CREATE TABLE IF NOT EXISTS marts.propensity_online_metrics (model_name VARCHAR, model_version "
                 "INTEGER, cutoff_at TIMESTAMP, population VARCHAR, customers BIGINT, positives BIGINT, auc FLOAT8)")
    for version, weeks_back, population, customers, positives, auc in rows:
        conn.execute("INSERT INTO marts.propensity_online_metrics VALUES ('click_7d', ?, ?, ?, ?, ?, ?)",
                     [version, NOW - timedelta(weeks=weeks_back), population, customers, positives, auc])


def statuses(conn, model_name: str = "click_7d") -> dict[int, str]:
    return {v.version: v.status for v in registry.versions(conn, model_name)}


def both_arms(weeks_back: int, canary_auc: float, serving_auc: float, canary: int = 3, serving: int = 1):
    return [(canary, weeks_back, "served", 400, 40, canary_auc), (serving, weeks_back, "served", 1600, 160,
                                                                    serving_auc),
            (canary, weeks_back, "all", 2000, 200, canary_auc), (serving, weeks_back, "all", 2000, 200, serving_auc)]


def test_the_newest_candidate_goes_on_trial_and_older_ones_are_superseded(warehouse):
    with warehouse.connect() as conn:
        register(conn, 1, registry.CANDIDATE)  # the first passing version serves at once
        register(conn, 2, registry.CANDIDATE)
        register(conn, 3, registry.CANDIDATE)
        register(conn, 1, registry.CANDIDATE, model_name="converted_7d")
    [click, conversion] = run_rollout(warehouse, NOW)
    with warehouse.connect() as conn:
        assert statuses(conn) == {1: "serving", 2: "retired", 3: "canary"}
        assert statuses(conn, "converted_7d") == {1: "serving"}
        assert [(d.version, d.kind) for d in decisions(conn)] == [(2, "supersede"), (3, "start_canary")]
    assert (click.serving, click.canary, click.verdict) == (1, 3, None)
    assert (conversion.serving, conversion.canary, conversion.decisions) == (1, None, [])
    # Deciding again changes nothing and records nothing twice.
    [again, _] = run_rollout(warehouse, NOW + timedelta(hours=1))
    assert again.decisions == [] and again.verdict.action == WAIT  # no closed window yet
    with warehouse.connect() as conn:
        assert len(decisions(conn)) == 2


def test_a_canary_that_holds_up_for_two_windows_replaces_the_serving_version(warehouse):
    with warehouse.connect() as conn:
        register(conn, 1, registry.CANDIDATE)
        register(conn, 3, registry.CANDIDATE)
        force_status(conn, 3, registry.CANARY)
        write_online_metrics(conn, both_arms(2, 0.71, 0.70) + both_arms(1, 0.69, 0.70)
                             + [(1, 5, "served", 2000, 200, 0.9)])  # before the trial: not counted
    [click, _] = run_rollout(warehouse, NOW)
    assert click.verdict.action == PROMOTE and (click.serving, click.canary) == (3, None)
    assert click.evidence["canary"]["windows"] == 2 and click.evidence["serving"]["positives"] == 320
    assert click.evidence["serving"]["auc"] == pytest.approx(0.70)
    with warehouse.connect() as conn:
        assert statuses(conn) == {1: "retired", 3: "serving"}
        [promotion] = decisions(conn)
    assert (promotion.version, promotion.kind, promotion.rule) == (3, "promote", "not_worse_online")
    assert promotion.evidence["canary"]["auc"] == pytest.approx((0.71 * 40 * 360 + 0.69 * 40 * 360) / (2 * 40 * 360))


def test_a_canary_more_than_five_percent_worse_is_rolled_back_with_its_numbers(warehouse):
    with warehouse.connect() as conn:
        register(conn, 1, registry.CANDIDATE)
        register(conn, 3, registry.CANDIDATE)
        force_status(conn, 3, registry.CANARY)
        register(conn, 4, registry.CANDIDATE)  # trained while 3 was on trial
        write_online_metrics(conn, both_arms(1, 0.60, 0.70))
    [click, _] = run_rollout(warehouse, NOW)
    assert click.verdict.action == ROLL_BACK and (click.serving, click.canary) == (1, 4)
    with warehouse.connect() as conn:
        assert statuses(conn) == {1: "serving", 3: "rolled_back", 4: "canary"}
        rollback, started = decisions(conn)
    assert (rollback.version, rollback.kind, rollback.rule) == (3, "rollback", "worse_online")
    assert "0.600" in rollback.reason and "0.700" in rollback.reason
    assert (started.version, started.kind) == (4, "start_canary")


@pytest.mark.parametrize("warehouse_kind", ["postgres"])
def test_two_rollout_runs_at_once_promote_once(warehouse):
    with warehouse.connect() as conn:
        register(conn, 1, registry.CANDIDATE)
        register(conn, 3, registry.CANDIDATE)
        force_status(conn, 3, registry.CANARY)
        write_online_metrics(conn, both_arms(2, 0.70, 0.70) + both_arms(1, 0.70, 0.70))
    environment = {**settings_environment(warehouse.settings), "PATH": "/usr/bin:/bin"}
    runs = [subprocess.Popen([sys.executable, "-m", "dagster_project.predictive", "rollout"], env=environment,
                             cwd=project_root(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    with warehouse.connect() as conn:
        assert statuses(conn) == {1: "retired", 3: "serving"}
        assert [(d.version, d.kind) for d in decisions(conn)] == [(3, "promote")]
    assert sum("version 3 promote" in output for output in outputs) == 1, outputs
    assert all("click_7d: serving 3, canary None" in output for output in outputs), outputs
