"""Suite files, the volume band and masking: pure unit tests, no warehouse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dagster_project.quality.masking import mask_value
from dagster_project.quality.suites import SuiteError, load_suite, load_suites, load_templates
from dagster_project.quality.volume import VolumeBand
from dagster_project.settings import project_root

EXPECTATIONS = project_root() / "expectations"
GATED = {
    ("raw", "cdp_events"), ("raw", "crm_contacts"), ("raw", "consent_events"), ("raw", "products"),
    ("raw", "esp_events"), ("marts", "dim_customers"), ("marts", "customer_features"),
    ("marts", "send_eligibility"),
}


def test_every_gated_asset_has_exactly_one_suite():
    suites = load_suites(EXPECTATIONS)
    assert {suite.asset for suite in suites} == GATED
    for suite in suites:
        assert suite.expectations, suite.path
        assert suite.key_columns, f"{suite.path}: failing rows need key columns to be found"
        assert set(suite.key_columns) <= set(suite.referenced_columns())


def test_campaign_templates_are_made_concrete_per_campaign():
    templates = {t.name: t for t in load_templates(EXPECTATIONS)}
    assert set(templates) == {"campaign_audience", "campaign_messages"}
    audience = templates["campaign_audience"].for_campaign("weekly", "marts.campaign_weekly", ("marts", "campaign_weekly"))
    assert audience.asset == ("marts", "campaign_weekly") and audience.name == "campaign_audience__weekly"
    assert "from marts.campaign_weekly as audience" in audience.query and "{" not in audience.query
    messages = templates["campaign_messages"].for_campaign("weekly", "marts.campaign_weekly", ("marts", "x"))
    assert messages.asset == ("campaigns", "weekly", "messages") and "campaign_id = 'weekly'" in messages.query
    assert messages.uses_brand and not audience.uses_brand
    assert {"html_body", "text_body"} <= messages.pii_columns  # bodies never shown in the UI


def test_severity_comes_from_the_suite_file():
    suite = load_suite(EXPECTATIONS / "raw_crm_contacts.json")
    severities = {config.type + ":" + str(config.kwargs.get("column")): config.severity.value for config in suite.expectations}
    assert severities["expect_column_values_to_be_in_set:lifecycle_stage"] == "warning"
    assert severities["expect_column_values_to_not_be_null:contact_id"] == "critical"


def test_batch_reads_only_the_columns_the_suite_uses():
    suite = load_suite(EXPECTATIONS / "raw_cdp_events.json")
    columns = suite.referenced_columns()
    assert "traits_email" in columns and "event_type" in columns and "anonymous_id" in columns
    assert "properties" not in columns and "context" not in columns  # wide JSON stays in the warehouse


def _write(directory: Path, name: str, document) -> Path:
    path = directory / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_bad_suite_files_are_named_with_the_fix(tmp_path):
    with pytest.raises(SuiteError, match="broken.json: not valid JSON"):
        load_suite(_write(tmp_path, "broken.json", "{"))
    with pytest.raises(SuiteError, match="meta.mailroom is missing"):
        load_suite(_write(tmp_path, "nometa.json", {"name": "x", "expectations": []}))
    with pytest.raises(SuiteError, match=r"expectation #1 \(expect_column_to_be_fancy\) is invalid"):
        load_suite(_write(tmp_path, "unknown.json", {
            "expectations": [{"type": "expect_column_to_be_fancy", "kwargs": {"column": "a"}}],
            "meta": {"mailroom": {"asset": "raw/x", "table": "raw.x"}},
        }))
    with pytest.raises(SuiteError, match="volume needs timestamp_column"):
        load_suite(_write(tmp_path, "volume.json", {
            "expectations": [], "meta": {"mailroom": {"asset": "raw/x", "table": "raw.x", "volume": {"days": 7}}},
        }))


def test_two_suites_for_one_asset_are_refused(tmp_path):
    shutil.copy(EXPECTATIONS / "dim_customers.json", tmp_path / "a.json")
    shutil.copy(EXPECTATIONS / "dim_customers.json", tmp_path / "b.json")
    with pytest.raises(SuiteError, match="both gate marts/dim_customers"):
        load_suites(tmp_path)


@pytest.mark.parametrize(
    ("windows", "passed"),
    [
        ([100, 100, 90, 110, 100], True),
        ([250, 100, 90, 110, 100], True),  # growth within 3x
        ([20, 100, 90, 110, 100], False),  # a sudden drop
        ([400, 100, 90, 110, 100], False),  # a sudden spike
        ([0, 100, 90, 110, 100], False),  # the feed stopped
        ([5, 0, 0, 0, 0], True),  # no history yet: nothing to compare with
        ([100, 100, 0, 0, 0], True),  # a source two weeks old compares with its own two weeks
        ([0, 0, 0, 100, 100], False),  # silent for three weeks: gaps count
    ],
)
def test_volume_band(windows, passed):
    band = VolumeBand(timestamp_column="event_at", window_days=7, history_windows=4, min_ratio=0.33, max_ratio=3.0)
    result = band.evaluate(windows)
    assert result.passed is passed
    assert f"{windows[0]:,} rows in the latest 7 days" in result.summary


def test_volume_windows_end_at_the_reference_time():
    from datetime import datetime

    band = VolumeBand(timestamp_column="t", window_days=7, history_windows=2)
    bounds = band.window_bounds(datetime(2026, 11, 1))
    assert bounds[0] == (datetime(2026, 10, 25), datetime(2026, 11, 1))
    assert bounds[2] == (datetime(2026, 10, 11), datetime(2026, 10, 18))


def test_masking_hides_pii_but_keeps_enough_to_find_the_row():
    assert mask_value("jane.doe@example.com") == "j***@example.com"
    assert mask_value("+14155550123") == "+***"
    assert mask_value(None) == "null"
    assert "jane" not in mask_value("jane")
