"""The experiment statistics primitives against scipy and statsmodels, on fixed tables of several
shapes (tiny counts, 5,000,000-unit arms, a zero-conversion arm, equal arms), plus simulations of
what the tests promise: sequential false-positive control under daily looks, interval coverage, and
sample-ratio-mismatch detection."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_
from scipy import special, stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.multitest import multipletests

from dagster_project.experiments import statistics as st
from dagster_project.experiments.statistics import SampleMoments

REL = 1e-6

# (control successes, control units, variant successes, variant units)
BINARY_TABLES = [
    (3, 10, 7, 12),                          # tiny counts
    (500_000, 5_000_000, 502_300, 5_000_000),  # huge arms, a small real effect
    (0, 1000, 12, 1000),                     # a zero-conversion control
    (40, 400, 40, 400),                      # equal arms
    (97, 1000, 131, 1200),                   # unequal sizes
]


def proportions(a_s, a_n, b_s, b_n):
    return SampleMoments.from_proportion(a_n, a_s), SampleMoments.from_proportion(b_n, b_s)


def moments_of(values: np.ndarray) -> SampleMoments:
    return SampleMoments.from_sums(len(values), float(values.sum()), float((values * values).sum()))


# --- two-proportion z test (unpooled) --------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")  # statsmodels' odds ratio at 0%
@pytest.mark.parametrize("table", BINARY_TABLES)
def test_two_proportion_z_test_matches_statsmodels_wald(table):
    a_s, a_n, b_s, b_n = table
    estimate = st.two_proportion_z_test(*proportions(*table))
    reference = sm_proportion.test_proportions_2indep(b_s, b_n, a_s, a_n, method="wald", compare="diff")
    low, high = sm_proportion.confint_proportions_2indep(b_s, b_n, a_s, a_n, method="wald", compare="diff", alpha=0.05)
    assert estimate.value == pytest.approx(b_s / b_n - a_s / a_n, rel=REL, abs=1e-15)
    assert estimate.standard_error == pytest.approx(math.sqrt(reference.variance), rel=REL)
    assert estimate.p_value == pytest.approx(reference.pvalue, rel=REL)
    assert estimate.interval(0.05) == pytest.approx((low, high), rel=REL, abs=1e-12)


def test_z_test_of_equal_arms_has_p_one_and_a_symmetric_interval():
    estimate = st.two_proportion_z_test(*proportions(40, 400, 40, 400))
    low, high = estimate.interval(0.05)
    assert estimate.p_value == 1.0
    assert low == pytest.approx(-high)


def test_z_test_without_any_variance_or_units_is_not_testable():
    for table in [(0, 1000, 0, 1000), (3, 10, 0, 0), (0, 0, 0, 0)]:
        estimate = st.two_proportion_z_test(*proportions(*table))
        assert estimate.p_value == 1.0
        assert estimate.interval(0.05) is None


def test_a_huge_effect_gives_a_tiny_positive_p_value_equal_to_the_survival_function():
    estimate = st.two_proportion_z_test(*proportions(1_000, 100_000, 2_300, 100_000))
    z = estimate.value / estimate.standard_error
    assert 1.0 - stats.norm.cdf(z) == 0.0  # what 1 - cdf would have reported
    assert 0.0 < estimate.p_value < 1e-100
    assert estimate.p_value == pytest.approx(2 * stats.norm.sf(z), rel=REL)


# --- Pearson chi-square 2x2 -----------------------------------------------------------------------

@pytest.mark.parametrize("yates", [False, True])
@pytest.mark.parametrize("table", BINARY_TABLES)
def test_chi_square_matches_scipy_chi2_contingency(table, yates):
    a_s, a_n, b_s, b_n = table
    statistic, p = st.pearson_chi_square_2x2(a_s, a_n, b_s, b_n, yates=yates)
    reference = stats.chi2_contingency([[a_s, a_n - a_s], [b_s, b_n - b_s]], correction=yates)
    assert statistic == pytest.approx(reference.statistic, rel=REL, abs=1e-12)
    assert p == pytest.approx(reference.pvalue, rel=REL)


def test_yates_correction_makes_the_chi_square_test_more_conservative():
    plain = st.pearson_chi_square_2x2(3, 10, 7, 12)[1]
    corrected = st.pearson_chi_square_2x2(3, 10, 7, 12, yates=True)[1]
    assert corrected > plain


def test_chi_square_of_a_table_with_an_empty_column_or_row_is_p_one():
    assert st.pearson_chi_square_2x2(0, 1000, 0, 1000) == (0.0, 1.0)
    assert st.pearson_chi_square_2x2(3, 10, 0, 0) == (0.0, 1.0)


def test_chi_square_p_of_a_huge_effect_is_positive_and_the_survival_function():
    statistic, p = st.pearson_chi_square_2x2(1_000, 100_000, 2_300, 100_000)
    assert 0.0 < p < 1e-100
    assert p == pytest.approx(stats.chi2.sf(statistic, 1), rel=REL)


# --- Welch t test ------------------------------------------------------------------------------------

def _samples(seed: int):
    rng = np.random.default_rng(seed)
    return [
        (np.array([1.0, 2.0, 3.0]), np.array([2.5, 4.0, 3.5, 6.0, 5.0])),             # tiny
        (rng.lognormal(1.0, 1.0, 200_000), rng.lognormal(1.01, 1.1, 150_000)),        # large, skewed
        (rng.normal(10.0, 1.0, 50), rng.normal(10.0, 5.0, 80)),                       # unequal variances
        (rng.exponential(2.0, 1000) * (rng.random(1000) < 0.1), rng.exponential(2.0, 1000) * (rng.random(1000) < 0.12)),
    ]


@pytest.mark.parametrize("case", range(4))
def test_welch_t_test_from_sums_matches_scipy_on_raw_arrays(case):
    control, variant = _samples(5)[case]
    estimate = st.welch_t_test(moments_of(control), moments_of(variant))
    reference = stats.ttest_ind(variant, control, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert estimate.statistic == pytest.approx(reference.statistic, rel=REL)
    assert estimate.dof == pytest.approx(reference.df, rel=REL)
    assert estimate.p_value == pytest.approx(reference.pvalue, rel=REL)
    assert estimate.interval(0.05) == pytest.approx((interval.low, interval.high), rel=REL)


def test_welch_needs_two_units_per_arm():
    one = SampleMoments.from_sums(1, 5.0, 25.0)
    many = moments_of(np.array([1.0, 2.0, 3.0, 4.0]))
    assert st.welch_t_test(one, many).p_value == 1.0
    assert st.welch_t_test(one, many).interval(0.05) is None


def test_welch_p_value_of_a_huge_effect_is_the_t_survival_function():
    rng = np.random.default_rng(1)
    control, variant = rng.normal(0, 1, 5000), rng.normal(0.5, 1, 5000)  # t ≈ 25
    estimate = st.welch_t_test(moments_of(control), moments_of(variant))
    assert 0.0 < estimate.p_value < 1e-100
    assert estimate.p_value == pytest.approx(2 * stats.t.sf(estimate.statistic, estimate.dof), rel=REL)


def test_welch_satterthwaite_dof_formula():
    a = SampleMoments(units=10, mean=0.0, variance=4.0)
    b = SampleMoments(units=20, mean=0.0, variance=1.0)
    va, vb = 4.0 / 10, 1.0 / 20
    assert st.welch_satterthwaite_dof(a, b) == pytest.approx((va + vb) ** 2 / (va**2 / 9 + vb**2 / 19), rel=1e-12)


# --- delta-method relative lift -----------------------------------------------------------------------

def test_relative_lift_standard_error_matches_a_numerical_delta_method():
    control, variant = SampleMoments(800, 2.0, 9.0), SampleMoments(900, 2.3, 11.0)
    lift = st.relative_lift(control, variant)
    ratio = lambda m_a, m_b: (m_b - m_a) / abs(m_a)  # noqa: E731
    h = 1e-6
    gradient = np.array([(ratio(2.0 + h, 2.3) - ratio(2.0 - h, 2.3)) / (2 * h),
                         (ratio(2.0, 2.3 + h) - ratio(2.0, 2.3 - h)) / (2 * h)])
    covariance = np.diag([control.variance_of_mean, variant.variance_of_mean])
    assert lift.value == pytest.approx(0.15, rel=1e-12)
    assert lift.standard_error == pytest.approx(math.sqrt(gradient @ covariance @ gradient), rel=1e-6)


def test_relative_lift_is_undefined_when_the_control_is_zero():
    assert st.relative_lift(*proportions(0, 1000, 12, 1000)) is None


def test_relative_lift_intervals_cover_the_true_lift_about_95_percent_of_the_time():
    rng = np.random.default_rng(42)
    experiments, units, p_control, p_variant = 3000, 20_000, 0.10, 0.11
    control = rng.binomial(units, p_control, experiments)
    variant = rng.binomial(units, p_variant, experiments)
    true_lift = p_variant / p_control - 1
    covered = 0
    for a_s, b_s in zip(control, variant):
        low, high = st.relative_lift(*proportions(a_s, units, b_s, units)).interval(0.05)
        covered += low <= true_lift <= high
    assert 0.93 <= covered / experiments <= 0.97


# --- sequential testing --------------------------------------------------------------------------------

def test_confidence_sequence_is_wider_than_the_fixed_interval_and_tightest_near_the_tuning_size():
    n = np.logspace(1, 7, 3000)
    se = 1 / np.sqrt(n)
    fixed = stats.norm.isf(0.025) * se
    for tuning in (1000.0, 5000.0, 50_000.0):
        ratio = st.confidence_sequence_half_width(se, n, 0.05, tuning) / fixed
        assert np.all(ratio > 1)
        assert tuning * 0.9 <= n[np.argmin(ratio)] <= tuning * 1.1


def test_sequential_p_value_is_below_alpha_exactly_when_the_sequence_excludes_zero():
    rng = np.random.default_rng(3)
    estimate, se = rng.normal(0, 0.01, 5000), rng.uniform(0.001, 0.01, 5000)
    n = rng.integers(100, 1_000_000, 5000)
    for alpha in (0.01, 0.05, 0.1):
        p = st.sequential_p_value(estimate, se, n, alpha, 5000.0)
        excludes_zero = np.abs(estimate) > st.confidence_sequence_half_width(se, n, alpha, 5000.0)
        assert np.all((p < alpha) == excludes_zero)
        assert np.all((0 < p) & (p <= 1))


def test_sequential_p_value_is_larger_than_the_fixed_one_and_one_without_variance():
    z_test = st.two_proportion_z_test(*proportions(500, 5000, 580, 5000))
    sequential = float(st.sequential_p_value(z_test.value, z_test.standard_error, 10_000, 0.05, 5000.0))
    assert sequential > z_test.p_value
    assert float(st.sequential_p_value(0.1, 0.0, 10_000, 0.05, 5000.0)) == 1.0


def test_sequential_p_value_of_a_huge_effect_does_not_overflow():
    p = float(st.sequential_p_value(1.0, 1e-4, 10**7, 0.05, 5000.0))
    assert p == 0.0 or 0.0 < p < 1e-100
    assert math.isfinite(p)


def test_a_a_simulation_with_daily_looks_sequential_holds_alpha_and_naive_peeking_does_not():
    """300 A/A experiments, 20 daily looks each. 'Significant at any look' is a false positive."""
    alpha, experiments, looks, daily_units, rate = 0.05, 300, 20, 250, 0.1
    rng = np.random.default_rng(20260101)
    successes = rng.binomial(daily_units, rate, size=(experiments, looks, 2)).cumsum(axis=1)
    units = daily_units * np.arange(1, looks + 1)
    naive = np.zeros((experiments, looks), dtype=bool)
    sequential = np.zeros((experiments, looks), dtype=bool)
    for e in range(experiments):
        for look in range(looks):
            n = int(units[look])
            estimate = st.two_proportion_z_test(*proportions(successes[e, look, 0], n, successes[e, look, 1], n))
            naive[e, look] = estimate.p_value < alpha
            p = st.sequential_p_value(estimate.value, estimate.standard_error, 2 * n, alpha, 5000.0)
            sequential[e, look] = p < alpha
    naive_rate, sequential_rate = naive.any(axis=1).mean(), sequential.any(axis=1).mean()
    margin = 2.5 * math.sqrt(alpha * (1 - alpha) / experiments)  # ~0.03
    assert sequential_rate <= alpha + margin
    assert naive_rate > 1.5 * alpha
    assert naive[:, -1].mean() <= alpha + margin  # one look at the end is fine for the naive test


def test_a_a_simulation_of_a_campaign_run_looked_at_daily_as_outcomes_arrive():
    """A campaign run's units all enter at once; what grows between looks are their outcomes (a
    conversion arrives days after the send). 300 A/A runs of 2 x 2,000 units, looked at on each of 20
    days, read as the warehouse readouts read them (sequential, tuned to the run's units)."""
    alpha, experiments, looks, units, rate = 0.05, 300, 20, 2000, 0.1
    rng = np.random.default_rng(7)
    converts = rng.random((experiments, 2, units)) < rate
    days_to_convert = rng.exponential(5.0, (experiments, 2, units))
    naive = np.zeros((experiments, looks), dtype=bool)
    sequential = np.zeros((experiments, looks), dtype=bool)
    for look in range(looks):
        successes = (converts & (days_to_convert <= look + 1)).sum(axis=2)
        for e in range(experiments):
            estimate = st.two_proportion_z_test(*proportions(successes[e, 0], units, successes[e, 1], units))
            naive[e, look] = estimate.p_value < alpha
            p = st.sequential_p_value(estimate.value, estimate.standard_error, 2 * units, alpha, 2.0 * units)
            sequential[e, look] = p < alpha
    margin = 2.5 * math.sqrt(alpha * (1 - alpha) / experiments)
    assert sequential.any(axis=1).mean() <= alpha + margin
    assert naive.any(axis=1).mean() > 1.5 * alpha  # stopping at the first "significant" look
    assert naive[:, -1].mean() <= alpha + margin


# --- sample ratio mismatch -----------------------------------------------------------------------------

@pytest.mark.parametrize("units, weights", [
    ([5300, 4700], [1, 1]), ([5000, 5000], [1, 1]), ([1010, 2050, 2940], [1, 2, 3]),
    ([90, 10], [0.9, 0.1]), ([3, 0, 5], [1, 1, 1]),
])
def test_srm_p_value_matches_scipy_chisquare(units, weights):
    expected = np.array(weights, float) / sum(weights) * sum(units)
    assert st.sample_ratio_mismatch_p_value(units, weights) == pytest.approx(
        stats.chisquare(units, expected).pvalue, rel=REL)


def test_srm_is_detected_on_a_skewed_split_and_not_on_a_fair_one():
    assert st.sample_ratio_mismatch_p_value([5300, 4700], [1, 1]) < 0.001
    assert st.sample_ratio_mismatch_p_value([5030, 4970], [1, 1]) > 0.1
    assert st.sample_ratio_mismatch_p_value([6000, 4000], [60, 40]) == pytest.approx(1.0)
    assert st.sample_ratio_mismatch_p_value([0, 0], [1, 1]) == 1.0


# --- multiple comparisons -----------------------------------------------------------------------------

FIXED_P = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04, 0.9, 1e-12]


