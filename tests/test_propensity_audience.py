"""meta.campaign.audience.propensity (pure): each malformed setting is refused with a message naming the
model and key, and the filter accounts for everyone: it leaves out only scored eligible customers, by its
rule, and never an unscored one (generated cases as well as the design's example)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagster_project.personalization.campaigns import CampaignError, _campaign
from dagster_project.predictive.audience import PropensityFilter, Score, low_propensity

BASE = {"id": "weekly", "type": "batch", "brief": "b", "template": "picks_for_you", "variants": [{"id": "a"}]}


def campaign_with(audience, campaign_type: str = "batch"):
    return _campaign({"name": "campaign_weekly", "schema": "campaigns"}, {**BASE, "type": campaign_type,
                                                                         "audience": audience})


@pytest.mark.parametrize(("audience", "message"), [
    ("click_7d", "meta.campaign.audience must be a mapping with the one key propensity"),
    ({"propensity": {"model": "click_7d", "top_n": 5}, "rfm": 1}, "the one key propensity"),
    ({"propensity": "click_7d"}, "audience.propensity must be a mapping of model and one rule"),
    ({"propensity": {"model": "opens", "top_n": 5}}, "audience.propensity.model must be one of click_7d, converted_7d"),
    ({"propensity": {"top_n": 5}}, "audience.propensity.model must be one of"),
    ({"propensity": {"model": "click_7d"}}, "needs exactly one of exclude_bottom_deciles, top_n, min_probability, "
                                            "not none"),
    ({"propensity": {"model": "click_7d", "top_n": 5, "min_probability": 0.1}}, "not top_n, min_probability"),
    ({"propensity": {"model": "click_7d", "bottom": 1}}, "unknown key(s) bottom"),
    ({"propensity": {"model": "click_7d", "exclude_bottom_deciles": 10}}, "a whole number from 1 to 9, not 10"),
    ({"propensity": {"model": "click_7d", "exclude_bottom_deciles": True}}, "a whole number from 1 to 9, not True"),
    ({"propensity": {"model": "click_7d", "exclude_bottom_deciles": 1.5}}, "from 1 to 9, not 1.5"),
    ({"propensity": {"model": "click_7d", "top_n": 0}}, "top_n must be a whole number of customers, at least 1"),
    ({"propensity": {"model": "click_7d", "min_probability": 1}}, "above 0 and below 1, not 1"),
    ({"propensity": {"model": "click_7d", "min_probability": "0.2"}}, "above 0 and below 1, not '0.2'"),
])
def test_a_malformed_audience_is_refused_naming_the_model_and_key(audience, message):
    with pytest.raises(CampaignError, match="dbt model campaign_weekly") as error:
        campaign_with(audience)
    assert message in str(error.value)


def test_journeys_take_no_audience_filter():
    with pytest.raises(CampaignError, match="a journey's audience is its entry rule"):
        campaign_with({"propensity": {"model": "click_7d", "top_n": 5}}, campaign_type="journey")


def test_a_valid_audience_is_parsed():
    assert campaign_with({"propensity": {"model": "converted_7d", "min_probability": 0.05}}).audience == \
        PropensityFilter("converted_7d", "min_probability", 0.05)
    assert campaign_with(None).audience is None


def test_the_bottom_decile_is_left_out_and_the_unscored_kept():
    scores = {"low": Score(0.01, 1), "mid": Score(0.1, 5), "high": Score(0.4, 10)}
    outcome = low_propensity(PropensityFilter("click_7d", "exclude_bottom_deciles", 1), ["low", "mid", "high", "new"],
                             scores)
    assert outcome.excluded == {"low"} and (outcome.scored, outcome.unscored) == (3, 1)


scores_strategy = st.dictionaries(
    st.text(min_size=1, max_size=6),
    st.builds(Score, st.floats(0.0001, 0.9999), st.integers(1, 10)),
    max_size=40,
)


@given(scores=scores_strategy, unscored=st.sets(st.text(min_size=7, max_size=9), max_size=5),
       rule=st.sampled_from(["exclude_bottom_deciles", "top_n", "min_probability"]), data=st.data())
def test_the_filter_leaves_out_only_scored_customers_by_its_rule(scores, unscored, rule, data):
    value = {"exclude_bottom_deciles": st.integers(1, 9), "top_n": st.integers(1, 50),
             "min_probability": st.floats(0.001, 0.999)}[rule]
    audience = PropensityFilter("click_7d", rule, float(data.draw(value)))
    eligible = [*scores, *unscored]
    outcome = low_propensity(audience, eligible, scores)
    assert outcome.excluded <= set(scores) and not outcome.excluded & unscored
    kept = set(scores) - outcome.excluded
    if rule == "exclude_bottom_deciles":
        assert all(scores[c].decile <= audience.value for c in outcome.excluded)
        assert all(scores[c].decile > audience.value for c in kept)
    elif rule == "min_probability":
        assert all(scores[c].probability < audience.value for c in outcome.excluded)
        assert all(scores[c].probability >= audience.value for c in kept)
    else:
        assert len(kept) == min(int(audience.value), len(scores))
        if kept and outcome.excluded:  # nobody left out is more likely than someone kept
            assert max(scores[c].probability for c in outcome.excluded) <= min(scores[c].probability for c in kept)
    assert low_propensity(audience, list(reversed(eligible)), scores).excluded == outcome.excluded  # order-free
