"""Row volume within a band of the recent history: a sudden drop or spike in a source fails its gate.

GX checks one batch at a time and has no memory of earlier loads, so the band is computed here:
the rows whose timestamp falls in the latest window (ending at the reference time) are compared
with the average of the windows before it. Event time, not load time, so a first backfill followed
by daily files compares like with like.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

SEVERITIES = ("critical", "warning")


@dataclass(frozen=True)
class VolumeBand:
    timestamp_column: str
    window_days: int = 7
    history_windows: int = 4
    min_ratio: float = 0.33
    max_ratio: float = 3.0
    severity: str = "critical"

    @classmethod
    def from_spec(cls, spec: dict, path: Path) -> "VolumeBand":
        known = set(cls.__dataclass_fields__)
        unknown = set(spec) - known
        if unknown or "timestamp_column" not in spec:
            raise ValueError(
                f"{path}: meta.mailroom.volume needs timestamp_column and may set {sorted(known)}; "
                f"got {sorted(spec)}"
            )
        band = cls(**spec)
        if band.severity not in SEVERITIES or not 0 <= band.min_ratio < 1 < band.max_ratio:
            raise ValueError(
                f"{path}: meta.mailroom.volume needs severity in {SEVERITIES} and min_ratio < 1 < max_ratio"
            )
        return band

    def window_bounds(self, reference: datetime) -> list[tuple[datetime, datetime]]:
        """[start, end) of the latest window first, then each earlier one."""
        width = timedelta(days=self.window_days)
        return [(reference - (i + 1) * width, reference - i * width) for i in range(self.history_windows + 1)]

    def count_sql(self, relation: str) -> str:
        column = self.timestamp_column
        sums = ", ".join(
            f"sum(case when {column} >= ? and {column} < ? then 1 else 0 end)"
            for _ in range(self.history_windows + 1)
        )
        return f"select {sums} from {relation}"

    def evaluate(self, window_rows: list[int]) -> "VolumeResult":
        latest, history = window_rows[0], list(window_rows[1:])
        # Empty windows before the source's first rows are not history; empty ones after it are gaps.
        while history and history[-1] == 0:
            history.pop()
        if not history:
            return VolumeResult(self, latest, None, None, passed=True, note="not enough history for a band yet")
        expected = sum(history) / len(history)
        ratio = latest / expected
        return VolumeResult(
            self, latest, expected, ratio, passed=self.min_ratio <= ratio <= self.max_ratio, note=""
        )


@dataclass(frozen=True)
class VolumeResult:
    band: VolumeBand
    latest_rows: int
    expected_rows: float | None
    ratio: float | None
    passed: bool
    note: str

    @property
    def summary(self) -> str:
        if self.note:
            return f"{self.latest_rows:,} rows in the latest {self.band.window_days} days; {self.note}"
        return (
            f"{self.latest_rows:,} rows in the latest {self.band.window_days} days, {self.ratio:.2f}x the "
            f"average of the windows before ({self.expected_rows:,.0f}); "
            f"allowed {self.band.min_ratio}x to {self.band.max_ratio}x"
        )


def measure_volume(conn, relation: str, band: VolumeBand, reference: datetime) -> VolumeResult:
    params = [bound for window in band.window_bounds(reference) for bound in window]
    row = conn.fetchall(band.count_sql(relation), params)[0]
    return band.evaluate([int(value or 0) for value in row])