@pytest.mark.parametrize("ours, theirs", [(st.holm_adjust, "holm"), (st.benjamini_hochberg_adjust, "fdr_bh")])
def test_adjustments_match_statsmodels_multipletests(ours, theirs):
    rng = np.random.default_rng(9)
    for p in [FIXED_P, rng.uniform(0, 0.2, 30).tolist(), [0.5], []]:
        if not p:
            assert ours(p) == []
            continue
        assert ours(p) == pytest.approx(multipletests(p, method=theirs)[1].tolist(), rel=REL)


@settings(max_examples=200, deadline=None)
@given(st_.lists(st_.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=40))
def test_adjusted_p_values_are_monotone_at_least_raw_and_at_most_one(p_values):
    for adjust in (st.holm_adjust, st.benjamini_hochberg_adjust):
        adjusted = adjust(p_values)
        assert all(raw <= adj <= 1.0 for raw, adj in zip(p_values, adjusted))
        order = sorted(range(len(p_values)), key=lambda i: p_values[i])
        in_order = [adjusted[i] for i in order]
        assert all(x <= y for x, y in zip(in_order, in_order[1:]))


# --- Bayesian chance to win and expected loss ----------------------------------------------------------

def exact_chance_to_beat(a_s, a_n, b_s, b_n) -> float:
    """Closed form of P(θ_B > θ_A) for Beta posteriors with an integer first parameter of B:
    Σ_{i=0}^{α_B−1} B(α_A+i, β_A+β_B) / ((β_B+i) B(1+i, β_B) B(α_A, β_A))."""
    alpha_a, beta_a, alpha_b, beta_b = 1 + a_s, 1 + a_n - a_s, 1 + b_s, 1 + b_n - b_s
    i = np.arange(alpha_b)
    log_terms = (special.betaln(alpha_a + i, beta_a + beta_b) - np.log(beta_b + i)
                 - special.betaln(1 + i, beta_b) - special.betaln(alpha_a, beta_a))
    return float(np.exp(log_terms).sum())


