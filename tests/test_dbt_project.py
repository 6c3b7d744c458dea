"""The dbt project follows the conventions analytics engineers rely on (read from the manifest)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def manifest(prepared_dbt) -> dict:
    return json.loads(prepared_dbt.manifest_path.read_text())


def models(manifest: dict, layer: str) -> list[dict]:
    return [
        node for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["fqn"][1] == layer
    ]


def test_every_mart_and_mart_column_is_described_and_contracted(manifest):
    marts = models(manifest, "marts")
    assert {"customer_identities", "dim_customers", "customer_features", "customer_segments",
            "product_recommendations", "consent_status", "send_eligibility"} <= {m["name"] for m in marts}
    for mart in marts:
        assert mart["description"], mart["name"]
        assert mart["config"]["contract"]["enforced"], mart["name"]
        assert mart["columns"], mart["name"]
        for name, column in mart["columns"].items():
            assert column.get("description"), f"{mart['name']}.{name}"
            assert column.get("data_type"), f"{mart['name']}.{name}"


def test_only_staging_models_read_sources(manifest):
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model":
            continue
        reads_source = any(dep.startswith("source.") for dep in node["depends_on"]["nodes"])
        assert not reads_source or node["fqn"][1] == "staging", node["name"]
        if node["fqn"][1] == "staging":
            assert node["name"].startswith("stg_") and "__" in node["name"], node["name"]


def test_eligibility_rules_have_unit_tests(manifest):
    names = {test["name"] for test in manifest.get("unit_tests", {}).values()}
    assert {"send_eligibility_applies_each_jurisdiction_rule", "send_eligibility_casl_implied_consent_expires",
            "dim_customers_survivorship", "identity_observations_normalize_emails_and_phones"} <= names


def test_every_metrics_mart_has_unit_tests_and_their_names_fit_postgres(manifest):
    """dbt names a unit test's temporary relation after the test: PostgreSQL cuts identifiers at 63
    characters and dbt refuses a longer name at run time, on PostgreSQL only."""
    unit_tests = list(manifest.get("unit_tests", {}).values())
    assert all(len(test["name"]) <= 63 for test in unit_tests), [t["name"] for t in unit_tests if len(t["name"]) > 63]
    tested = {test["model"] for test in unit_tests}
    assert {"email_message_outcomes", "metrics_email_daily", "metrics_engagement_decay",
            "metrics_suppressions_daily"} <= tested
