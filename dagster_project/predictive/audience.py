"""meta.campaign.audience.propensity: narrow a campaign's audience by a propensity model
(docs/design/predictive.md, section 6), e.g. leave out the least likely to click to protect the sender's
reputation, or keep the N most likely to order.

    audience:
      propensity:
        model: click_7d                # or converted_7d
        exclude_bottom_deciles: 1      # exactly one of: exclude_bottom_deciles (1-9), top_n (>= 1),
                                       # min_probability (above 0, below 1)

A customer left out is suppressed with reason `low_propensity` (nothing is lost). Customers without a
score (new since the last scoring, or before any model serves) are never left out, so top_n can keep more
than N. The filter applies before the experiment's assignment: the arms split the narrowed audience.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dagster_project.predictive.propensity import MODELS

LOW_PROPENSITY = "low_propensity"
RULES = ("exclude_bottom_deciles", "top_n", "min_probability")
# model -> (probability column, decile column) of marts.customer_propensity
SCORE_COLUMNS = {"click_7d": ("p_click_7d", "click_decile"), "converted_7d": ("p_convert_7d", "convert_decile")}
SCORES_RELATION = "marts.customer_propensity"


@dataclass(frozen=True)
class PropensityFilter:
    model: str
    rule: str  # one of RULES
    value: float

    def describe(self) -> str:
        if self.rule == "exclude_bottom_deciles":
            return f"leave out the bottom {int(self.value)} decile(s) of {self.model}"
        if self.rule == "top_n":
            return f"keep the top {int(self.value):,} customers by {self.model}"
        return f"keep customers with {self.model} probability at least {self.value:g}"


@dataclass(frozen=True)
class Score:
    probability: float
    decile: int


@dataclass
class FilterOutcome:
    description: str
    scored: int = 0  # eligible candidates with a score
    unscored: int = 0  # eligible candidates without one (never left out)
    excluded: set[str] | None = None


def parse_audience(spec, campaign_type: str, fail: Callable[[str, str], Exception]) -> PropensityFilter | None:
    """meta.campaign.audience; None when absent. `fail(key, problem)` makes the error that names the model."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) != {"propensity"}:
        raise fail("audience", f"must be a mapping with the one key propensity, not {spec!r}")
    if campaign_type == "journey":
        raise fail("audience", "is for batch and trigger campaigns; a journey's audience is its entry rule: drop it")
    spec = spec["propensity"]
    if not isinstance(spec, dict):
        raise fail("audience.propensity", f"must be a mapping of model and one rule, not {spec!r}")
    unknown = sorted(set(map(str, spec)) - {"model", *RULES})
    if unknown:
        raise fail("audience.propensity", f"has unknown key(s) {', '.join(unknown)}; the keys are model and one of "
                                          f"{', '.join(RULES)}")
    model = spec.get("model")
    if model not in MODELS:
        raise fail("audience.propensity.model", f"must be one of {', '.join(MODELS)}, not {model!r}")
    rules = [rule for rule in RULES if rule in spec]
    if len(rules) != 1:
        raise fail("audience.propensity", f"needs exactly one of {', '.join(RULES)}, "
                                          f"not {', '.join(rules) if rules else 'none'}")
    rule, value = rules[0], spec[rules[0]]
    key = f"audience.propensity.{rule}"
    if rule == "exclude_bottom_deciles" and not _whole(value, 1, 9):
        raise fail(key, f"must be a whole number from 1 to 9, not {value!r}")
    if rule == "top_n" and not _whole(value, 1, None):
        raise fail(key, f"must be a whole number of customers, at least 1, not {value!r}")
    if rule == "min_probability" and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                                      or not 0 < value < 1):
        raise fail(key, f"must be a probability above 0 and below 1, not {value!r}")
    return PropensityFilter(model, rule, float(value))


def read_scores(conn, audience: PropensityFilter, campaign_id: str) -> dict[str, Score]:
    if not conn.table_exists("marts", "customer_propensity"):
        raise ValueError(
            f"campaign {campaign_id} filters its audience on {audience.model} (meta.campaign.audience) but "
            f"{SCORES_RELATION} does not exist; build the dbt models (dbt build, or the daily pipeline)")
    probability, decile = SCORE_COLUMNS[audience.model]
    return {customer: Score(float(p), int(d)) for customer, p, d in conn.fetchall(
        f"SELECT customer_id, {probability}, {decile} FROM {SCORES_RELATION} WHERE {probability} IS NOT NULL")}


def low_propensity(audience: PropensityFilter, eligible: Iterable[str], scores: dict[str, Score]) -> FilterOutcome:
    """Which eligible customers the filter leaves out."""
    eligible = list(eligible)
    scored = [customer for customer in eligible if customer in scores]
    outcome = FilterOutcome(audience.describe(), scored=len(scored), unscored=len(eligible) - len(scored))
    if audience.rule == "exclude_bottom_deciles":
        outcome.excluded = {c for c in scored if scores[c].decile <= audience.value}
    elif audience.rule == "min_probability":
        outcome.excluded = {c for c in scored if scores[c].probability < audience.value}
    else:  # the most likely first; ties by customer id, so a re-run keeps the same customers
        ranked = sorted(scored, key=lambda c: (-scores[c].probability, c))
        outcome.excluded = set(ranked[int(audience.value):])
    return outcome


def _whole(value, low: int, high: int | None) -> bool:
    return (not isinstance(value, bool) and isinstance(value, int) and value >= low
            and (high is None or value <= high))
