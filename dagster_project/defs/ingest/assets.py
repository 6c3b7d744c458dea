"""One asset per landing source, loading new files into raw.<table>.

Asset keys equal the dbt source keys (["raw", "<table>"]), so the lineage runs from these assets
straight into the staging models. The content of a landing file never fails the asset: a file that
cannot be loaded is recorded as rejected, and the asset's check `landing_files_accepted` shows it
(severity warn by default; MAILROOM_INGEST_REJECTED_FILE_SEVERITY=error blocks what depends on it).
"""

import dagster as dg

from dagster_project.defs.ingest.freshness import freshness_policy
from dagster_project.defs.ingest.resource import IngestResource
from dagster_project.defs.kinds import warehouse_kind
from dagster_project.ingest.loader import IngestReport, ingest_source, outstanding_rejections, table_totals
from dagster_project.ingest.sources import SOURCES, Source
from dagster_project.resources import WarehouseResource

INGEST_GROUP = "ingest"
FILES_CHECK = "landing_files_accepted"


class IngestConfig(dg.Config):
    retry_rejected: bool = False  # try files rejected earlier again (after fixing the encoding setting, say)


def report_metadata(report: IngestReport, total_rows: int, total_quarantined: int) -> dict:
    reasons = "\n".join(f"| {reason} | {count:,} |" for reason, count in report.reasons.most_common())
    rejected = "\n".join(f"| {f.file} | {f.error} |" for f in report.files_rejected)
    return {
        "files_loaded": len(report.files_loaded),
        "files_rejected": len(report.files_rejected),
        "files_skipped": dg.MetadataValue.int(report.files_skipped),
        "files_archived": report.files_archived,
        "rows_read": report.rows_read,
        "rows_loaded": report.rows_loaded,
        "rows_quarantined": report.rows_quarantined,
        "duplicates_skipped": report.reasons.get("duplicate key", 0),
        "table_rows": total_rows,
        "table_rows_quarantined": total_quarantined,
        "seconds": round(report.seconds, 2),
        "quarantine_reasons": dg.MetadataValue.md(
            "| reason | rows |\n|---|---|\n" + reasons if reasons else "No row was quarantined in this run."
        ),
        "rejected_files": dg.MetadataValue.md(
            "| file | why |\n|---|---|\n" + rejected if rejected else "No file was rejected in this run."
        ),
    }


def files_check(source: Source, outstanding: list[tuple[str, str]], report: IngestReport,
                severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    listing = "\n".join(f"| {file} | {error} |" for file, error in outstanding)
    return dg.AssetCheckResult(
        check_name=FILES_CHECK,
        passed=not outstanding,
        severity=severity,
        description=(
            f"{len(outstanding)} {source.name} file(s) rejected and still in the landing directory: fix and drop "
            "them again, re-run with retry_rejected, or delete them" if outstanding else None
        ),
        metadata={
            "rejected_files_waiting": len(outstanding),
            "rows_quarantined_this_run": report.rows_quarantined,
            "rejected_files": dg.MetadataValue.md(
                "| file | why |\n|---|---|\n" + listing if listing else "No rejected file is waiting."
            ),
        },
    )


def build_ingest_asset(source: Source) -> dg.AssetsDefinition:
    key = dg.AssetKey(["raw", source.table])

    @dg.asset(
        key=key,
        group_name=INGEST_GROUP,
        description=(
            f"{source.description}. New files only (ledger raw.ingested_files), rows deduplicated on "
            f"{source.key_label}; rows that cannot be loaded go to raw.quarantine with a reason, and a file "
            "that cannot be loaded at all is recorded as rejected without stopping the others."
        ),
        owners=["team:data-platform"],
        kinds={"python", warehouse_kind()},
        tags={"domain": "ingest", "source": source.name},
        freshness_policy=freshness_policy(source),
        check_specs=[dg.AssetCheckSpec(
            FILES_CHECK, asset=key, blocking=True,
            description="Every landing file of this source was loaded; a rejected file waits for an operator.",
        )],
    )
    def load_landing_files(context: dg.AssetExecutionContext, config: IngestConfig, warehouse: WarehouseResource,
               ingest: IngestResource) -> dg.MaterializeResult:
        settings = warehouse.settings
        database = warehouse.warehouse()
        report = ingest_source(
            database, source, settings.landing_dir, progress=context.log.info, limits=ingest.limits(source.name),
            retry_rejected=config.retry_rejected, archive_dir=ingest.archive_path,
        )
        if not report.files_loaded and not report.files_rejected:
            context.log.info(f"No new {source.name} files in {settings.landing_dir / source.name}.")
        for rejected in report.files_rejected:
            context.log.warning(f"{source.name}: {rejected.file} was rejected: {rejected.error}")
        outstanding = outstanding_rejections(database, source, settings.landing_dir)
        totals = table_totals(database, source)
        return dg.MaterializeResult(
            metadata=report_metadata(report, *totals),
            check_results=[files_check(source, outstanding, report, ingest.check_severity)],
            # Raw tables only grow (rows are deduplicated on their key), so their sizes tell whether
            # anything changed: a run that loaded nothing leaves every model below it up to date.
            data_version=dg.DataVersion("rows-{}-quarantined-{}".format(*totals)),
        )

    return load_landing_files


ingest_assets = [build_ingest_asset(source) for source in SOURCES.values()]
