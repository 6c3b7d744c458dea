"""An experiment readout: every variant against the control on every metric, a sample-ratio-mismatch
check, multiple-comparison correction, and the renderings a person reads (markdown for Dagster
metadata, a terminal table, CSV, JSON).

Decision rule, one for both modes: a comparison `is_significant` when its adjusted p-value is below
alpha. In fixed-horizon mode the p-value is the two-sided z test (binary) or Welch t test
(continuous). In sequential mode it is the always-valid p-value of the asymptotic confidence sequence
(`statistics.sequential_p_value`), which is below alpha exactly when the sequence excludes 0; the
adjusted p-value is never below the raw one, so a significant comparison always has an interval that
excludes 0, and it stays valid however many times the readout is looked at. The reported intervals
are per comparison (not multiplicity-adjusted).

The correction (Holm by default, or Benjamini–Hochberg) runs over all comparisons of the readout:
every variant x every metric. A sample ratio mismatch (`has_srm`) does not change the statistics; it
blocks decisions: the renderings say "blocked: SRM" instead of a verdict, and callers should do the
same.

Not estimable comparisons (an arm with 0 units; a standard error of 0, e.g. both arms at 0% or with no
variance) get p = 1, no interval (None), and are never significant. The Bayesian numbers of a binary
metric still exist there (the Beta(1, 1) prior alone gives chance to win 0.5).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Mapping, Sequence

from dagster_project.experiments import statistics as st
from dagster_project.experiments.totals import ArmTotals, MetricSpec, MetricTotals

CORRECTIONS = ("holm", "bh", "none")


@dataclass(frozen=True)
class ReadoutOptions:
    """How to read an experiment.

    alpha: significance level (two-sided) and 1 − coverage of the intervals.
    sequential: use always-valid confidence sequences and p-values, safe to look at daily.
    sequential_tuning: the sample size (units of control + variant) at which the sequential interval
        is tightest relative to the fixed-horizon one; set it near the expected size of the experiment.
    correction: 'holm' (family-wise error), 'bh' (false discovery rate) or 'none'.
    weights: the intended share of each arm (relative numbers, e.g. {"A": 50, "B": 50}); None = equal.
    yates: apply Yates' continuity correction to the chi-square p-value of binary metrics.
    srm_threshold: a sample-ratio-mismatch p-value below this blocks decisions.
    """

    alpha: float = 0.05
    sequential: bool = False
    sequential_tuning: float = 5000.0
    correction: Literal["holm", "bh", "none"] = "holm"
    weights: Mapping[str, float] | None = None
    yates: bool = False
    srm_threshold: float = 0.001

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha!r}")
        if not (self.sequential_tuning > 0 and math.isfinite(self.sequential_tuning)):
            raise ValueError(f"sequential_tuning must be a positive number of units, got {self.sequential_tuning!r}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}")
        if not 0 < self.srm_threshold < 1:
            raise ValueError(f"srm_threshold must be between 0 and 1, got {self.srm_threshold!r}")
        if self.weights is not None:
            object.__setattr__(self, "weights", dict(self.weights))


@dataclass(frozen=True)
class ComparisonRow:
    """One variant against the control on one metric. Values are rates (binary) or means per unit
    (continuous); difference = variant_value − control_value; relative lift = difference / |control|.
    Intervals are None where the comparison is not estimable, the relative ones also when the
    control value is 0. chance_to_win is P(variant > control) and expected_loss is E[max(control −
    variant, 0)] in the metric's units: exact Beta(1, 1)-posterior integrals for binary metrics, a
    normal approximation N(difference, se²) for continuous ones."""

    variant: str
    metric: str
    kind: str
    control_units: int
    variant_units: int
    control_value: float
    variant_value: float
    difference: float
    difference_low: float | None
    difference_high: float | None
    relative_lift: float | None
    relative_low: float | None
    relative_high: float | None
    p_value: float
    adjusted_p_value: float
    chi_square_p_value: float | None
    chance_to_win: float | None
    expected_loss: float | None
    is_significant: bool


@dataclass(frozen=True)
class Readout:
    """The arms as given, the options used, the sample-ratio-mismatch check (`has_srm` when its
    p-value is below options.srm_threshold: decisions are blocked) and one row per variant x metric."""

    control: str
    arms: tuple[ArmTotals, ...]
    options: ReadoutOptions
    srm_p_value: float
    has_srm: bool
    rows: tuple[ComparisonRow, ...]

    def to_dict(self) -> dict:
        """JSON-able: plain dicts, lists, str, int, bool, finite floats or None."""
        return {
            "control": self.control,
            "arms": [{"arm": arm.arm, "units": arm.units,
                      "metrics": {name: {"total": _finite(t.total), "total_squares": _finite(t.total_squares)}
                                  for name, t in arm.metrics.items()}}
                     for arm in self.arms],
            "options": {**asdict(self.options),
                        "weights": dict(self.options.weights) if self.options.weights is not None else None},
            "srm_p_value": _finite(self.srm_p_value),
            "has_srm": self.has_srm,
            "rows": [{key: _finite(value) for key, value in asdict(row).items()} for row in self.rows],
        }

    def to_markdown(self) -> str:
        header, cells = _display_columns(self), [_display_cells(self, row) for row in self.rows]
        lines = [f"**{_srm_sentence(self)}**", "", _method_sentence(self), "",
                 "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(_markdown_escape(cell) for cell in row) + " |" for row in cells]
        return "\n".join(lines) + "\n"

    def to_table(self) -> str:
        header, cells = _display_columns(self), [_display_cells(self, row) for row in self.rows]
        widths = [max(len(text) for text in column) for column in zip(header, *cells)]
        left = {0, 1, len(header) - 1}  # names and the decision read left to right; numbers line up right

        def line(values: Sequence[str]) -> str:
            return "  ".join(v.ljust(w) if i in left else v.rjust(w)
                             for i, (v, w) in enumerate(zip(values, widths))).rstrip()

        body = [line(header), line(["-" * w for w in widths])] + [line(row) for row in cells]
        return "\n".join([_srm_sentence(self), _method_sentence(self), ""] + body) + "\n"

    def to_csv(self) -> str:
        """One line per comparison with every ComparisonRow field (raw numbers, empty for None),
        followed by the readout's srm_p_value and has_srm."""
        names = [f.name for f in fields(ComparisonRow)]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names + ["srm_p_value", "has_srm"])
        for row in self.rows:
            values = [getattr(row, name) for name in names] + [self.srm_p_value, self.has_srm]
            writer.writerow(["" if v is None else v for v in values])
        return buffer.getvalue()


