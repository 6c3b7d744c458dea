"""Adaptive traffic allocation for a binary metric: top-two Thompson sampling (Russo 2016, "Simple
Bayesian algorithms for best-arm identification").

One round of top-two Thompson sampling draws a rate for every arm from its posterior and takes the
best arm I; with probability beta it plays I, otherwise it re-draws until some other arm J is best and
plays that challenger. The probability that arm i is played is therefore

    share_i = beta · π_i + (1 − beta) · Σ_{j ≠ i} π_j · π_i / (1 − π_j),

where π_i = P(arm i is the best under the posterior) and π_i / (1 − π_j) is the chance that i wins a
re-draw that j did not win. π is estimated by Monte Carlo from Beta(1 + s, 1 + n − s) posteriors (a
uniform prior), all draws at once with numpy. Unlike plain Thompson sampling, the leader's share is
held near beta, so the runners-up keep getting the traffic that tells them apart.
"""

from __future__ import annotations

import hashlib
from typing import Mapping

import numpy as np


def top_two_thompson_weights(arms: Mapping[str, tuple[int, int]], *, min_share: float = 0.1, draws: int = 10000,
                             seed: int | str, beta: float = 0.5) -> dict[str, float]:
    """Allocation shares (summing to 1, each ≥ min_share) for the next period of an experiment.

    arms: name -> (units, successes) observed so far. The same arms and seed always give the same
    shares: the random generator is seeded from a SHA-256 of str(seed), not from Python's salted
    hash()."""
    names = list(arms)
    _validate(arms, min_share=min_share, draws=draws, beta=beta)
    units = np.array([arms[name][0] for name in names], dtype=float)
    successes = np.array([arms[name][1] for name in names], dtype=float)

    rng = np.random.default_rng(_stable_seed(seed))
    samples = rng.beta(1.0 + successes, 1.0 + units - successes, size=(draws, len(names)))
    shares = _top_two_shares(samples, beta)
    return dict(zip(names, (float(s) for s in _with_floor(shares, min_share))))


def _top_two_shares(samples: np.ndarray, beta: float) -> np.ndarray:
    draws, k = samples.shape
    wins = np.bincount(np.argmax(samples, axis=1), minlength=k).astype(float)
    p_best = wins / draws
    # challenger[j, i] = P(i is best | j is not best), estimated from the draws that j lost
    lost = draws - wins
    challenger = np.zeros((k, k))
    for j in range(k):
        if lost[j] > 0:
            challenger[j] = wins / lost[j]
        else:
            # j won every draw: no draw shows who wins when it does not, so take the best of the
            # others in the same draws (the limit of the re-draw as j's lead becomes certain)
            others = np.delete(np.arange(k), j)
            challenger[j, others] = np.bincount(np.argmax(samples[:, others], axis=1), minlength=k - 1) / draws
        challenger[j, j] = 0.0
    shares = beta * p_best + (1.0 - beta) * (p_best @ challenger)
    return shares / shares.sum()


def _with_floor(shares: np.ndarray, min_share: float) -> np.ndarray:
    """Raise every share below min_share to it and scale the others down in proportion, repeating
    until none is below (an arm scaled down may fall under the floor in turn)."""
    result = shares.copy()
    floored = np.zeros(len(shares), dtype=bool)
    while True:
        below = (result < min_share) & ~floored
        if not below.any():
            return result
        floored |= below
        free = 1.0 - min_share * floored.sum()
        rest = shares[~floored]
        result[floored] = min_share
        if rest.size:
            result[~floored] = free * (rest / rest.sum() if rest.sum() > 0 else np.full(rest.size, 1.0 / rest.size))


def _stable_seed(seed: int | str) -> int:
    return int.from_bytes(hashlib.sha256(str(seed).encode()).digest()[:8], "big")


def _validate(arms: Mapping[str, tuple[int, int]], *, min_share: float, draws: int, beta: float) -> None:
    if len(arms) < 2:
        raise ValueError(f"top-two Thompson sampling needs at least 2 arms, got {len(arms)}")
    for name, counts in arms.items():
        try:
            units, successes = counts
        except (TypeError, ValueError):
            raise ValueError(f"arm {name!r}: expected (units, successes), got {counts!r}") from None
        if not (0 <= successes <= units):
            raise ValueError(f"arm {name!r}: successes must be between 0 and units, got {successes} of {units}")
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must be between 0 and 1, got {beta!r}")
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws!r}")
    if min_share < 0 or min_share * len(arms) > 1 + 1e-12:
        raise ValueError(f"min_share must be between 0 and 1/{len(arms)} for {len(arms)} arms, got {min_share!r}")
