"""Sufficient statistics of an experiment: per arm, the units and, per metric, the sum and the sum of
squares of the per-unit values.

They are mergeable (sums add up), so a warehouse `GROUP BY arm` (COUNT(*), SUM(x), SUM(x * x)), a
streamed CSV and a test's hand-made numbers all produce the same `ArmTotals` and the same readout."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Iterable, Literal, Mapping

MetricKind = Literal["binary", "continuous"]
METRIC_KINDS: tuple[str, ...] = ("binary", "continuous")


@dataclass(frozen=True)
class MetricSpec:
    """A metric column and how to read it: `binary` (0/1 per unit, reported as a rate) or `continuous`
    (any number per unit, reported as a mean)."""

    name: str
    kind: MetricKind

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a metric needs a name")
        if self.kind not in METRIC_KINDS:
            raise ValueError(f"metric {self.name!r}: kind must be 'binary' or 'continuous', not {self.kind!r}")

    @classmethod
    def parse(cls, text: str) -> "MetricSpec":
        """'clicked:binary' or 'revenue:continuous'. The kind follows the last colon, so a column name
        may itself contain colons ('a:b:binary' is the column 'a:b')."""
        name, colon, kind = text.rpartition(":")
        if not colon or not name:
            raise ValueError(f"metric {text!r} must look like NAME:binary or NAME:continuous")
        kind = kind.strip().lower()
        if kind not in METRIC_KINDS:
            raise ValueError(f"metric {text!r}: kind must be 'binary' or 'continuous', not {kind!r}")
        return cls(name, kind)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.name}:{self.kind}"


@dataclass(frozen=True)
class MetricTotals:
    """Σx and Σx² over the units of one arm (for a binary metric: successes, twice)."""

    total: float
    total_squares: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", float(self.total))
        object.__setattr__(self, "total_squares", float(self.total_squares))
        if not (math.isfinite(self.total) and math.isfinite(self.total_squares)):
            raise ValueError(f"metric totals must be finite numbers, got total={self.total!r}, "
                             f"total_squares={self.total_squares!r}")
        if self.total_squares < 0:
            raise ValueError(f"a sum of squares cannot be negative, got {self.total_squares!r}")

    @classmethod
    def binary(cls, successes: float) -> "MetricTotals":
        return cls(successes, successes)

    @classmethod
    def of(cls, values: Iterable[float]) -> "MetricTotals":
        """Totals of raw per-unit values (for tests and small inputs)."""
        total = total_squares = 0.0
        for value in values:
            total += value
            total_squares += value * value
        return cls(total, total_squares)

    def __add__(self, other: "MetricTotals") -> "MetricTotals":
        return MetricTotals(self.total + other.total, self.total_squares + other.total_squares)


ZERO = MetricTotals(0.0, 0.0)


@dataclass(frozen=True)
class ArmTotals:
    """One arm: its name, its number of units and the totals of every metric."""

    arm: str
    units: int
    metrics: Mapping[str, MetricTotals] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.arm, str) or not self.arm:
            raise ValueError(f"an arm needs a non-empty name, got {self.arm!r}")
        if isinstance(self.units, bool) or not isinstance(self.units, numbers.Integral) or self.units < 0:
            raise ValueError(f"arm {self.arm!r}: units must be a whole number ≥ 0, got {self.units!r}")
        object.__setattr__(self, "units", int(self.units))  # numpy and database integers alike
        object.__setattr__(self, "metrics", dict(self.metrics))  # a private copy: callers may reuse theirs

    def merge(self, other: "ArmTotals") -> "ArmTotals":
        """The totals of both parts of the same arm. A metric missing on one side counts as zero there."""
        if other.arm != self.arm:
            raise ValueError(f"cannot merge totals of arm {other.arm!r} into arm {self.arm!r}")
        names = list(self.metrics) + [name for name in other.metrics if name not in self.metrics]
        return ArmTotals(self.arm, self.units + other.units,
                         {name: self.metrics.get(name, ZERO) + other.metrics.get(name, ZERO) for name in names})
