"""Every suite in expectations/ as a blocking asset check on the asset it gates.

A failed critical expectation fails the check with severity ERROR, which stops every asset
downstream of the gated one in the same run (Dagster's blocking checks); failed warnings are
reported with severity WARN and block nothing.
"""

import dagster as dg

from dagster_project.defs.quality.metadata import gate_description, gate_metadata
from dagster_project.quality.gates import GateResult, run_gate
from dagster_project.quality.suites import QualitySuite, load_suites
from dagster_project.resources import WarehouseResource
from dagster_project.settings import load_settings


def build_gate_check(suite: QualitySuite) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(list(suite.asset)),
        name=suite.check_name,
        blocking=True,
        description=f"Great Expectations suite {suite.path.name}: {len(suite.expectations)} expectations"
        + (", volume band" if suite.volume else "")
        + ". Critical failures stop everything downstream in the run.",
    )
    def gate(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        result: GateResult = run_gate(warehouse.warehouse(), suite, warehouse.settings.reference_time())
        for line in result.blocking_failures:
            context.log.error(f"{suite.name}: {line} failed")
        for line in result.warnings:
            context.log.warning(f"{suite.name}: {line} failed (warning)")
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.WARN if result.warnings and not result.blocking_failures else dg.AssetCheckSeverity.ERROR,
            metadata=gate_metadata(result),
            description=gate_description(result),
        )

    return gate


@dg.definitions
def quality_gates() -> dg.Definitions:
    suites = load_suites(load_settings().expectations_dir)
    return dg.Definitions(asset_checks=[build_gate_check(suite) for suite in suites])
