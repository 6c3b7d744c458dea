"""Runs a job of the `mailroom` code location in this process, recorded the way the Dagster UI records a
run it launches: with the code location's origin and the job's snapshot. `make demo` runs through this, so
`make dev` afterwards lists the demo's runs on the Overview timeline and the job pages, and can re-execute
them. (A plain `execute_in_process` run has no origin: the UI shows it only in the global runs list.)"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import dagster as dg
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.execution.api import execute_run
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.remote_representation.code_location import InProcessCodeLocation
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._utils.hosted_user_process import recon_job_from_origin

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# As named in workspace.yaml, which `make dev` loads: the UI matches runs to its location by this name.
LOCATION_NAME = "mailroom"
DEFINITIONS_MODULE = "dagster_project.definitions"


class CodeLocationRuns:
    """`with CodeLocationRuns(instance) as runs: runs.run("daily_campaign_pipeline")` loads the code
    location once and executes each run in this process (the jobs use the in-process executor)."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self._location: InProcessCodeLocation | None = None

    def __enter__(self) -> CodeLocationRuns:
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(executable_path=sys.executable, module_name=DEFINITIONS_MODULE,
                                 working_directory=str(PROJECT_ROOT)),
            location_name=LOCATION_NAME,
        )
        self._location = InProcessCodeLocation(origin, instance=self.instance)
        return self

    def __exit__(self, *exc) -> None:
        if self._location is not None:
            self._location.cleanup()
            self._location = None

    def unsynced_assets(self) -> list[dg.AssetKey]:
        """The assets the UI would mark "Unsynced": materialized, but an upstream data version (or
        the asset's code version) changed since."""
        from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
        from dagster._core.loader import LoadingContextForTest

        assert self._location is not None, "use CodeLocationRuns as a context manager"
        [repository] = self._location.get_repositories().values()
        graph = repository.asset_graph
        resolver = CachingStaleStatusResolver(self.instance, graph, LoadingContextForTest(self.instance))
        return sorted((key for key in graph.materializable_asset_keys
                       if resolver.get_status(key) == StaleStatus.STALE), key=lambda key: key.to_user_string())

    def run(self, job_name: str, asset_selection: Iterable[dg.AssetKey] | None = None, run_config: dict | None = None):
        """Create the run as the UI's launch does, then execute it here; returns its execution result
        (success, events) once it has finished."""
        location = self._location
        assert location is not None, "use CodeLocationRuns as a context manager"
        [repository] = location.get_repositories().values()
        selected = frozenset(asset_selection) if asset_selection else None
        remote_job = location.get_job(JobSubsetSelector(
            location_name=LOCATION_NAME, repository_name=repository.name, job_name=job_name,
            op_selection=None, asset_selection=selected))
        plan = location.get_execution_plan(remote_job, run_config or {}, step_keys_to_execute=None, known_state=None,
                                           instance=self.instance).execution_plan_snapshot
        dagster_run = self.instance.create_run(
            job_name=job_name, run_id=None, run_config=run_config or {}, resolved_op_selection=None,
            step_keys_to_execute=plan.step_keys_to_execute, op_selection=None, status=None,
            root_run_id=None, parent_run_id=None, tags=remote_job.tags, job_snapshot=remote_job.job_snapshot,
            execution_plan_snapshot=plan, parent_job_snapshot=remote_job.parent_job_snapshot,
            remote_job_origin=remote_job.get_remote_origin(), job_code_origin=remote_job.get_python_origin(),
            asset_selection=selected, asset_check_selection=None, asset_graph=repository.asset_graph,
        )
        return execute_run(recon_job_from_origin(dagster_run.job_code_origin), dagster_run, self.instance)