@pytest.mark.parametrize("table", [(3, 10, 7, 12), (0, 1000, 12, 1000), (40, 400, 40, 400), (97, 1000, 131, 1200),
                                   (1200, 10_000, 1150, 10_000), (0, 0, 0, 0), (5, 5, 0, 3)])
def test_beta_chance_to_beat_matches_the_exact_closed_form(table):
    assert st.beta_chance_to_beat(*table) == pytest.approx(exact_chance_to_beat(*table), abs=1e-6)


def test_beta_chance_to_beat_on_five_million_unit_arms_matches_monte_carlo():
    table = (500_000, 5_000_000, 501_000, 5_000_000)
    rng = np.random.default_rng(4)
    a = rng.beta(1 + 500_000, 1 + 4_500_000, 2_000_000)
    b = rng.beta(1 + 501_000, 1 + 4_499_000, 2_000_000)
    reference = float((b > a).mean())  # Monte Carlo: standard error ~3e-4
    assert st.beta_chance_to_beat(*table) == pytest.approx(reference, abs=2e-3)
    assert 0.8 < st.beta_chance_to_beat(*table) < 0.9  # z ≈ 1.05


def test_beta_expected_losses_differ_by_the_difference_of_posterior_means():
    # E[(A−B)+] − E[(B−A)+] = E[A] − E[B] exactly
    for a_s, a_n, b_s, b_n in [(3, 10, 7, 12), (97, 1000, 131, 1200), (500_000, 5_000_000, 502_300, 5_000_000)]:
        loss_variant = st.beta_expected_loss(a_s, a_n, b_s, b_n)
        loss_control = st.beta_expected_loss(b_s, b_n, a_s, a_n)
        means = (1 + a_s) / (2 + a_n) - (1 + b_s) / (2 + b_n)
        assert loss_variant - loss_control == pytest.approx(means, rel=1e-6, abs=1e-10)


