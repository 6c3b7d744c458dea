"""`make demo`: sample data preparation and the printed summary."""

from __future__ import annotations

import re
from datetime import date

import pytest

from dagster_project.demo import main, prepare_sample_data
from dagster_project.settings import Settings

from conftest import settings_environment


def test_sample_is_generated_once_and_never_mixed_with_other_data(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert "generated 50 customers" in prepare_sample_data(settings, 50, 3, date(2026, 11, 1))
    assert "reusing" in prepare_sample_data(settings, 50, 3, None)  # any day later: same sample
    with pytest.raises(SystemExit, match="different sample"):
        prepare_sample_data(settings, 50, 4, None)

    foreign = Settings(data_dir=tmp_path / "real")
    (foreign.landing_dir / "cdp").mkdir(parents=True)
    (foreign.landing_dir / "cdp" / "export.jsonl").write_text("{}\n")
    with pytest.raises(SystemExit, match="not Mailroom sample data"):
        prepare_sample_data(foreign, 50, 3, None)


def test_demo_runs_the_pipeline_and_prints_tables_and_stages(tmp_path, monkeypatch, capsys, prepared_dbt):
    settings = Settings(data_dir=tmp_path)
    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["--customers", "120", "--seed", "5", "--as-of", "2026-11-01"]) == 0
    out = capsys.readouterr().out
    assert "succeeded" in out and "Seconds per stage" in out
    for table in ("raw.cdp_events", "marts.dim_customers", "marts.send_eligibility"):
        assert table in out
    assert "Quarantined rows" in out
    assert "Quality gates:" in out and "gx_send_eligibility" in out and "BLOCKED" not in out
    assert "time rules evaluated as of 2026-11-01" in out
    # Both campaigns are written offline by the rule-based writer and rendered.
    for campaign in ("weekly_picks", "cart_abandonment"):
        assert re.search(rf"{campaign}\s+content\s+[1-9][\d,]* units \(0 by the LLM, \$0.0000\)", out), out
        assert re.search(rf"{campaign}\s+messages\s+[1-9][\d,]* rendered", out), out
        # A readout per campaign after the engagement loop.
        assert re.search(rf"  {campaign} run 2026-11-01\n    variants    units a \d+, b \d+; SRM p=", out), out
    # The weekly campaign's roll-out looked: on 120 customers its arms stay below the minimum units,
    # and the deadline (two days after the sample's day) has passed, so the remainder gets the control.
    assert re.search(r"weekly_picks roll-out: 1 run\(s\) decided now, 0 waiting, [1-9]\d* remainder", out), out
    assert re.search(r"a \(deadline\): no winner by the deadline .* \(fewer than 100 units in a, b\)", out), out
