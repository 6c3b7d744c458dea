"""The one handle on Mailroom's dbt project. Its manifest is prepared explicitly (`make prepare`,
i.e. `dagster-dbt project prepare-and-package`, or the test session's preparer), never at import."""

from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt"

mailroom_dbt = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# Under `dagster dev` only: re-parse so edits to models show up on reload.
mailroom_dbt.prepare_if_dev()