def compute_readout(arms: Sequence[ArmTotals], control: str, metrics: Sequence[MetricSpec],
                    options: ReadoutOptions = ReadoutOptions()) -> Readout:
    """Compare every non-control arm (in the given order) with `control` on every metric."""
    arms = tuple(arms)
    _validate(arms, control, metrics, options)
    by_name = {arm.arm: arm for arm in arms}
    weights = [options.weights[arm.arm] for arm in arms] if options.weights else [1.0] * len(arms)
    srm_p_value = st.sample_ratio_mismatch_p_value([arm.units for arm in arms], weights)

    partial = [_compare(by_name[control], arm, metric, options)
               for arm in arms if arm.arm != control for metric in metrics]
    raw = [row["p_value"] for row in partial]
    adjusted = {"holm": st.holm_adjust, "bh": st.benjamini_hochberg_adjust, "none": list}[options.correction](raw)
    rows = tuple(ComparisonRow(**row, adjusted_p_value=p, is_significant=p < options.alpha)
                 for row, p in zip(partial, adjusted))
    return Readout(control=control, arms=arms, options=options, srm_p_value=srm_p_value,
                   has_srm=srm_p_value < options.srm_threshold, rows=rows)


# --- one comparison --------------------------------------------------------------------------------------

def _compare(control: ArmTotals, variant: ArmTotals, metric: MetricSpec, options: ReadoutOptions) -> dict:
    a_totals, b_totals = control.metrics[metric.name], variant.metrics[metric.name]
    if metric.kind == "binary":
        a = st.SampleMoments.from_proportion(control.units, a_totals.total)
        b = st.SampleMoments.from_proportion(variant.units, b_totals.total)
        difference = st.two_proportion_z_test(a, b)
        chi_square_p = st.pearson_chi_square_2x2(a_totals.total, control.units, b_totals.total, variant.units,
                                                 yates=options.yates)[1]
        chance_to_win = st.beta_chance_to_beat(a_totals.total, control.units, b_totals.total, variant.units)
        expected_loss = st.beta_expected_loss(a_totals.total, control.units, b_totals.total, variant.units)
    else:
        a = st.SampleMoments.from_sums(control.units, a_totals.total, a_totals.total_squares)
        b = st.SampleMoments.from_sums(variant.units, b_totals.total, b_totals.total_squares)
        difference = st.welch_t_test(a, b)
        chi_square_p = None
        chance_to_win = st.normal_chance_to_beat(difference.value, difference.standard_error)
        expected_loss = st.normal_expected_loss(difference.value, difference.standard_error)
    # the lift gets an interval only where the difference is testable (its standard error alone can
    # vanish, e.g. a variant at 0%, where the delta method degenerates)
    lift = st.relative_lift(a, b, difference.dof)
    lift_testable = lift is not None and difference.is_testable

    if options.sequential:
        units = control.units + variant.units
        p_value = float(st.sequential_p_value(difference.value, difference.standard_error, units,
                                              options.alpha, options.sequential_tuning))
        interval = _sequence_interval(difference, units, options)
        lift_interval = _sequence_interval(lift, units, options) if lift_testable else None
    else:
        p_value = difference.p_value
        interval = difference.interval(options.alpha)
        lift_interval = lift.interval(options.alpha) if lift_testable else None

    return dict(
        variant=variant.arm, metric=metric.name, kind=metric.kind,
        control_units=control.units, variant_units=variant.units,
        control_value=a.mean, variant_value=b.mean, difference=difference.value,
        difference_low=interval[0] if interval else None, difference_high=interval[1] if interval else None,
        relative_lift=lift.value if lift else None,
        relative_low=lift_interval[0] if lift_interval else None,
        relative_high=lift_interval[1] if lift_interval else None,
        p_value=p_value, chi_square_p_value=chi_square_p, chance_to_win=chance_to_win, expected_loss=expected_loss,
    )


