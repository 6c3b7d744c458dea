"""The dashboards as files: what they say before any data, and that no value from the warehouse can
inject markup into them (campaign, variant and segment names come from people and from dbt models).
The browser test (tests/test_ui_browser.py) opens them on a demo's data."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dagster_project.analytics.dashboards import DASHBOARDS, EMAIL_COLUMNS, marketing, write_dashboards
from dagster_project.analytics.page import render
from dagster_project.settings import Settings
from dagster_project.warehouse import Warehouse

NAMES = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=40)


def test_before_any_run_every_dashboard_says_why_it_is_empty(tmp_path):
    with Warehouse(Settings(data_dir=tmp_path / "data")).connect() as conn:
        written = write_dashboards(conn, tmp_path / "dashboards", daily_budget_usd=2.5)
    assert [item.path.name for item in written] == [f"{name}.html" for name in DASHBOARDS]
    for item in written:
        text = item.path.read_text(encoding="utf-8")
        assert item.dashboard.charts == 0 and 'data-charts="0"' in text
        assert 'class="empty"' in text, item.path.name  # a note, not a blank chart
        assert "Plotly" in text and "<script src=" not in text  # the library is in the file, fetched from nowhere
    assert written[0].dashboard.numbers["sends"] == 0
    assert written[3].dashboard.figures["daily budget"] == "$2.50"


def _one_day_of(conn, campaign: str, variant: str, segment: str) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS marts")
    conn.execute("DROP TABLE IF EXISTS marts.metrics_email_daily")
    conn.execute("CREATE TABLE marts.metrics_email_daily (sent_date DATE, campaign_id VARCHAR, variant_id VARCHAR, "
                 "segment_key VARCHAR, sends INTEGER, deliveries INTEGER, human_opens INTEGER, clicks INTEGER, "
                 "unsubscribes INTEGER, hard_bounces INTEGER, soft_bounces INTEGER, spam_complaints INTEGER, "
                 "conversions INTEGER, revenue DECIMAL(16, 2))")
    conn.execute(f"INSERT INTO marts.metrics_email_daily ({', '.join(EMAIL_COLUMNS)}) VALUES "
                 "(DATE '2026-11-01', ?, ?, ?, 10, 9, 4, 2, 0, 1, 0, 0, 1, 12.50)", [campaign, variant, segment])


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(campaign=NAMES, variant=NAMES, segment=NAMES)
def test_no_name_from_the_warehouse_becomes_markup(campaign, variant, segment):
    with tempfile.TemporaryDirectory() as folder, \
            Warehouse(Settings(data_dir=Path(folder))).connect() as conn:
        _one_day_of(conn, "weekly", "a", "vip")
        baseline = render(marketing(conn), [], "now")
        _one_day_of(conn, campaign, variant, segment)
        dashboard = marketing(conn)
        page = render(dashboard, [], "now")
    assert dashboard.charts == 3 and dashboard.numbers["sends"] == 10
    for tag in ("<script", "<img", "<svg", "<iframe", "</table", "<tr"):
        assert page.count(tag) == baseline.count(tag), tag
