"""Every dbt model as a Dagster asset; dbt data_tests become asset checks (error severity blocks)."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, dbt_assets

from dagster_project.dbt_project import mailroom_dbt
from dagster_project.resources import MailroomDbtResource

# Folder under dbt/models -> (Dagster group, owner). Campaign audiences belong to marketing.
LAYER_GROUPS = {
    "staging": ("warehouse", "team:analytics-engineering"),
    "intermediate": ("warehouse", "team:analytics-engineering"),
    "marts": ("warehouse", "team:analytics-engineering"),
    "campaigns": ("campaigns", "team:marketing"),
}


class MailroomDbtTranslator(DagsterDbtTranslator):
    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = (manifest.get("nodes", {}) | manifest.get("sources", {})).get(unique_id, {})
        if node.get("resource_type") != "model":
            return spec
        layer = node.get("fqn", ["", ""])[1] if len(node.get("fqn", [])) > 2 else "marts"
        group, owner = LAYER_GROUPS.get(layer, ("warehouse", "team:analytics-engineering"))
        return spec.replace_attributes(group_name=group, owners=[owner]).merge_attributes(
            kinds={"sql"}, tags={"layer": layer}
        )


@dbt_assets(
    manifest=mailroom_dbt.manifest_path,
    project=mailroom_dbt,
    dagster_dbt_translator=MailroomDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    ),
)
def mailroom_dbt_models(context: dg.AssetExecutionContext, dbt: MailroomDbtResource):
    yield from dbt.cli(["build"], context=context).stream()
