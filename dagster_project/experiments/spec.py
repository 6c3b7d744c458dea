"""meta.campaign.experiment: how a campaign's variants are tested and the winner chosen (see
dbt/models/campaigns/_campaigns.yml for the keys), and the readout options that follow from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dagster_project.experiments.metrics import EXPERIMENT_METRICS, binary_metrics
from dagster_project.experiments.readout import ReadoutOptions

EXPERIMENT_METHODS = ("sequential", "fixed", "bandit")
EXPERIMENT_CORRECTIONS = ("holm", "bh", "none")
DEFAULT_METRIC = "clicked"  # what a campaign without an experiment block is read on first


@dataclass(frozen=True)
class ExperimentSpec:
    """meta.campaign.experiment: how the campaign's variants are tested and the winner chosen.

    sequential / fixed: the test fraction of each run's audience gets the variants; the remainder waits
    until the readout declares a winner (or the deadline passes) and then gets that one variant.
    bandit: no remainder; every run's variant shares come from top-two Thompson sampling on the earlier
    runs (for campaigns that run again and again)."""

    metric: str
    method: str
    test_fraction: float
    min_units_per_arm: int
    alpha: float
    correction: str
    decide_within_hours: float
    control: str
    default_variant: str
    min_share: float
    leader_share: float  # bandit: top-two Thompson's beta, the share the clear leader gets

    @property
    def rolls_out(self) -> bool:
        return self.method in ("sequential", "fixed")


def primary_metric(experiment: ExperimentSpec | None) -> str:
    return experiment.metric if experiment else DEFAULT_METRIC


def readout_options(experiment: ExperimentSpec | None) -> ReadoutOptions:
    """The campaign's alpha and correction; sequential unless the method is fixed (one look), so a
    marketer may look at a readout every day. The sequential tuning is set per readout to its units
    (warehouse_readout), where the interval is tightest."""
    if experiment is None:
        return ReadoutOptions(sequential=True)
    return ReadoutOptions(alpha=experiment.alpha, sequential=experiment.method != "fixed",
                          correction=experiment.correction)


def parse_experiment(spec, ids: list[str], campaign_type: str,
                     fail: Callable[[str, str], Exception]) -> ExperimentSpec | None:
    """meta.campaign.experiment of a campaign with variants `ids`; `fail(key, problem)` makes the error
    that names the model and key."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise fail("experiment", "must be a mapping of settings")
    method = spec.get("method", "sequential")
    if method not in EXPERIMENT_METHODS:
        raise fail("experiment.method", f"must be one of {', '.join(EXPERIMENT_METHODS)}, not {method!r}")
    if method != "bandit" and campaign_type != "batch":
        raise fail("experiment.method", f"{method!r} rolls a winner out to the rest of a batch audience; a "
                   "trigger campaign has no remainder to wait: use method bandit")
    metric = spec.get("metric", DEFAULT_METRIC)
    allowed = binary_metrics() if method == "bandit" else tuple(EXPERIMENT_METRICS)
    if metric not in allowed:
        raise fail("experiment.metric", f"must be one of {', '.join(allowed)}, not {metric!r}")
    if len(ids) < 2:
        raise fail("experiment", "needs at least two variants to compare")

    def number(key: str, default, low: float, high: float, kind=float):
        value = spec.get(key, default)
        try:
            value = kind(value)
        except (TypeError, ValueError):
            raise fail(f"experiment.{key}", f"must be a number, not {value!r}") from None
        if not low <= value <= high:
            raise fail(f"experiment.{key}", f"must be between {low} and {high}, not {value!r}")
        return value

    control = str(spec.get("control", ids[0]))
    default_variant = str(spec.get("default_variant", control))
    for key, value in (("control", control), ("default_variant", default_variant)):
        if value not in ids:
            raise fail(f"experiment.{key}", f"names variant {value!r}, which is not one of {', '.join(ids)}")
    correction = spec.get("correction", "holm")
    if correction not in EXPERIMENT_CORRECTIONS:
        raise fail("experiment.correction", f"must be one of {', '.join(EXPERIMENT_CORRECTIONS)}, not {correction!r}")
    min_share = number("min_share", 0.1, 0.01, 1.0 / len(ids))
    return ExperimentSpec(
        metric=metric,
        method=method,
        test_fraction=number("test_fraction", 0.2, 0.01, 0.99) if method != "bandit" else 1.0,
        min_units_per_arm=number("min_units_per_arm", 100, 1, 10**9, int),
        alpha=number("alpha", 0.05, 0.0001, 0.5),
        correction=correction,
        decide_within_hours=number("decide_within_hours", 72, 1, 24 * 90),
        control=control,
        default_variant=default_variant,
        min_share=min_share,
        leader_share=number("leader_share", 0.5, 0.5, 0.95),
    )
