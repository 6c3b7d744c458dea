"""Running the real dbt project from tests against a given warehouse."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from dagster_project.dbt_project import DBT_PROJECT_DIR
from dagster_project.resources import dbt_executable
from dagster_project.settings import Settings


def dbt(settings: Settings, *args: str, as_of: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.dbt_environment(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    if as_of:
        env["MAILROOM_AS_OF"] = as_of
    target = Path(settings.data_dir) / "dbt-target"
    result = subprocess.run(
        [dbt_executable(), *args, "--target", settings.warehouse, "--target-path", str(target)],
        cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise AssertionError(f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}")
    return result


def run_operation(settings: Settings, macro: str, **arguments) -> subprocess.CompletedProcess:
    return dbt(settings, "run-operation", macro, "--args", json.dumps(arguments))
