"""Experiments: plain Python, no Dagster.

The statistics, usable on any table:

    totals.py      sufficient statistics per arm (units, Σx, Σx²), mergeable; MetricSpec
    statistics.py  the tests: z / Welch t, chi-square, delta-method lift, confidence sequences, SRM,
                   Holm / Benjamini–Hochberg, Beta-posterior chance to win and expected loss
    readout.py     compute_readout(): every variant vs the control on every metric, and its renderings
    bandit.py      top-two Thompson sampling allocation shares
    csv_source.py  streams a CSV (or .csv.gz) of units into ArmTotals with bounded memory
    __main__.py    python -m dagster_project.experiments readout FILE.csv ...

The campaigns' experiments in the warehouse:
    metrics.py            the metrics of marts.experiment_units and how each is read
    warehouse_readout.py  readouts of a campaign run from marts.experiment_units (one GROUP BY per arm)
    decisions.py          ops.experiment_decisions: roll-out decisions and bandit allocations, first one wins
    rollout.py            the decision rule and the winner roll-out of a batch campaign's remainder
    allocation.py         a bandit campaign's variant shares for its next run
"""

from dagster_project.experiments.bandit import top_two_thompson_weights
from dagster_project.experiments.readout import ComparisonRow, Readout, ReadoutOptions, compute_readout
from dagster_project.experiments.totals import ArmTotals, MetricSpec, MetricTotals

__all__ = [
    "ArmTotals", "ComparisonRow", "MetricSpec", "MetricTotals", "Readout", "ReadoutOptions", "compute_readout",
    "top_two_thompson_weights",
]
