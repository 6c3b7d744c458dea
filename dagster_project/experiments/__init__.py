"""Experiment statistics: plain Python, no Dagster.

    totals.py      sufficient statistics per arm (units, Σx, Σx²), mergeable; MetricSpec
    statistics.py  the tests: z / Welch t, chi-square, delta-method lift, confidence sequences, SRM,
                   Holm / Benjamini–Hochberg, Beta-posterior chance to win and expected loss
    readout.py     compute_readout(): every variant vs the control on every metric, and its renderings
    bandit.py      top-two Thompson sampling allocation shares
    csv_source.py  streams a CSV (or .csv.gz) of units into ArmTotals with bounded memory
    __main__.py    python -m dagster_project.experiments readout FILE.csv ...
"""

from dagster_project.experiments.bandit import top_two_thompson_weights
from dagster_project.experiments.readout import ComparisonRow, Readout, ReadoutOptions, compute_readout
from dagster_project.experiments.totals import ArmTotals, MetricSpec, MetricTotals

__all__ = [
    "ArmTotals", "ComparisonRow", "MetricSpec", "MetricTotals", "Readout", "ReadoutOptions", "compute_readout",
    "top_two_thompson_weights",
]
