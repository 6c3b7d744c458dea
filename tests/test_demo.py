"""`make demo`: sample data preparation and the printed summary."""

from __future__ import annotations

import re
import shutil
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


def test_demo_tells_its_story_and_leaves_runs_of_the_code_location(tmp_path, monkeypatch, capsys, prepared_dbt):
    import dagster as dg

    from dagster_project.code_location_runs import LOCATION_NAME, PROJECT_ROOT

    settings = Settings(data_dir=tmp_path)
    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "config" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["--customers", "120", "--seed", "5", "--as-of", "2026-11-01"]) == 0
    out = capsys.readouterr().out
    assert "time rules evaluated as of 2026-11-01" in out
    # A story, not a log: Dagster's and dbt's output went to the log file it names.
    [log] = (tmp_path / "logs").glob("demo-*.log")
    assert str(log) in out and "dbt" in log.read_text() and "raw.cdp_events" in log.read_text()
    assert len(out.splitlines()) < 150 and " - DEBUG - " not in out and "Concurrency" not in out
    # Each run with its own seconds per stage (the weekly run's dbt step does not overwrite the daily's).
    assert re.search(r"Daily pipeline: .*\n  run \w{8} succeeded in [\d.]+ s", out), out
    assert len(re.findall(r"    dbt build +[\d.]+ s  models and seeds built [1-9]", out)) == 3, out
    assert re.search(r"raw/cdp_events +[\d.]+ s  [1-9][\d,]* rows loaded, "
                     r"\d+ quarantined \([1-9][\d,]* in the table\)", out)
    assert "Quality gates" in out and "gx_send_eligibility" in out and "BLOCKED" not in out
    assert re.search(r"dbt tests \(\d+\) +[1-9]\d* passed", out), out
    # Both campaigns are written offline by the rule-based writer and rendered.
    for campaign in ("weekly_picks", "cart_abandonment"):
        assert re.search(rf"{campaign}_content +[\d.]+ s  [1-9][\d,]* content units "
                         r"\(0 by the LLM, \$0.0000\)", out), out
        assert re.search(rf"{campaign}_messages +[\d.]+ s  [1-9][\d,]* rendered", out), out
        # A readout per campaign after the engagement loop.
        assert re.search(rf"  {campaign} run 2026-11-01\n    variants    units a \d+, b \d+; SRM p=", out), out
    assert "quarantined (kept in raw.quarantine" in out and "raw.cdp_events" in out
    # The weekly campaign's roll-out looked: on 120 customers its arms stay below the minimum units,
    # and the deadline (two days after the sample's day) has passed, so the remainder gets the control.
    assert re.search(r"weekly_picks_rollout +[\d.]+ s  1 run\(s\) decided now, 0 waiting, [1-9]\d* remainder", out), out
    # It ends finished, pointing at the five dashboards the last daily run wrote.
    assert "every asset is up to date" in out, out
    dashboards = tmp_path / "dashboards"
    assert f"Dashboards     {dashboards}/{{marketing,ops,content,cost,compliance}}.html" in out, out
    assert all((dashboards / f"{name}.html").stat().st_size > 1_000_000 for name in ("marketing", "compliance"))

    # The runs belong to the code location `make dev` loads, as if launched from its UI.
    runs = dg.DagsterInstance.get().get_runs()
    assert {run.job_name for run in runs} >= {"daily_campaign_pipeline", "weekly_picks_campaign",
                                              "weekly_picks_rollout"}
    for run in runs:
        assert run.remote_job_origin.location_name == LOCATION_NAME
        assert run.tags_for_storage()[".dagster/repository"] == f"__repository__@{LOCATION_NAME}"


def test_the_demo_location_is_the_one_make_dev_loads():
    import yaml

    from dagster_project.code_location_runs import DEFINITIONS_MODULE, LOCATION_NAME, PROJECT_ROOT

    [entry] = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]
    assert entry["python_module"]["location_name"] == LOCATION_NAME
    assert entry["python_module"]["module_name"] == DEFINITIONS_MODULE
