"""Mailroom's single Dagster entry point (workspace.yaml and `dagster dev -w workspace.yaml`).

Each domain folder under defs/ contributes its own assets, checks, schedules and sensors.
"""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
