"""`make quality-docs`: validate every suite against the current warehouse and build GX Data Docs
(static HTML) from those results, for people who prefer reading a report to the Dagster UI.

    python -m dagster_project.quality.docs      -> data/quality-docs/index.html
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import great_expectations as gx
from great_expectations.data_context.types.base import ProgressBarsConfig

from dagster_project.dbt_project import mailroom_dbt
from dagster_project.personalization.campaigns import campaigns_from_manifest
from dagster_project.personalization.guardrails import load_brand
from dagster_project.quality.brand_parameters import brand_parameters
from dagster_project.quality.gates import GateResult, run_gate
from dagster_project.quality.suites import runnable_suites
from dagster_project.settings import Settings, load_personalization_settings, load_settings
from dagster_project.warehouse import Warehouse, WarehouseError


def build_quality_docs(settings: Settings):
    """Returns the path of the Data Docs index page and the gate results it shows."""
    site = settings.data_dir / "quality-docs"
    # GX's file project lives in a temporary directory: its config would hold the warehouse
    # connection string, and the report shows the latest results only, so no GX state is kept.
    with tempfile.TemporaryDirectory(prefix="mailroom-gx-") as project:
        context = gx.get_context(mode="file", project_root_dir=project)
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        results = run_every_gate(settings, context)
        context.build_data_docs()
        built = next(Path(project).rglob("data_docs/local_site"))
        shutil.rmtree(site, ignore_errors=True)
        shutil.copytree(built, site)
    return site / "index.html", results


def run_every_gate(settings: Settings, context=None) -> list[GateResult]:
    """Every suite, per-campaign templates included, against the current warehouse (outside Dagster)."""
    campaigns = campaigns_from_manifest(json.loads(mailroom_dbt.manifest_path.read_text()))
    brand = brand_parameters(load_brand(load_personalization_settings().content_dir / "brand.yml"))
    warehouse = Warehouse(settings)
    with warehouse.connect() as conn:
        # A campaign that never rendered has no messages to check yet.
        suites = [s for s in runnable_suites(settings.expectations_dir, campaigns)
                  if conn.table_exists(*s.table.split("."))]
    return [
        run_gate(warehouse, suite, settings.reference_time(), context=context,
                 parameters=brand if suite.uses_brand else None)
        for suite in suites
    ]


def main() -> int:
    settings = load_settings()
    try:
        index, results = build_quality_docs(settings)
    except WarehouseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for result in results:
        verdict = "blocked" if result.blocking_failures else ("warnings" if result.warnings else "passed")
        failed = ", ".join(outcome.label for outcome in result.failures)
        print(f"  {result.suite.name:<22} {verdict:<9} {result.rows:>10,} rows  {failed}")
    print(f"Data Docs: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
