"""The ingest resource: limits for hostile landing files, per-source encodings, archiving, and how
loudly a rejected file is reported, from IngestSettings."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from dagster_project.ingest.reader import ReadLimits
from dagster_project.settings import IngestSettings


class IngestResource(dg.ConfigurableResource):
    max_line_bytes: int = IngestSettings.max_line_bytes
    max_depth: int = IngestSettings.max_depth
    encodings: dict[str, str] = {}
    archive_dir: str = ""  # empty: loaded files stay where they landed
    rejected_file_severity: str = "warn"

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> "IngestResource":
        return cls(
            max_line_bytes=settings.max_line_bytes, max_depth=settings.max_depth, encodings=dict(settings.encodings),
            archive_dir=str(settings.archive_dir or ""), rejected_file_severity=settings.rejected_file_severity,
        )

    def limits(self, source_name: str) -> ReadLimits:
        return ReadLimits(self.max_line_bytes, self.max_depth, self.encodings.get(source_name, ""))

    @property
    def archive_path(self) -> Path | None:
        return Path(self.archive_dir) if self.archive_dir else None

    @property
    def check_severity(self) -> dg.AssetCheckSeverity:
        return dg.AssetCheckSeverity.ERROR if self.rejected_file_severity == "error" else dg.AssetCheckSeverity.WARN
