"""Resources shared by every domain, built from Settings when the code location loads."""

import dagster as dg

from dagster_project.dbt_project import mailroom_dbt
from dagster_project.defs.activation.resource import ActivationResource
from dagster_project.defs.analytics.guard_resource import GuardResource
from dagster_project.defs.engagement.resource import CrmSyncResource
from dagster_project.defs.ingest.resource import IngestResource
from dagster_project.defs.personalization.resource import PersonalizationResource
from dagster_project.resources import MailroomDbtResource, WarehouseResource, dbt_executable
from dagster_project.settings import (
    load_activation_settings,
    load_guard_settings,
    load_ingest_settings,
    load_personalization_settings,
    load_settings,
    load_sync_settings,
)


@dg.definitions
def resources() -> dg.Definitions:
    settings = load_settings()
    return dg.Definitions(
        resources={
            "warehouse": WarehouseResource.from_settings(settings),
            "ingest": IngestResource.from_settings(load_ingest_settings()),
            "personalization": PersonalizationResource.from_settings(
                load_personalization_settings(), settings.data_dir, settings.phone_default_region
            ),
            "activation": ActivationResource.from_settings(load_activation_settings()),
            "crm": CrmSyncResource.from_settings(load_sync_settings()),
            "guards": GuardResource.from_settings(load_guard_settings()),
            "dbt": MailroomDbtResource(
                project_dir=mailroom_dbt,
                target=settings.dbt_target,
                dbt_executable=dbt_executable(),
                warehouse_environment={
                    name: value for name, value in settings.dbt_environment().items() if name != "PGPASSWORD"
                },
            ),
        },
        # DuckDB allows one writing process: run the steps of a run one after another, in process.
        executor=dg.in_process_executor,
    )
