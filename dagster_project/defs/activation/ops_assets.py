"""The ops tables the campaigns write, as assets of their own, so the lineage reads campaign -> content
-> messages -> sends -> ops/send_ledger -> engagement facts -> CRM write-back:

    ops/campaign_messages      below every campaign's messages asset
    ops/campaign_assignments   below every campaign's messages asset (the experiment units)
    ops/send_ledger            below every campaign's sends asset
    ops/campaign_suppressions  below every campaign's messages asset (who got no message, and why)
    ops/llm_calls, ops/content below every campaign's content asset (what writing it cost and scored)

Materializing one reports the table's state (rows by campaign and state); its data version is a
fingerprint of that state, so a run that changed nothing leaves the models below it up to date.
Batch campaign jobs refresh them in the same run. The daily job cannot (it would split its dbt step
around them), so after it writes trigger campaigns' messages they are refreshed by an eager
automation condition, which the sensor `ops_tables_follow_campaigns` evaluates (turn it on with the
schedules); until then they read "Unsynced".
The roll-out asset also writes these tables (the remainder it renders, then hands over): it reads the
experiment's results built from them, so that feedback edge is the one the graph leaves out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from dagster_project.defs.data_versions import fingerprint as fingerprint_of
from dagster_project.defs.kinds import warehouse_kind
from dagster_project.defs.personalization.campaign_assets import (
    content_key,
    load_campaigns,
    messages_key,
    sends_key,
)
from dagster_project.personalization.campaigns import Campaign
from dagster_project.resources import WarehouseResource

OPS_GROUP = "activation"
OPS_SENSOR = "ops_tables_follow_campaigns"
# Eager, but not held back by a campaign whose messages were never made: every campaign is upstream of
# these tables, and one that never ran must not keep the others' rows from showing.
OPS_TABLE_CONDITION = dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())


@dataclass(frozen=True)
class OpsTable:
    name: str
    state_column: str  # what the rows per campaign are broken down by
    fingerprint: str  # SQL aggregates that change whenever the table's content does
    description: str
    written_by: Callable[[Campaign], dg.AssetKey] = messages_key  # the campaign step that writes it

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey(["ops", self.name])


OPS_TABLES = (
    OpsTable("campaign_messages", "variant_id", "count(*), max(rendered_at)",
             "One rendered message per customer, campaign and run (subject, bodies, variant, segment, send time)."),
    OpsTable("campaign_assignments", "phase", "count(*), count(arm), max(assigned_at)",
             "Every eligible customer of a campaign run with their experiment arm and phase: the experiment units."),
    OpsTable("send_ledger", "state", "count(*), max(planned_at), max(sending_at), max(finished_at)",
             "Every message's hand-over, exactly once: planned -> sending -> accepted | failed | suppressed.",
             written_by=sends_key),
    OpsTable("campaign_suppressions", "reason", "count(*), max(recorded_at)",
             "Every candidate of a campaign run who got no message, with the reason."),
    OpsTable("llm_calls", "outcome", "count(*), max(called_at)",
             "Every LLM request of the content step: endpoint, model, outcome, tokens, cost, seconds "
             "(never prompt text).",
             written_by=content_key),
    OpsTable("content", "writer", "count(*), max(created_at)",
             "One row per content unit: its writer (an LLM or the rules), quality score, guardrail flags, "
             "review reason.",
             written_by=content_key),
)


def build_ops_table_asset(table: OpsTable, upstream: list[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(key=table.key, deps=upstream, group_name=OPS_GROUP, owners=["team:data-platform"],
              kinds={"table", warehouse_kind()}, description=f"ops.{table.name}: {table.description}",
              automation_condition=OPS_TABLE_CONDITION)
    def ops_table(warehouse: WarehouseResource) -> dg.MaterializeResult:
        with warehouse.warehouse().connect() as conn:
            if not conn.table_exists("ops", table.name):
                return dg.MaterializeResult(metadata={"dagster/row_count": 0},
                                            data_version=dg.DataVersion("empty"))
            state = conn.fetchall(f"SELECT {table.fingerprint} FROM ops.{table.name}")[0]
            rows = conn.fetchall(f"SELECT campaign_id, coalesce({table.state_column}, '(none)'), count(*) "
                                 f"FROM ops.{table.name} GROUP BY 1, 2 ORDER BY 1, 2")
        return dg.MaterializeResult(
            metadata={"dagster/row_count": int(state[0]), "rows_by_campaign": _rows_table(table, rows)},
            data_version=fingerprint_of(state),
        )

    return ops_table


def _rows_table(table: OpsTable, rows: list[tuple]) -> dg.MetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"campaign": campaign, table.state_column: str(state), "rows": f"{int(n):,}"})
                 for campaign, state, n in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn("campaign"), dg.TableColumn(table.state_column),
                                       dg.TableColumn("rows")]),
    )


def ops_table_upstream(table: OpsTable, campaigns: list[Campaign]) -> list[dg.AssetKey]:
    return [table.written_by(campaign) for campaign in campaigns]


def ops_table_keys() -> list[dg.AssetKey]:
    return [table.key for table in OPS_TABLES]


@dg.definitions
def ops_tables() -> dg.Definitions:
    campaigns = load_campaigns()
    sensor = dg.AutomationConditionSensorDefinition(
        OPS_SENSOR, target=dg.AssetSelection.assets(*ops_table_keys()), default_status=dg.DefaultSensorStatus.STOPPED,
        description="Re-reads the ops tables' state after a run wrote to them without refreshing them (the daily "
                    "job's trigger campaigns), so they and the models below them do not stay Unsynced.")
    return dg.Definitions(assets=[build_ops_table_asset(t, ops_table_upstream(t, campaigns)) for t in OPS_TABLES],
                          sensors=[sensor])
