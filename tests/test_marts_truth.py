"""The marts against the sample generator's latent truth: features recover what drove the data."""

from __future__ import annotations

import csv

import pytest

from dagster_project.settings import Settings
from dagster_project.warehouse import Warehouse


@pytest.fixture
def built_sample(built_templates, sample_landing) -> tuple[Settings, dict]:
    settings = built_templates("duckdb").settings  # the session's build, read only
    with open(sample_landing / "truth" / "customers.csv", newline="") as handle:
        truth = {row["user_id"]: row for row in csv.DictReader(handle)}
    return settings, truth


def hour_distance(a: int, b: int) -> int:
    return min(abs(a - b), 24 - abs(a - b))


def test_features_recover_latent_preferences(built_sample):
    settings, truth = built_sample
    with Warehouse(settings).connect() as conn:
        rows = conn.fetchall(
            "SELECT customers.user_id, features.preferred_categories, features.best_send_hour, "
            "features.send_hour_engagements, count(events.message_id) AS product_events "
            "FROM marts.dim_customers AS customers "
            "JOIN marts.customer_features AS features ON features.customer_id = customers.customer_id "
            "LEFT JOIN intermediate.int_cdp_events_resolved AS events "
            "  ON events.customer_id = customers.customer_id AND events.product_category IS NOT NULL "
            "GROUP BY 1, 2, 3, 4"
        )
    active = [r for r in rows if r[0] in truth and r[4] >= 5]
    category_hits = sum(
        truth[user]["favourite_categories"].split("|")[0] in (preferred or "").split("|")
        for user, preferred, *_ in active
    )
    engaged = [r for r in rows if r[0] in truth and r[3] >= 5]
    hour_hits = sum(hour_distance(hour, int(truth[user]["preferred_hour"])) <= 2 for user, _, hour, *_ in engaged)
    category_accuracy = category_hits / len(active)
    hour_accuracy = hour_hits / len(engaged)
    print(f"\nfavourite category in preferred_categories: {category_hits}/{len(active)} = {category_accuracy:.0%}"
          f"\nbest_send_hour within 2 h of the preferred hour: {hour_hits}/{len(engaged)} = {hour_accuracy:.0%}")
    assert len(active) >= 50 and len(engaged) >= 10
    assert category_accuracy >= 0.6
    assert hour_accuracy >= 0.6


def test_every_truth_customer_is_resolved_once_with_their_jurisdiction(built_sample):
    settings, truth = built_sample
    with Warehouse(settings).connect() as conn:
        rows = dict(conn.fetchall("SELECT user_id, jurisdiction FROM marts.dim_customers WHERE user_id IS NOT NULL"))
        counts = conn.fetchall(
            "SELECT user_id, count(*) FROM marts.dim_customers WHERE user_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1"
        )
    assert counts == []
    resolved = [user for user in truth if user in rows]
    assert len(resolved) >= 0.95 * len(truth)
    wrong = [user for user in resolved if rows[user] != truth[user]["jurisdiction"]]
    assert len(wrong) <= 0.02 * len(resolved), wrong[:5]
