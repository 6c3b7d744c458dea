"""How fresh each raw source must be.

Two views of it: a FreshnessPolicy on every ingest asset (the UI marks an asset stale when ingest
has not run within the window), and a non-blocking check that looks at what actually arrived: the
newest landing file of the source in the ledger raw.ingested_files. A source whose exporter stopped
still materializes every day, so only the second one notices it.
"""

from datetime import datetime, timezone

import dagster as dg

from dagster_project.ingest.sources import SOURCES, Source
from dagster_project.resources import WarehouseResource


def freshness_policy(source: Source) -> dg.FreshnessPolicy:
    return dg.FreshnessPolicy.time_window(fail_window=source.fresh_within, warn_window=source.fresh_within * 0.9)


def newest_file_age_hours(conn, source: Source, now: datetime) -> float | None:
    if not conn.table_exists("raw", "ingested_files"):
        return None
    newest = conn.scalar("select max(loaded_at) from raw.ingested_files "
                         "where source = ? and coalesce(status, 'loaded') = 'loaded'", [source.name])
    return None if newest is None else (now - newest).total_seconds() / 3600


def build_freshness_check(source: Source) -> dg.AssetChecksDefinition:
    limit_hours = source.fresh_within.total_seconds() / 3600

    @dg.asset_check(
        asset=dg.AssetKey(["raw", source.table]),
        name="landing_freshness",
        blocking=False,
        description=f"A new {source.name} landing file arrived within the last {limit_hours:g} hours.",
    )
    def landing_freshness(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        with warehouse.warehouse().connect() as conn:
            age = newest_file_age_hours(conn, source, now)
        fresh = age is not None and age <= limit_hours
        found = "no file was ever loaded" if age is None else f"the newest file was loaded {age:.1f} hours ago"
        return dg.AssetCheckResult(
            passed=fresh,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{source.name}: {found} (allowed: {limit_hours:g} hours).",
            metadata={
                "newest_file_age_hours": dg.MetadataValue.float(round(age, 2) if age is not None else -1.0),
                "allowed_hours": dg.MetadataValue.float(limit_hours),
            },
        )

    return landing_freshness


freshness_checks = [build_freshness_check(source) for source in SOURCES.values()]
