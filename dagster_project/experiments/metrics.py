"""The metrics a campaign experiment is read on: one column of marts.experiment_units each.

Binary metrics are 0/1 per unit (the rate is the share of units); revenue is continuous (the mean is
revenue per unit, zeros included, so it is revenue per recipient, not per buyer)."""

from __future__ import annotations

EXPERIMENT_METRICS = {
    # name: (kind, SQL expression over marts.experiment_units giving the unit's value)
    "delivered": ("binary", "case when is_delivered then 1 else 0 end"),
    "opened": ("binary", "case when is_opened then 1 else 0 end"),
    "clicked": ("binary", "case when is_clicked then 1 else 0 end"),
    "converted": ("binary", "case when is_converted then 1 else 0 end"),
    "revenue": ("continuous", "cast(revenue as double precision)"),
}


def binary_metrics() -> tuple[str, ...]:
    return tuple(name for name, (kind, _) in EXPERIMENT_METRICS.items() if kind == "binary")