def _sequence_interval(estimate: st.Estimate, units: int, options: ReadoutOptions) -> tuple[float, float] | None:
    if not estimate.is_testable:
        return None
    half_width = float(st.confidence_sequence_half_width(estimate.standard_error, units, options.alpha,
                                                         options.sequential_tuning))
    return (estimate.value - half_width, estimate.value + half_width)


# --- validation -----------------------------------------------------------------------------------------

def _validate(arms: tuple[ArmTotals, ...], control: str, metrics: Sequence[MetricSpec],
              options: ReadoutOptions) -> None:
    names = [arm.arm for arm in arms]
    if len(arms) < 2:
        raise ValueError(f"an experiment needs at least 2 arms, got {len(arms)}: {', '.join(names) or 'none'}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"arm(s) listed more than once: {', '.join(duplicates)}; merge their totals first")
    if control not in names:
        raise ValueError(f"control {control!r} is not among the arms: {', '.join(map(repr, names))}")
    metric_names = [metric.name for metric in metrics]
    repeated = sorted({name for name in metric_names if metric_names.count(name) > 1})
    if repeated:
        raise ValueError(f"metric(s) listed more than once: {', '.join(map(repr, repeated))}")
    if options.weights is not None:
        unknown = [name for name in options.weights if name not in names]
        if unknown:
            raise ValueError(f"weights name unknown arm(s) {', '.join(map(repr, unknown))}; "
                             f"the arms are {', '.join(map(repr, names))}")
        missing = [name for name in names if name not in options.weights]
        if missing:
            raise ValueError(f"weights must give every arm a share; missing: {', '.join(map(repr, missing))}")
        bad = {name: w for name, w in options.weights.items() if not (w > 0 and math.isfinite(w))}
        if bad:
            raise ValueError(f"weights must be positive numbers, got {bad}")
    for arm in arms:
        for metric in metrics:
            if metric.name not in arm.metrics:
                raise ValueError(f"arm {arm.arm!r} has no totals for metric {metric.name!r}")
            _validate_totals(arm, metric, arm.metrics[metric.name])


def _validate_totals(arm: ArmTotals, metric: MetricSpec, totals: MetricTotals) -> None:
    where = f"arm {arm.arm!r}, metric {metric}"
    if metric.kind == "binary":
        if not 0 <= totals.total <= arm.units:
            raise ValueError(f"{where}: {totals.total:g} successes is outside [0, {arm.units}] units")
        if not math.isclose(totals.total_squares, totals.total, rel_tol=1e-9, abs_tol=1e-9):
            raise ValueError(f"{where}: a 0/1 metric has total_squares == total, got {totals.total_squares:g} "
                             f"vs {totals.total:g}; is it really binary?")
    elif arm.units == 0 and (totals.total != 0 or totals.total_squares != 0):
        raise ValueError(f"{where}: has totals but 0 units")
    elif arm.units > 0 and totals.total_squares < (totals.total / arm.units) * totals.total * (1 - 1e-9):
        # Σx² ≥ (Σx)²/n always holds; a smaller value means the totals are not a sum and a sum of squares
        raise ValueError(f"{where}: total_squares {totals.total_squares:g} is below total²/units "
                         f"{totals.total * totals.total / arm.units:g}; expected SUM(x * x)")


# --- rendering ------------------------------------------------------------------------------------------

def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _srm_sentence(readout: Readout) -> str:
    units = ", ".join(f"{arm.arm} {arm.units:,}" for arm in readout.arms)
    if readout.has_srm:
        return (f"SRM: p={_p(readout.srm_p_value)} < {readout.options.srm_threshold:g}: sample ratio mismatch, "
                f"decisions blocked (units: {units})")
    return f"SRM: p={_p(readout.srm_p_value)}: no sample ratio mismatch (units: {units})"


def _method_sentence(readout: Readout) -> str:
    o = readout.options
    mode = (f"sequential (always-valid, tuned for {o.sequential_tuning:g} units)" if o.sequential
            else "fixed-horizon")
    correction = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}[o.correction]
    return (f"Control {readout.control}; {mode} tests at alpha {o.alpha:g}, {correction} correction over "
            f"{len(readout.rows)} comparison(s); intervals at {(1 - o.alpha) * 100:g}%.")


