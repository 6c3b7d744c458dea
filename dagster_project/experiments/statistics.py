"""Statistical primitives of an experiment readout, each with its formula.

Everything here works on sufficient statistics (units, sums, sums of squares), so a readout computed
from a warehouse GROUP BY equals one computed from raw rows. Notation: control arm A, variant arm B,
n units, mean m, per-unit variance s²; the estimate is always "variant minus control".

p-values come from survival functions (`norm.sf`, `t.sf`, `chi2.sf`), never `1 - cdf`, so a huge
effect gives a tiny positive p instead of an underflow to 0.

The frequentist and sequential parts follow the approach of GrowthBook's gbstats (unpooled variance,
delta method for the relative lift, asymptotic confidence sequences); the code is our own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import special, stats

# --- moments -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SampleMoments:
    """Units, mean and per-unit variance of one arm on one metric."""

    units: int
    mean: float
    variance: float

    @classmethod
    def from_sums(cls, units: int, total: float, total_squares: float) -> "SampleMoments":
        """Sample mean total/n and unbiased variance s² = (Σx² − (Σx)²/n) / (n − 1).

        The variance is 0 for fewer than 2 units, and clamped at 0 where floating-point rounding of
        the sums makes it slightly negative."""
        if units <= 0:
            return cls(0, 0.0, 0.0)
        mean = total / units
        if units < 2:
            return cls(units, mean, 0.0)
        return cls(units, mean, max((total_squares - total * total / units) / (units - 1), 0.0))

    @classmethod
    def from_proportion(cls, units: int, successes: float) -> "SampleMoments":
        """Rate p = successes/n with the Bernoulli variance p(1 − p) (the unpooled Wald variance)."""
        if units <= 0:
            return cls(0, 0.0, 0.0)
        rate = successes / units
        return cls(units, rate, rate * (1.0 - rate))

    @property
    def variance_of_mean(self) -> float:
        """s² / n, the squared standard error of the mean (0 for an empty arm)."""
        return self.variance / self.units if self.units > 0 else 0.0


# --- fixed-horizon tests -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    """A normally (dof = inf) or t-distributed estimate of an effect.

    A test exists only where the standard error is positive and finite; otherwise (an empty arm, or
    both arms without variance) `p_value` is 1 and `interval` is None: the data cannot say anything."""

    value: float
    standard_error: float
    dof: float = math.inf

    @property
    def is_testable(self) -> bool:
        return math.isfinite(self.standard_error) and self.standard_error > 0 and math.isfinite(self.value)

    @property
    def statistic(self) -> float:
        return self.value / self.standard_error if self.is_testable else 0.0

    @property
    def p_value(self) -> float:
        """Two-sided: p = 2·sf(|z|) for a normal estimate, 2·sf_t(|t|, dof) for a t estimate."""
        if not self.is_testable:
            return 1.0
        tail = abs(self.statistic)
        half = stats.norm.sf(tail) if math.isinf(self.dof) else stats.t.sf(tail, self.dof)
        return float(min(2.0 * half, 1.0))

    def critical_value(self, alpha: float) -> float:
        """z_{1−α/2} or t_{1−α/2, dof}, through isf for accuracy at small α."""
        return float(stats.norm.isf(alpha / 2) if math.isinf(self.dof) else stats.t.isf(alpha / 2, self.dof))

    def interval(self, alpha: float) -> tuple[float, float] | None:
        """value ± critical_value(α) · standard_error."""
        if not self.is_testable:
            return None
        half_width = self.critical_value(alpha) * self.standard_error
        return (self.value - half_width, self.value + half_width)


def two_proportion_z_test(control: SampleMoments, variant: SampleMoments) -> Estimate:
    """Difference of rates with the unpooled (Welch/Wald) standard error:

        d = p_B − p_A,   se = sqrt(p_A(1 − p_A)/n_A + p_B(1 − p_B)/n_B),   z = d / se ~ N(0, 1).

    Build the moments with `SampleMoments.from_proportion`."""
    if control.units <= 0 or variant.units <= 0:
        return Estimate(variant.mean - control.mean, 0.0)
    return Estimate(variant.mean - control.mean, math.sqrt(control.variance_of_mean + variant.variance_of_mean))


def welch_satterthwaite_dof(control: SampleMoments, variant: SampleMoments) -> float:
    """ν = (v_A + v_B)² / (v_A²/(n_A − 1) + v_B²/(n_B − 1)) with v = s²/n; an arm with no variance
    adds nothing to the denominator. inf when the denominator vanishes (no test is possible then)."""
    v_a, v_b = control.variance_of_mean, variant.variance_of_mean
    total = v_a + v_b
    if not (total > 0 and math.isfinite(total)):
        return math.inf
    # divided through by (v_A + v_B)², so huge variances cannot overflow
    share_a, share_b = v_a / total, v_b / total
    denominator = 0.0
    if share_a > 0 and control.units > 1:
        denominator += share_a * share_a / (control.units - 1)
    if share_b > 0 and variant.units > 1:
        denominator += share_b * share_b / (variant.units - 1)
    return 1.0 / denominator if denominator > 0 else math.inf


def welch_t_test(control: SampleMoments, variant: SampleMoments) -> Estimate:
    """Difference of means with unequal variances (Welch):

        d = m_B − m_A,   se = sqrt(s_A²/n_A + s_B²/n_B),   t = d / se ~ t(ν),  ν by Welch–Satterthwaite.

    Not testable (se = 0) unless both arms have at least 2 units: one unit has no sample variance, and
    taking it as 0 would make the test overconfident."""
    if control.units < 2 or variant.units < 2:
        return Estimate(variant.mean - control.mean, 0.0)
    standard_error = math.sqrt(control.variance_of_mean + variant.variance_of_mean)
    return Estimate(variant.mean - control.mean, standard_error, welch_satterthwaite_dof(control, variant))


def relative_lift(control: SampleMoments, variant: SampleMoments, dof: float = math.inf) -> Estimate | None:
    """Relative lift r = (m_B − m_A) / |m_A| with its delta-method standard error:

        Var(r) ≈ Var(m_B)/m_A² + m_B² · Var(m_A)/m_A⁴,   Var(m) = s²/n,

    the first-order Taylor expansion of m_B/m_A around the true means (the arms are independent, so
    there is no covariance term). None when the control mean is 0 (the lift is undefined) or so close
    to 0 that the lift overflows."""
    if control.mean == 0 or control.units <= 0 or variant.units <= 0:
        return None
    m_a, m_b = np.float64(control.mean), np.float64(variant.mean)
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        ratio = m_b / m_a
        # the same variance written as (Var(m_B) + ratio² · Var(m_A)) / m_A², which needs no m_A⁴
        variance = (variant.variance_of_mean + ratio**2 * control.variance_of_mean) / m_a**2
        lift = (m_b - m_a) / abs(m_a)
    if not (np.isfinite(lift) and np.isfinite(variance)):
        return None
    return Estimate(float(lift), float(np.sqrt(variance)), dof)


def pearson_chi_square_2x2(control_successes: float, control_units: int, variant_successes: float,
                           variant_units: int, *, yates: bool = False) -> tuple[float, float]:
    """(statistic, p) of Pearson's chi-square test of independence on the 2x2 table

        [[s_A, n_A − s_A], [s_B, n_B − s_B]],   E_ij = row_i · column_j / N,
        χ² = Σ (|O_ij − E_ij| − c)² / E_ij,   p = sf_χ²(χ², 1 dof),

    with c = 0 or, with Yates' correction, c = min(0.5, |O − E|) (as scipy: never past zero). A table
    with an empty row or column has no test: (0, 1)."""
    observed = np.array([[control_successes, control_units - control_successes],
                         [variant_successes, variant_units - variant_successes]], dtype=float)
    total = observed.sum()
    if total <= 0:
        return 0.0, 1.0
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True) / total
    if not np.all(expected > 0):
        return 0.0, 1.0
    deviation = np.abs(observed - expected)
    if yates:
        deviation = deviation - np.minimum(0.5, deviation)
    statistic = float(np.sum(deviation**2 / expected))
    return statistic, float(stats.chi2.sf(statistic, 1))


def sample_ratio_mismatch_p_value(units: Sequence[int], weights: Sequence[float]) -> float:
    """Chi-square goodness of fit of the observed units per arm to the expected shares:

        E_i = N · w_i / Σw,   χ² = Σ (O_i − E_i)² / E_i,   p = sf_χ²(χ², k − 1).

    1 when no units were observed. Weights must be positive."""
    observed = np.asarray(units, dtype=float)
    shares = np.asarray(weights, dtype=float)
    total = observed.sum()
    if total <= 0:
        return 1.0
    expected = total * shares / shares.sum()
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return float(stats.chi2.sf(statistic, len(observed) - 1))


# --- sequential testing: asymptotic confidence sequences ------------------------------------------------

def sequential_rho(alpha: float, tuning: float):
    """The mixing parameter ρ of the normal-mixture boundary, chosen so the confidence sequence is
    narrowest at n = tuning units (Waudby-Smith et al. 2023, "Time-uniform central limit theory and
    asymptotic confidence sequences", the approximate optimum):

        ρ = sqrt((−2 ln α + ln(−2 ln α + 1)) / tuning)."""
    log_term = -2.0 * np.log(alpha)
    return np.sqrt((log_term + np.log(log_term + 1.0)) / tuning)


def confidence_sequence_half_width(standard_error, units, alpha: float, tuning: float):
    """Half-width of the two-sided asymptotic confidence sequence (Waudby-Smith et al. 2023, eq. 9):

        σ̂ · sqrt( 2(nρ² + 1) / (n²ρ²) · ln( sqrt(nρ² + 1) / α ) ),   σ̂² = n · se²,

    where n counts the units of both arms and se is the fixed-horizon standard error of the estimate.
    The interval estimate ± half-width covers the true effect at every n simultaneously with
    probability ≥ 1 − α (asymptotically), so it stays valid however often it is looked at.
    Accepts numpy arrays."""
    rho_squared = sequential_rho(alpha, tuning) ** 2
    n = np.asarray(units, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sigma_squared = n * np.asarray(standard_error, dtype=float) ** 2
        width = np.sqrt(sigma_squared * 2.0 * (n * rho_squared + 1.0) / (n**2 * rho_squared)
                        * np.log(np.sqrt(n * rho_squared + 1.0) / alpha))
    return width


def sequential_p_value(estimate, standard_error, units, alpha: float, tuning: float):
    """Always-valid p-value dual to `confidence_sequence_half_width`: p = min(1, 1/E) with the
    mixture e-value

        E = exp( ρ² · n · z² / (2(nρ² + 1)) ) / sqrt(nρ² + 1),   z = estimate / se.

    p < α exactly when the confidence sequence excludes 0. 1 where se is 0. Accepts numpy arrays.
    (ρ depends on α, so the p-value is tied to the α it was tuned for.)"""
    rho_squared = sequential_rho(alpha, tuning) ** 2
    n = np.asarray(units, dtype=float)
    se = np.asarray(standard_error, dtype=float)
    testable = se > 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z_squared = np.where(testable, (np.asarray(estimate, dtype=float) / np.where(testable, se, 1.0)) ** 2, 0.0)
        scale = n * rho_squared + 1.0
        # log E, so a huge z gives p -> exp(-big) instead of overflowing
        log_e_value = rho_squared * n * z_squared / (2.0 * scale) - 0.5 * np.log(scale)
        p = np.exp(-np.maximum(log_e_value, 0.0))
    return np.where(testable, p, 1.0)


# --- multiple comparisons --------------------------------------------------------------------------

def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (controls the family-wise error rate under any dependence): with
    p_(1) ≤ … ≤ p_(m) sorted,

        adjusted_(i) = min(1, max_{j ≤ i} (m − j + 1) · p_(j)),

    so adjusted p-values are ≥ the raw ones, ≤ 1, and keep the order of the raw ones."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return []
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted.tolist()


def benjamini_hochberg_adjust(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg step-up adjustment (controls the false discovery rate for independent or
    positively dependent tests): with p_(1) ≤ … ≤ p_(m),

        adjusted_(i) = min(1, min_{j ≥ i} m · p_(j) / j)."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return []
    order = np.argsort(p, kind="stable")
    m = p.size
    scaled = m * p[order] / np.arange(1, m + 1)
    # never below the raw p-value: m·p/m can round one ulp under p
    stepped = np.maximum(np.minimum.accumulate(scaled[::-1])[::-1], p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted.tolist()


# --- Bayesian: Beta posteriors for rates, a normal posterior for means ---------------------------------

# Posterior mass beyond these quantiles is handled in closed form or ignored (an error below 1e-13).
_TAIL = 1e-14
# Composite Gauss–Legendre: 16 panels x 64 nodes over the range where both posteriors have mass. The
# integrands there are smooth (a density times a distribution function, both Beta with a, b ≥ 1), so
# this is accurate to ~1e-12, and one vectorised call replaces thousands of adaptive-quadrature steps.
_NODES, _NODE_WEIGHTS = np.polynomial.legendre.leggauss(64)
_PANELS = 16


@dataclass(frozen=True)
class _Beta:
    a: float
    b: float

    @classmethod
    def posterior(cls, successes: float, units: float) -> "_Beta":
        """Beta(1 + s, 1 + n − s): the posterior of a rate under a uniform Beta(1, 1) prior."""
        return cls(1.0 + successes, 1.0 + units - successes)

    @property
    def mean(self) -> float:
        return self.a / (self.a + self.b)

    def pdf(self, x):
        return stats.beta.pdf(x, self.a, self.b)

    def cdf(self, x):
        return special.betainc(self.a, self.b, x)

    def sf(self, x):
        return special.betaincc(self.a, self.b, x)

    def central_range(self) -> tuple[float, float]:
        return float(special.betaincinv(self.a, self.b, _TAIL)), float(special.betainccinv(self.a, self.b, _TAIL))


def _overlap(first: _Beta, second: _Beta) -> tuple[float, float]:
    """[c, u]: where both posteriors have mass. Below c one of them has (almost) none, above u too."""
    (low_1, high_1), (low_2, high_2) = first.central_range(), second.central_range()
    low = max(low_1, low_2)
    return low, max(low, min(high_1, high_2))


def _integrate(integrand, low: float, high: float) -> float:
    if high <= low:
        return 0.0
    edges = np.linspace(low, high, _PANELS + 1)
    centres, halves = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    x = centres[:, None] + halves[:, None] * _NODES[None, :]
    return float(np.sum(halves[:, None] * _NODE_WEIGHTS[None, :] * integrand(x)))


def beta_chance_to_beat(control_successes: float, control_units: float, variant_successes: float,
                        variant_units: float) -> float:
    """P(θ_B > θ_A) for independent Beta(1 + s, 1 + n − s) posteriors (f = density, F = cdf, S = 1 − F):

        P = ∫ f_A(x) · S_B(x) dx = F_A(c) + ∫_c^u f_A(x) · S_B(x) dx,

    where [c, u] is the range in which both posteriors have mass (their central 1 − 2e-14): below c
    either A has no mass or S_B = 1, above u the integrand vanishes. Integrating over only that range
    keeps the numerical integral accurate for posteriors of any width or distance: about 1e-9
    absolute at any count (the tests hold it to 1e-6 against the exact closed-form sum), where a normal
    approximation drifts for small counts and rates near 0 or 1."""
    control = _Beta.posterior(control_successes, control_units)
    variant = _Beta.posterior(variant_successes, variant_units)
    low, high = _overlap(control, variant)
    value = control.cdf(low) + _integrate(lambda x: control.pdf(x) * variant.sf(x), low, high)
    return float(min(max(value, 0.0), 1.0))


def beta_expected_loss(control_successes: float, control_units: float, variant_successes: float,
                       variant_units: float) -> float:
    """E[max(θ_A − θ_B, 0)]: the rate expected to be lost by shipping the variant (absolute, in rate
    units). With m = mean and A⁺ = Beta(a_A + 1, b_A) (so that x·f_A(x) = m_A·f_A⁺(x)):

        E[(θ_A − y)⁺] = m_A · S_A⁺(y) − y · S_A(y),
        loss = ∫ f_B(y) · E[(θ_A − y)⁺] dy
             = m_A · F_B(c) − m_B · F_B⁺(c) + ∫_c^u f_B(y) · E[(θ_A − y)⁺] dy,

    where below c, θ_A > y almost surely (the inner expectation is m_A − y, integrated in closed form)
    or f_B vanishes, and above u both terms vanish; [c, u] as in `beta_chance_to_beat`."""
    control = _Beta.posterior(control_successes, control_units)
    variant = _Beta.posterior(variant_successes, variant_units)
    control_plus, variant_plus = _Beta(control.a + 1.0, control.b), _Beta(variant.a + 1.0, variant.b)
    low, high = _overlap(control, variant)
    below = control.mean * variant.cdf(low) - variant.mean * variant_plus.cdf(low)
    inner = lambda y: variant.pdf(y) * (control.mean * control_plus.sf(y) - y * control.sf(y))  # noqa: E731
    return float(max(below + _integrate(inner, low, high), 0.0))


def normal_chance_to_beat(difference: float, standard_error: float) -> float | None:
    """P(δ > 0) for the normal approximation δ ~ N(d, se²) (a flat prior): Φ(d / se). None if se is 0."""
    if not (standard_error > 0 and math.isfinite(standard_error)):
        return None
    with np.errstate(over="ignore", under="ignore"):
        return float(stats.norm.cdf(difference / standard_error))


def normal_expected_loss(difference: float, standard_error: float) -> float | None:
    """E[max(−δ, 0)] for δ ~ N(d, se²): se · φ(d/se) − d · Φ(−d/se). None if se is 0."""
    if not (standard_error > 0 and math.isfinite(standard_error)):
        return None
    z = difference / standard_error
    with np.errstate(over="ignore", under="ignore"):  # φ(z) of a huge z is 0, as it should be
        return float(max(standard_error * stats.norm.pdf(z) - difference * stats.norm.sf(z), 0.0))
