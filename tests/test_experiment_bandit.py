"""Top-two Thompson sampling allocation: valid shares, the floor, reproducibility, and that it sends
traffic where the evidence says it should."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_

from dagster_project.experiments import top_two_thompson_weights
from dagster_project.experiments.bandit import _top_two_shares


def test_shares_sum_to_one_and_respect_the_floor():
    arms = {"A": (1000, 100), "B": (1000, 180), "C": (1000, 90), "D": (1000, 95)}
    shares = top_two_thompson_weights(arms, min_share=0.1, seed=1)
    assert list(shares) == list(arms)
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-12)
    assert min(shares.values()) >= 0.1 - 1e-12


def test_the_clearly_better_arm_gets_the_largest_share_near_beta():
    shares = top_two_thompson_weights({"A": (2000, 200), "B": (2000, 300), "C": (2000, 210)}, seed="exp-42")
    assert max(shares, key=shares.get) == "B"
    # B is the posterior-best in (almost) every draw, so it is played with probability ~beta; the
    # challengers split the rest, C (closer to B) more than A
    assert shares["B"] == pytest.approx(0.5, abs=0.01)
    assert shares["C"] > shares["A"]
    higher_beta = top_two_thompson_weights({"A": (2000, 200), "B": (2000, 300), "C": (2000, 210)}, seed="exp-42",
                                           beta=0.7, min_share=0.05)
    assert higher_beta["B"] == pytest.approx(0.7, abs=0.01)


def test_equal_arms_get_roughly_equal_shares():
    shares = top_two_thompson_weights({name: (5000, 500) for name in "ABCD"}, seed=3, draws=20000)
    assert all(share == pytest.approx(0.25, abs=0.02) for share in shares.values())
    fresh = top_two_thompson_weights({"A": (0, 0), "B": (0, 0)}, seed=3)
    assert fresh == pytest.approx({"A": 0.5, "B": 0.5}, abs=0.02)


def test_same_seed_same_shares_and_a_different_seed_differs():
    arms = {"A": (300, 30), "B": (300, 36), "C": (300, 33)}
    first = top_two_thompson_weights(arms, seed="campaign-7", min_share=0.0)
    assert top_two_thompson_weights(arms, seed="campaign-7", min_share=0.0) == first
    assert top_two_thompson_weights(arms, seed="campaign-8", min_share=0.0) != first


def test_the_floor_lifts_losing_arms_and_scales_the_others_in_proportion():
    arms = {"A": (2000, 200), "B": (2000, 230), "C": (2000, 210), "D": (2000, 150)}
    free = top_two_thompson_weights(arms, seed=5, min_share=0.0)
    floored = top_two_thompson_weights(arms, seed=5, min_share=0.15)
    assert free["A"] < 0.15 and free["D"] < 0.01  # D is almost surely worst
    assert floored["A"] == pytest.approx(0.15) and floored["D"] == pytest.approx(0.15)
    assert floored["B"] + floored["C"] == pytest.approx(0.7)
    assert floored["B"] / floored["C"] == pytest.approx(free["B"] / free["C"])
    assert top_two_thompson_weights({"A": (10, 1), "B": (10, 9)}, seed=1, min_share=0.5) == {"A": 0.5, "B": 0.5}


def test_allocation_formula_on_known_posterior_best_probabilities():
    # Draws in which arm 0 is best 60%, arm 1 30%, arm 2 10% of the time.
    samples = np.zeros((10, 3))
    samples[:6, 0] = samples[6:9, 1] = samples[9:, 2] = 1.0
    p = np.array([0.6, 0.3, 0.1])
    expected = [0.5 * p[i] + 0.5 * sum(p[j] * p[i] / (1 - p[j]) for j in range(3) if j != i) for i in range(3)]
    assert _top_two_shares(samples, beta=0.5) == pytest.approx(expected)


def test_a_leader_that_wins_every_draw_still_has_a_challenger():
    shares = top_two_thompson_weights({"A": (100_000, 1_000), "B": (100_000, 9_000), "C": (100_000, 8_000)},
                                      seed=0, min_share=0.0)
    assert shares["B"] == pytest.approx(0.5) and shares["C"] == pytest.approx(0.5, abs=1e-3)
    assert sum(shares.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("arms, kwargs, message", [
    ({"A": (10, 1)}, {}, "at least 2 arms"),
    ({"A": (10, 11), "B": (10, 1)}, {}, "between 0 and units"),
    ({"A": (10, 1), "B": (10, 1)}, {"min_share": 0.6}, "min_share"),
    ({"A": (10, 1), "B": (10, 1)}, {"beta": 1.5}, "beta"),
    ({"A": (10, 1), "B": (10, 1)}, {"draws": 0}, "draws"),
    ({"A": (10,), "B": (10, 1)}, {}, "expected (units, successes)"),
])
def test_invalid_input_is_rejected(arms, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        top_two_thompson_weights(arms, seed=1, **kwargs)


@settings(max_examples=50, deadline=None)
@given(counts=st_.lists(st_.integers(0, 10_000).flatmap(lambda n: st_.tuples(st_.just(n), st_.integers(0, n))),
                        min_size=2, max_size=6),
       min_share=st_.floats(0.0, 1.0), beta=st_.floats(0.0, 1.0))
def test_shares_are_always_a_valid_allocation(counts, min_share, beta):
    arms = {f"arm{i}": c for i, c in enumerate(counts)}
    min_share = min_share / len(arms)
    shares = top_two_thompson_weights(arms, seed="prop", draws=2000, min_share=min_share, beta=beta)
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(share >= min_share - 1e-9 for share in shares.values())
