"""Every suite in expectations/ as a blocking asset check on the asset it gates; template suites
(meta.mailroom.applies_to) once per campaign, on its audience model or on its messages.

A failed critical expectation fails the check with severity ERROR, which stops every asset
downstream of the gated one in the same run (Dagster's blocking checks); failed warnings are
reported with severity WARN and block nothing.
"""

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from dagster_project.defs.personalization.campaign_assets import load_campaigns
from dagster_project.defs.personalization.resource import PersonalizationResource
from dagster_project.defs.quality.metadata import failed_checks, gate_description, gate_metadata
from dagster_project.defs.warehouse.dbt_models import mailroom_dbt_models
from dagster_project.quality.brand_parameters import brand_parameters
from dagster_project.quality.gates import GateResult, run_gate
from dagster_project.quality.suites import QualitySuite, runnable_suites
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
    def gate(
        context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource,
        personalization: PersonalizationResource,
    ) -> dg.AssetCheckResult:
        result: GateResult = run_gate(
            warehouse.warehouse(), suite, warehouse.settings.reference_time(),
            parameters=brand_parameters(personalization.brand()) if suite.uses_brand else None,
        )
        for line in failed_checks(result, blocking=True):
            context.log.error(f"{suite.name}: {line} failed")
        for line in failed_checks(result, blocking=False):
            context.log.warning(f"{suite.name}: {line} failed (warning)")
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=(
                dg.AssetCheckSeverity.WARN if result.warnings and not result.blocking_failures
                else dg.AssetCheckSeverity.ERROR
            ),
            metadata=gate_metadata(result),
            description=gate_description(result),
        )

    return gate


@dg.definitions
def quality_gates() -> dg.Definitions:
    suites = runnable_suites(
        load_settings().expectations_dir,
        load_campaigns(),
        audience_asset=lambda campaign: get_asset_key_for_model([mailroom_dbt_models], campaign.model).path,
    )
    return dg.Definitions(asset_checks=[build_gate_check(suite) for suite in suites])