def _display_columns(readout: Readout) -> list[str]:
    return ["variant", "metric", "control units", "variant units", "control", "variant", "difference",
            "interval", "lift", "lift interval", "p", "adjusted p", "chance to win", "decision"]


def _display_cells(readout: Readout, row: ComparisonRow) -> list[str]:
    binary = row.kind == "binary"
    value = (lambda v: f"{v * 100:.3f}%") if binary else (lambda v: f"{v:.5g}")
    delta = (lambda v: f"{v * 100:+.3f}pp") if binary else (lambda v: f"{v:+.5g}")
    if readout.has_srm:
        decision = "blocked: SRM"
    elif row.is_significant:
        decision = "significant increase" if row.difference > 0 else "significant decrease"
    else:
        decision = "not significant"
    return [
        row.variant, row.metric, f"{row.control_units:,}", f"{row.variant_units:,}",
        value(row.control_value), value(row.variant_value), delta(row.difference),
        _interval(row.difference_low, row.difference_high, delta),
        "n/a" if row.relative_lift is None else _percent(row.relative_lift),
        _interval(row.relative_low, row.relative_high, _percent),
        _p(row.p_value), _p(row.adjusted_p_value),
        "n/a" if row.chance_to_win is None else f"{row.chance_to_win * 100:.1f}%",
        decision,
    ]


def _percent(value: float) -> str:
    return f"{value * 100:+.2f}%"


def _interval(low: float | None, high: float | None, fmt) -> str:
    return "n/a" if low is None or high is None else f"[{fmt(low)}, {fmt(high)}]"


def _p(p: float) -> str:
    return f"{p:.2e}" if p < 1e-4 else f"{p:.4f}"


def _markdown_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
