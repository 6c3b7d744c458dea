"""Suite files, the volume band and masking: pure unit tests, no warehouse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dagster_project.quality.masking import mask_value
from dagster_project.quality.suites import SuiteError, load_all, load_suite, load_suites, load_templates
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
    audience = templates["campaign_audience"].for_campaign("weekly", "marts.campaign_weekly",
                                                           ("marts", "campaign_weekly"))
    assert audience.asset == ("marts", "campaign_weekly") and audience.name == "campaign_audience__weekly"
    assert "from marts.campaign_weekly as audience" in audience.query and "{" not in audience.query
    messages = templates["campaign_messages"].for_campaign("weekly", "marts.campaign_weekly", ("marts", "x"))
    assert messages.asset == ("campaigns", "weekly", "weekly_messages") and "campaign_id = 'weekly'" in messages.query
    assert messages.uses_brand and not audience.uses_brand
    assert {"html_body", "text_body"} <= messages.pii_columns  # bodies never shown in the UI


def test_severity_comes_from_the_suite_file():
    suite = load_suite(EXPECTATIONS / "raw_crm_contacts.json")
    severities = {config.type + ":" + str(config.kwargs.get("column")): config.severity.value
                  for config in suite.expectations}
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


def _suite(tmp_path: Path, expectations: list[dict]):
    return load_suite(_write(tmp_path, "tiny.json", {
        "name": "tiny", "expectations": expectations,
        "meta": {"mailroom": {"asset": "raw/tiny", "table": "raw.tiny", "key_columns": ["id"]}},
    }))


ALIAS = {"column": {"name": "event_type"}, "operator": "==", "parameter": "alias", "type": "comparison"}


def test_each_expectation_reads_as_what_it_checks_on_which_rows_with_its_note(tmp_path):
    """Two checks on one column read apart; the condition and the note come from the suite file."""
    suite = _suite(tmp_path, [
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "amount", "min_value": 0, "max_value": 100000}},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "amount", "min_value": -10, "max_value": 10.5}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "event_type"}},
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "event_type", "value_set": ["track", "alias"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "previous_id", "row_condition": ALIAS},
         "notes": "Segment spec: an alias call carries previousId."},
        {"type": "expect_column_values_to_match_regex",
         "kwargs": {"column": "email", "regex": "@example\\.org$", "mostly": 0.95,
                    "row_condition": {"column": {"name": "email"}, "is_null": False, "type": "nullity"}},
         "meta": {"notes": "Our own domain."}},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "event_at", "max_value": {"$PARAMETER": "latest_allowed_timestamp"}}},
    ])
    texts = suite.described()
    assert [t.label for t in texts] == [
        "amount between 0 and 100,000",
        "amount between -10 and 10.5",
        "event_type not null",
        "event_type in {track, alias}",
        "previous_id not null",
        "email matches /@example\\.org$/ in at least 95% of rows",
        "event_at <= latest_allowed_timestamp",
    ]
    assert [t.condition for t in texts][4:6] == ["event_type is alias", "email has a value"]
    assert texts[4].note == "Segment spec: an alias call carries previousId." and texts[5].note == "Our own domain."
    assert texts[0].condition is None and texts[0].note is None
    assert texts == load_suite(suite.path).described()  # from the file alone: the same on every run


def test_labels_alike_are_told_apart_by_their_condition_then_by_number(tmp_path):
    track = {**ALIAS, "parameter": "track"}
    suite = _suite(tmp_path, [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name", "row_condition": ALIAS}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name", "row_condition": track}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}, "severity": "critical"},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}, "severity": "warning"},
    ])
    assert [t.label for t in suite.described()] == [
        "name not null, where event_type is alias", "name not null, where event_type is track",
        "id unique (#1)", "id unique (#2)",
    ]


@pytest.mark.parametrize(("condition", "words"), [
    ({"column": {"name": "is_eligible"}, "operator": "==", "parameter": True, "type": "comparison"},
     "is_eligible is true"),
    ({"column": {"name": "orders"}, "operator": ">=", "parameter": 1000, "type": "comparison"},
     "orders is at least 1,000"),
    ({"column": {"name": "anonymous_id"}, "is_null": True, "type": "nullity"}, "anonymous_id has no value"),
    ({"column": {"name": "jurisdiction"}, "operator": "IN", "parameter": ["EU", "UK", "OTHER"], "type": "comparison"},
     "jurisdiction is one of EU, UK or OTHER"),
    ({"column": {"name": "status"}, "operator": "NOT_IN", "parameter": ["opt_out"], "type": "comparison"},
     "status is not opt_out"),
    ({"type": "and", "conditions": [
        {"column": {"name": "is_eligible"}, "operator": "==", "parameter": True, "type": "comparison"},
        {"type": "or", "conditions": [
            {"column": {"name": "jurisdiction"}, "operator": "==", "parameter": "CA", "type": "comparison"},
            {"column": {"name": "email"}, "is_null": False, "type": "nullity"}]}]},
     "is_eligible is true and (jurisdiction is CA or email has a value)"),
    ("event_type == 'alias'", "event_type == 'alias'"),  # a legacy filter string, as written
])
def test_row_conditions_in_words(condition, words):
    from dagster_project.quality.descriptions import condition_text

    assert condition_text(condition) == words


def test_every_suite_reads_for_people():
    """Unique labels in every suite, conditions in words, and a note wherever a condition applies."""
    for suite in load_all(EXPECTATIONS):
        texts = suite.described()
        labels = [text.label for text in texts]
        assert len(set(labels)) == len(labels), (suite.path, labels)
        for config, text in zip(suite.expectations, texts):
            assert not text.label.startswith("expect_"), (suite.path, text)
            if config.kwargs.get("row_condition"):
                assert text.condition and '"type"' not in text.condition, (suite.path, text)  # not JSON
                assert text.note, f"{suite.path}: say why {text.label} applies only where {text.condition}"
