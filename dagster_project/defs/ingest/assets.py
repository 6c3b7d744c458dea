"""One asset per landing source, loading new files into raw.<table>.

Asset keys equal the dbt source keys (["raw", "<table>"]), so the lineage runs from these assets
straight into the staging models.
"""

import dagster as dg

from dagster_project.defs.ingest.freshness import freshness_policy
from dagster_project.ingest.loader import IngestReport, ingest_source
from dagster_project.ingest.reader import LandingFileError
from dagster_project.ingest.sources import SOURCES, Source
from dagster_project.resources import WarehouseResource

INGEST_GROUP = "ingest"


def report_metadata(report: IngestReport) -> dict:
    reasons = "\n".join(f"| {reason} | {count:,} |" for reason, count in report.reasons.most_common())
    return {
        "files_loaded": len(report.files_loaded),
        "files_skipped": dg.MetadataValue.int(report.files_skipped),
        "rows_read": report.rows_read,
        "rows_loaded": report.rows_loaded,
        "rows_quarantined": report.rows_quarantined,
        "seconds": round(report.seconds, 2),
        "quarantine_reasons": dg.MetadataValue.md(
            "| reason | rows |\n|---|---|\n" + reasons if reasons else "No row was quarantined."
        ),
    }


def build_ingest_asset(source: Source) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", source.table],
        group_name=INGEST_GROUP,
        description=(
            f"{source.description}. New files only (ledger raw.ingested_files), rows deduplicated on "
            f"{source.key_label}; rows that cannot be loaded go to raw.quarantine with a reason."
        ),
        owners=["team:data-platform"],
        kinds={"python", "sql"},
        tags={"domain": "ingest", "source": source.name},
        freshness_policy=freshness_policy(source),
    )
    def ingest(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        settings = warehouse.settings
        try:
            report = ingest_source(
                warehouse.warehouse(), source, settings.landing_dir, progress=context.log.info
            )
        except LandingFileError as error:
            raise dg.Failure(description=str(error)) from error
        if not report.files_loaded:
            context.log.info(f"No new {source.name} files in {settings.landing_dir / source.name}.")
        return dg.MaterializeResult(metadata=report_metadata(report))

    return ingest


ingest_assets = [build_ingest_asset(source) for source in SOURCES.values()]
