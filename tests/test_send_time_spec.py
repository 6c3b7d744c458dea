"""meta.campaign.send_time: defaults, the shorthand, and one clear error per bad setting, read through
the manifest as campaigns are."""

from __future__ import annotations

import re

import pytest

from dagster_project.personalization.campaigns import CampaignError, campaigns_from_manifest
from dagster_project.predictive.spec import SendTimeSpec, default_fixed_hour, parse_send_time

BATCH = {"id": "x", "type": "batch", "brief": "b", "template": "picks_for_you", "variants": [{"id": "a"}],
         "send_window": {"start_hour": 8, "end_hour": 20}}


def campaign(**change):
    node = {"resource_type": "model", "name": "campaign_x", "schema": "marts",
            "config": {"meta": {"campaign": {**BATCH, **change}}}}
    [read] = campaigns_from_manifest({"nodes": {"m": node}})
    return read


def test_absent_is_todays_best_hour():
    assert campaign().send_time == SendTimeSpec("best_hour", fixed_hour=10)
    journey = campaign(type="journey", send_window={"start_hour": 8, "end_hour": 21})
    assert journey.send_time.mode == "best_hour"


def test_the_shorthand_takes_the_defaults_and_a_mapping_sets_them():
    assert campaign(send_time="optimized").send_time == SendTimeSpec("optimized", 10, 0.1, 0.1, 24)
    assert campaign(send_time="fixed").send_time == SendTimeSpec("fixed", 10)
    assert campaign(send_time="best_hour").send_time.mode == "best_hour"
    mapping = {"mode": "optimized", "fixed_hour": 9, "holdout_share": 0.2, "exploration_share": 0.05,
               "horizon_hours": 71}
    assert campaign(send_time=mapping).send_time == SendTimeSpec("optimized", 9, 0.2, 0.05, 71)
    assert campaign(send_time={"mode": "fixed", "fixed_hour": 19}).send_time.fixed_hour == 19
    # Trigger campaigns may be optimized too: a day's trigger audience can wait for its best hour.
    trigger = campaign(type="trigger", trigger={"cooldown_days": 7}, send_time="optimized")
    assert trigger.send_time.mode == "optimized"


@pytest.mark.parametrize(("window", "hour"), [((8, 20), 10), ((0, 24), 2), ((18, 20), 19), ((23, 24), 23)])
def test_the_default_fixed_hour_is_two_hours_into_the_window(window, hour):
    assert default_fixed_hour(window) == hour
    assert parse_send_time("fixed", "batch", window, ValueError).fixed_hour == hour


@pytest.mark.parametrize(
    ("send_time", "message"),
    [
        ({"mode": "optimized", "horizon_hours": 96},
         "send_time.horizon_hours must be between 1 and 71 (SendGrid holds a message at most 72 h, less the "
         "10-minute cancel margin), not 96"),
        ({"mode": "fixed", "horizon_hours": 0}, "send_time.horizon_hours must be between 1 and 71"),
        ({"mode": "optimized", "horizon_hours": 24.5}, "send_time.horizon_hours must be a whole number of hours"),
        ({"mode": "fixed", "fixed_hour": 7},
         "send_time.fixed_hour 7 is outside send_window 8-20; pick an hour the window allows (8 to 19)"),
        ({"mode": "optimized", "fixed_hour": 20}, "send_time.fixed_hour 20 is outside send_window 8-20"),
        ({"mode": "fixed", "fixed_hour": "ten"}, "send_time.fixed_hour must be a whole number of hours, not 'ten'"),
        ({"mode": "optimized", "holdout_share": 0.3, "exploration_share": 0.2},
         "send_time.holdout_share + exploration_share must be below 0.5 (most of the audience gets the optimized "
         "time), not 0.5"),
        ({"mode": "optimized", "holdout_share": 1.0},
         "send_time.holdout_share must be a number from 0 up to (not including) 1, not 1.0"),
        ({"mode": "optimized", "exploration_share": -0.1}, "send_time.exploration_share must be a number from 0"),
        ({"mode": "optimized", "exploration_share": "some"}, "send_time.exploration_share must be a number from 0"),
        ({"mode": "optimized", "holdout_share": True}, "send_time.holdout_share must be a number from 0"),
        ("optimised", "send_time must be one of best_hour, fixed, optimized, not 'optimised'"),
        ({"mode": "smart"}, "send_time.mode must be one of best_hour, fixed, optimized, not 'smart'"),
        ({"fixed_hour": 10}, "send_time.mode is required: one of best_hour, fixed, optimized"),
        ({"mode": "optimized", "holdout": 0.1, "window": 3},
         "send_time has unknown key(s) holdout, window; the keys are mode, fixed_hour, holdout_share, "
         "exploration_share, horizon_hours"),
        ({"mode": "fixed", "holdout_share": 0.1},
         "send_time.holdout_share does not apply to mode fixed (it takes mode, fixed_hour, horizon_hours); drop "
         "it or change the mode"),
        ({"mode": "best_hour", "fixed_hour": 10}, "send_time.fixed_hour does not apply to mode best_hour"),
        (["optimized"], "send_time must be one of best_hour, fixed, optimized or a mapping of settings"),
    ],
)
def test_a_bad_send_time_names_the_model_the_key_and_the_fix(send_time, message):
    with pytest.raises(CampaignError, match=re.escape(f"dbt model campaign_x: meta.campaign.{message}")):
        campaign(send_time=send_time)


@pytest.mark.parametrize("mode", ["optimized", "fixed"])
def test_journey_sends_keep_their_step_timing(mode):
    message = f"meta.campaign.send_time {mode} is for batch and trigger campaigns; journey sends keep their step timing"
    with pytest.raises(CampaignError, match=re.escape(f"{message}: drop send_time")):
        campaign(type="journey", send_time=mode)
