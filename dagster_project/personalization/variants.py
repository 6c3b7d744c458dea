"""Deterministic A/B assignment: which variant (or the holdout) each customer gets in a campaign.

Assignment is a pure function of (salt, customer_id), so a re-run, a retry or another process gives
every customer the same answer without storing it first. Each campaign uses its own salt, so being in
one campaign's holdout says nothing about the next campaign.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

HOLDOUT = "holdout"

# The phase of a unit of a campaign run (ops.campaign_assignments.phase).
PHASE_FULL = "full"  # no roll-out experiment: every variant to its share of the audience
PHASE_TEST = "test"  # the test fraction of a roll-out experiment
PHASE_REMAINDER = "remainder"  # waits for the winner, then gets it
PHASE_HOLDOUT = "holdout"  # gets nothing, measures the campaign's incremental effect

_TWO_TO_64 = float(2**64)


@dataclass(frozen=True)
class Variant:
    variant_id: str
    weight: float  # relative; the weights of a campaign need not sum to 1


def assignment_bucket(salt: str, customer_id: str) -> float:
    """A uniform number in [0, 1) for this customer under this salt.

    The "|" keeps ("ab", "c") and ("a", "bc") apart; 64 bits are plenty for fractions of 1e-6.
    """
    digest = hashlib.sha256(f"{salt}|{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _TWO_TO_64


def validate_variants(variants: Sequence[Variant], holdout_share: float) -> None:
    """Raise ValueError naming the problem when a campaign's experiment config cannot be used."""
    if not variants:
        raise ValueError("a campaign needs at least one variant; add one, e.g. Variant('control', 1.0)")
    seen: set[str] = set()
    for variant in variants:
        if not variant.variant_id:
            raise ValueError(f"variant {variant!r} has an empty variant_id; give every variant a name")
        if variant.variant_id == HOLDOUT:
            raise ValueError(
                f"variant_id {HOLDOUT!r} is reserved for the holdout; rename the variant and set "
                "holdout_share instead"
            )
        if variant.variant_id in seen:
            raise ValueError(f"variant_id {variant.variant_id!r} appears more than once; ids must be unique")
        seen.add(variant.variant_id)
        weight = variant.weight
        if not (isinstance(weight, numbers.Real) and math.isfinite(weight) and weight > 0):
            raise ValueError(
                f"variant {variant.variant_id!r} has weight {weight!r}; weights must be finite "
                "numbers > 0 (drop the variant instead of giving it weight 0)"
            )
    if not (isinstance(holdout_share, numbers.Real) and 0 <= holdout_share < 1):
        raise ValueError(
            f"holdout_share is {holdout_share!r}; it must be a fraction with 0 <= holdout_share < 1 "
            "(0 means no holdout)"
        )


def assign_variant(salt: str, customer_id: str, variants: Sequence[Variant], holdout_share: float) -> str:
    """HOLDOUT or the variant_id this customer receives, chosen by weight.

    The variant comes from a second hash, independent of the holdout bucket: the choice of variant
    does not depend on holdout_share, so resizing the holdout never moves a customer between variants.
    """
    validate_variants(variants, holdout_share)
    if assignment_bucket(salt, customer_id) < holdout_share:
        return HOLDOUT
    cumulative = list(accumulate(variant.weight for variant in variants))
    point = assignment_bucket(f"{salt}|variant", customer_id) * cumulative[-1]
    # min(): rounding in the sum could leave point a hair above the last boundary.
    return variants[min(bisect_right(cumulative, point), len(variants) - 1)].variant_id


def in_test_fraction(salt: str, run_key: str, customer_id: str, test_fraction: float) -> bool:
    """Whether the customer is in a roll-out run's test fraction: a third hash, independent of the
    holdout and the variant (so the shares inside the test are the configured ones), and drawn per
    run, so a recurring campaign does not test on the same customers every time."""
    return assignment_bucket(f"{salt}|test|{run_key}", customer_id) < test_fraction
