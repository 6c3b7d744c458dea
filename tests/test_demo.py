"""`make demo`: sample data preparation and the code location. (The demo run itself, its printed story
and the UI on the instance it leaves, is tested once in test_ui_browser.py.)"""

from __future__ import annotations

from datetime import date

import pytest

from dagster_project.demo import prepare_sample_data
from dagster_project.settings import Settings


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


def test_the_demo_location_is_the_one_make_dev_loads():
    import yaml

    from dagster_project.code_location_runs import DEFINITIONS_MODULE, LOCATION_NAME, PROJECT_ROOT

    [entry] = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]
    assert entry["python_module"]["location_name"] == LOCATION_NAME
    assert entry["python_module"]["module_name"] == DEFINITIONS_MODULE
