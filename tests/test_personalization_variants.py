"""Variant assignment (dagster_project/personalization/variants.py) is deterministic, honours the
weights and the holdout share, and is independent across campaigns (checked with scipy)."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import numpy as np
import pytest
from scipy.stats import chi2_contingency, chisquare

from dagster_project.personalization.variants import (
    HOLDOUT,
    Variant,
    assign_variant,
    assignment_bucket,
    validate_variants,
)

VARIANTS = (Variant("control", 1.0), Variant("urgency", 2.0), Variant("benefit", 0.5))
HOLDOUT_SHARE = 0.1


@pytest.fixture(scope="module")
def customer_ids() -> list[str]:
    # Shaped like the warehouse's ids ('cus_' + hex), and sequential: the worst case for a weak hash.
    return [f"cus_{i:016x}" for i in range(100_000)]


def test_bucket_is_sha256_of_salt_and_id_joined_by_a_delimiter():
    digest = hashlib.sha256(b"spring-sale|cus_42").digest()
    assert assignment_bucket("spring-sale", "cus_42") == int.from_bytes(digest[:8], "big") / 2**64
    # Without the "|", ("ab", "c") and ("a", "bc") would hash the same string.
    assert assignment_bucket("ab", "c") != assignment_bucket("a", "bc")


def test_buckets_are_uniform_in_the_unit_interval(customer_ids):
    buckets = np.array([assignment_bucket("weekly-2026-45", c) for c in customer_ids])
    assert buckets.min() >= 0 and buckets.max() < 1
    counts, _ = np.histogram(buckets, bins=50, range=(0, 1))
    assert chisquare(counts).pvalue > 0.001


def test_assignment_is_deterministic():
    first = [assign_variant("weekly-2026-45", f"cus_{i}", VARIANTS, HOLDOUT_SHARE) for i in range(1000)]
    again = [assign_variant("weekly-2026-45", f"cus_{i}", list(VARIANTS), HOLDOUT_SHARE) for i in range(1000)]
    assert first == again
    assert set(first) == {HOLDOUT, "control", "urgency", "benefit"}


def test_weights_and_holdout_share_are_honoured(customer_ids):
    counts = Counter(assign_variant("weekly-2026-45", c, VARIANTS, HOLDOUT_SHARE) for c in customer_ids)
    total_weight = sum(v.weight for v in VARIANTS)
    labels = [HOLDOUT] + [v.variant_id for v in VARIANTS]
    shares = [HOLDOUT_SHARE] + [(1 - HOLDOUT_SHARE) * v.weight / total_weight for v in VARIANTS]
    observed = [counts[label] for label in labels]
    expected = [share * len(customer_ids) for share in shares]
    assert sum(observed) == len(customer_ids)
    assert chisquare(observed, expected).pvalue > 0.001


def test_weights_are_normalised_so_only_their_ratio_matters():
    # Scaling by 4 is exact in binary floating point, so the boundaries are exactly the same.
    quarters = [Variant("a", 0.25), Variant("b", 0.75)]
    counts = [Variant("a", 1.0), Variant("b", 3.0)]
    ids = [f"cus_{i}" for i in range(5000)]
    assert [assign_variant("s", c, quarters, 0.2) for c in ids] == [assign_variant("s", c, counts, 0.2) for c in ids]


def test_assignments_under_two_salts_are_independent(customer_ids):
    labels = [HOLDOUT] + [v.variant_id for v in VARIANTS]
    table = np.zeros((len(labels), len(labels)), dtype=int)
    for c in customer_ids:
        first = assign_variant("weekly-2026-45", c, VARIANTS, HOLDOUT_SHARE)
        second = assign_variant("weekly-2026-46", c, VARIANTS, HOLDOUT_SHARE)
        table[labels.index(first), labels.index(second)] += 1
    assert chi2_contingency(table).pvalue > 0.001


def test_variant_choice_does_not_depend_on_the_holdout(customer_ids):
    ids = customer_ids[:20_000]
    small = [assign_variant("s", c, VARIANTS, 0.05) for c in ids]
    large = [assign_variant("s", c, VARIANTS, 0.3) for c in ids]
    # Growing the holdout only pulls customers into it; nobody switches variant.
    assert all(b == a or b == HOLDOUT for a, b in zip(small, large))
    # And holdout membership is independent of the variant the customer would otherwise get.
    unheld = [assign_variant("s", c, VARIANTS, 0.0) for c in ids]
    labels = [v.variant_id for v in VARIANTS]
    table = np.zeros((2, len(labels)), dtype=int)
    for held, variant in zip(large, unheld):
        table[int(held == HOLDOUT), labels.index(variant)] += 1
    assert chi2_contingency(table).pvalue > 0.001


def test_adding_a_small_variant_moves_few_customers(customer_ids):
    ids = customer_ids[:20_000]
    before = [assign_variant("s", c, VARIANTS[:2], HOLDOUT_SHARE) for c in ids]
    after = [assign_variant("s", c, [*VARIANTS[:2], Variant("new", 0.03)], HOLDOUT_SHARE) for c in ids]
    moved = sum(a != b for a, b in zip(before, after)) / len(ids)
    # The new variant takes 1% of customers; renormalising shifts the boundaries by about as much.
    assert 0.005 < moved < 0.03


@pytest.mark.parametrize(
    ("variants", "holdout_share", "message"),
    [
        ([], 0.1, "at least one variant"),
        ([Variant("a", 1.0), Variant("a", 2.0)], 0.1, "'a' appears more than once"),
        ([Variant("a", 0.0)], 0.1, "'a' has weight 0.0"),
        ([Variant("a", -1.0)], 0.1, "weights must be finite numbers > 0"),
        ([Variant("a", float("nan"))], 0.1, "'a' has weight nan"),
        ([Variant("a", float("inf"))], 0.1, "'a' has weight inf"),
        ([Variant("", 1.0)], 0.1, "empty variant_id"),
        ([Variant(HOLDOUT, 1.0)], 0.1, "reserved for the holdout"),
        ([Variant("a", 1.0)], 1.0, "holdout_share is 1.0"),
        ([Variant("a", 1.0)], -0.1, "0 <= holdout_share < 1"),
        ([Variant("a", 1.0)], float("nan"), "holdout_share is nan"),
    ],
)
def test_invalid_configs_raise_naming_the_problem(variants, holdout_share, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_variants(variants, holdout_share)
    with pytest.raises(ValueError, match=re.escape(message)):
        assign_variant("s", "cus_1", variants, holdout_share)


def test_valid_configs_pass_validation():
    validate_variants([Variant("only", 3)], 0)
    validate_variants(VARIANTS, 0.999)
    assert assign_variant("s", "cus_1", [Variant("only", 3)], 0) == "only"
