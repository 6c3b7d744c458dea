"""The model registry under concurrency: two training runs started together on PostgreSQL register one
version per model, and both report the same one; the loser's artifact is gone."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dagster_project.settings import project_root
from dagster_project.warehouse import Warehouse

from conftest import settings_environment


@pytest.mark.parametrize("warehouse_kind", ["postgres"])
def test_two_training_runs_at_once_register_one_version_per_model(built_warehouse):
    settings = built_warehouse.settings
    environment = {**settings_environment(settings), "PATH": "/usr/bin:/bin", "OMP_WAIT_POLICY": "PASSIVE"}
    runs = [subprocess.Popen([sys.executable, "-m", "dagster_project.predictive", "train", "--threads", "1"],
                             env=environment, cwd=project_root(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs), "\n".join(outputs)
    with Warehouse(settings).connect() as conn:
        rows = conn.fetchall("SELECT model_name, version, artifact_path FROM ops.model_registry ORDER BY model_name")
    assert [(name, version) for name, version, _ in rows] == [("click_7d", 1), ("converted_7d", 1)]
    for name in ("click_7d", "converted_7d"):
        lines = [line for output in outputs for line in output.splitlines() if line.startswith(f"{name}: version 1 ")]
        assert len(lines) == 2, outputs  # both runs report the one version
        assert sum("trained now" in line for line in lines) == 1, outputs
    artifacts = sorted(path.as_posix() for path in (settings.data_dir / "models").rglob("*.joblib"))
    assert artifacts == sorted(path for _, _, path in rows)
