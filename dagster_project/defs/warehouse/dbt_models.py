"""Every dbt model as a Dagster asset; dbt data_tests become asset checks (error severity blocks)."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, dbt_assets

from dagster_project.dbt_project import mailroom_dbt
from dagster_project.defs.kinds import warehouse_kind
from dagster_project.defs.warehouse.row_counts import with_row_counts
from dagster_project.resources import MailroomDbtResource, WarehouseResource

# Folder under dbt/models -> (Dagster group, owner). Campaign audiences belong to marketing; the
# engagement and experiment folders (under intermediate/ or marts/) join their Python assets' groups.
LAYER_GROUPS = {
    "staging": ("warehouse", "team:analytics-engineering"),
    "intermediate": ("warehouse", "team:analytics-engineering"),
    "marts": ("warehouse", "team:analytics-engineering"),
    "campaigns": ("campaigns", "team:marketing"),
}
DOMAIN_GROUPS = {"engagement": "engagement", "experiments": "experiments", "metrics": "analytics"}
SEED_GROUP = ("warehouse", "team:analytics-engineering")  # reference data: countries, time zones


class MailroomDbtTranslator(DagsterDbtTranslator):
    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = (manifest.get("nodes", {}) | manifest.get("sources", {})).get(unique_id, {})
        kind = node.get("resource_type")
        if kind not in ("model", "seed"):
            return spec
        fqn = node.get("fqn", [])
        layer = fqn[1] if len(fqn) > 2 else ("seeds" if kind == "seed" else "marts")
        group, owner = SEED_GROUP if kind == "seed" else LAYER_GROUPS.get(layer, LAYER_GROUPS["marts"])
        group = next((DOMAIN_GROUPS[folder] for folder in fqn[1:-1] if folder in DOMAIN_GROUPS), group)
        return spec.replace_attributes(
            # Never dagster-dbt's fallback, the model's raw SQL: tests hold every model to a description.
            group_name=group, owners=[owner], description=node.get("description") or f"dbt {kind} {node['name']}.",
        ).merge_attributes(kinds={"sql", warehouse_kind()}, tags={"layer": layer})


@dbt_assets(
    manifest=mailroom_dbt.manifest_path,
    project=mailroom_dbt,
    dagster_dbt_translator=MailroomDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    ),
)
def mailroom_dbt_models(context: dg.AssetExecutionContext, dbt: MailroomDbtResource, warehouse: WarehouseResource):
    invocation = dbt.cli(["build"], context=context, raise_on_error=False)
    # Collected first: the row counts are taken once dbt has let go of the warehouse (see row_counts).
    # A failed build still reports what it built and every test result (failing ones block), then fails.
    events = list(invocation.stream())
    yield from with_row_counts(events, invocation.manifest, warehouse.warehouse())
    if not invocation.is_successful():
        raise invocation.get_error()