def test_beta_expected_loss_matches_monte_carlo():
    rng = np.random.default_rng(8)
    a, b = rng.beta(1 + 97, 1 + 903, 2_000_000), rng.beta(1 + 131, 1 + 1069, 2_000_000)
    reference = float(np.maximum(a - b, 0).mean())
    assert st.beta_expected_loss(97, 1000, 131, 1200) == pytest.approx(reference, rel=0.02)


def test_normal_chance_to_beat_and_expected_loss():
    assert st.normal_chance_to_beat(0.5, 0.25) == pytest.approx(stats.norm.cdf(2.0), rel=1e-12)
    rng = np.random.default_rng(2)
    draws = rng.normal(0.1, 0.3, 2_000_000)
    assert st.normal_expected_loss(0.1, 0.3) == pytest.approx(float(np.maximum(-draws, 0).mean()), rel=0.01)
    assert st.normal_chance_to_beat(0.5, 0.0) is None
    assert st.normal_expected_loss(0.5, 0.0) is None


# --- moments from sums -------------------------------------------------------------------------------

def test_moments_from_sums_equal_numpy_and_tolerate_empty_and_single_arms():
    values = np.array([1.0, 2.5, 0.0, 7.25])
    moments = moments_of(values)
    assert moments.mean == pytest.approx(values.mean(), rel=1e-12)
    assert moments.variance == pytest.approx(values.var(ddof=1), rel=1e-12)
    assert SampleMoments.from_sums(0, 0.0, 0.0) == SampleMoments(0, 0.0, 0.0)
    assert SampleMoments.from_sums(1, 3.0, 9.0).variance == 0.0
    assert SampleMoments.from_sums(3, 3.0, 3.0 - 1e-15).variance == 0.0  # rounding never makes it negative
