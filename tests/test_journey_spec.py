"""Journey declarations (meta.journey): the four planned journeys parse, and every mistake fails with
the journey, the step and the fix. Any shape of input gives a Journey or a JourneyError, nothing else."""

from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dagster_project.journeys.spec import JourneyError, journeys_from_manifest, parse_journey

CAMPAIGNS = {name: "journey" for name in (
    "welcome_hello", "welcome_picks", "welcome_tour", "welcome_offer", "cart_reminder", "cart_incentive",
    "reengage_we_miss_you", "reengage_last_call", "milestone_anniversary", "milestone_birthday",
    "milestone_nth_order")} | {"weekly_picks": "batch"}

# The journeys of docs/design/journeys.md, section 3, as dbt renders their meta.
PLANNED = yaml.safe_load("""
welcome:
  id: welcome
  entry: {type: event}
  reentry: never
  exit: [{event: Order Completed, reason: purchased}, {condition: ineligible}]
  goal: {event: Order Completed, within_days: 14, exits: true}
  steps:
    - {id: hello,   send: welcome_hello}
    - {id: wait_2d, wait: {days: 2}}
    - {id: picks,   branch: {cases: [{if: {profile: top_category, in: [null]}, goto: tour}]}}
    - {id: day_2,   send: welcome_picks, goto: wait_d5}
    - {id: tour,    send: welcome_tour}
    - {id: wait_d5, wait: {until_local: "09:00", after_days: 3}}
    - {id: day_5,   send: welcome_offer}
cart_abandonment:
  id: cart_abandonment
  entry: {type: event, key: cart_id}
  reentry: {after_days: 7}
  exit: [{event: Order Completed, match: cart_id, reason: purchased_cart}, {condition: ineligible}]
  goal: {event: Order Completed, match: cart_id, within_days: 7, exits: true}
  steps:
    - {id: wait_1h,   wait: {hours: "1"}}
    - {id: reminder,  send: cart_reminder, on_frequency_cap: delay, expires_after_hours: 12}
    - {id: wait_24h,  wait: {hours: 24}}
    - {id: incentive, send: cart_incentive, on_frequency_cap: skip}
reengagement:
  id: reengagement
  entry: {type: audience}
  reentry: {after_days: 180}
  exit: [{event: Order Completed, reason: purchased}]
  goal: {event: Order Completed, within_days: 30}
  steps:
    - {id: nudge_1,   send: reengage_we_miss_you}
    - {id: wait_5d,   wait: {days: 5}}
    - {id: engaged_1, branch: {cases: [{if: {engaged_since_previous: [opened, clicked]}, goto: end}]}}
    - {id: nudge_2,   send: reengage_last_call}
    - {id: wait_7d,   wait: {days: 7}}
    - {id: engaged_2, branch: {cases: [{if: {engaged_since_previous: [clicked]}, goto: end}]}}
    - {id: sunset,    suppress: sunset}
milestones:
  id: milestones
  entry: {type: audience, key: milestone_key}
  reentry: per_key
  exit: [{condition: ineligible}]
  steps:
    - {id: on_the_day, wait: {until_local: "09:00", after_days: 0}}
    - {id: by_kind, branch: {cases: [{if: {attribute: milestone_kind, equals: birthday}, goto: birthday},
                                     {if: {attribute: milestone_kind, equals: nth_order}, goto: nth_order}],
                             else: anniversary}}
    - {id: anniversary, send: milestone_anniversary, goto: end}
    - {id: birthday,    send: milestone_birthday, goto: end}
    - {id: nth_order,   send: milestone_nth_order}
""")
COLUMNS = ("customer_id", "entry_key", "entry_at", "cart_id", "milestone_kind", "milestone_key")


def entry_model(journey: dict, materialized: str | None = None) -> dict:
    kind = journey.get("entry", {}).get("type") if isinstance(journey.get("entry"), dict) else None
    return {
        "resource_type": "model",
        "name": f"journey_{journey.get('id')}",
        "config": {"materialized": materialized or ("incremental" if kind == "event" else "table"),
                   "meta": {"journey": journey}},
        "columns": {name: {"name": name} for name in COLUMNS},
    }


def parse(journey: dict, **model):
    return parse_journey(entry_model(journey, **model), journey, CAMPAIGNS)


def test_the_planned_journeys_parse_with_their_steps_in_order():
    manifest = {"nodes": {f"model.mailroom.journey_{name}": entry_model(spec) for name, spec in PLANNED.items()}}
    journeys = {journey.journey_id: journey for journey in journeys_from_manifest(manifest, CAMPAIGNS)}
    assert sorted(journeys) == sorted(PLANNED)
    welcome = journeys["welcome"]
    assert [step.step_id for step in welcome.steps] == ["hello", "wait_2d", "picks", "day_2", "tour", "wait_d5",
                                                        "day_5"]
    assert welcome.campaigns == ("welcome_hello", "welcome_picks", "welcome_tour", "welcome_offer")
    assert welcome.steps[1].settings == {"hours": 48.0}
    assert welcome.steps[3].goto == "wait_d5"
    cart = journeys["cart_abandonment"]
    assert cart.reentry == 7 and cart.entry_kind == "event"
    assert cart.steps[0].settings == {"hours": 1.0}  # a dbt var renders as text
    assert cart.steps[1].settings == {"campaign": "cart_reminder", "on_frequency_cap": "delay",
                                      "expires_after_hours": 12.0}
    assert cart.steps[3].settings["on_frequency_cap"] == "skip"
    # Without an ineligibility exit, one is added; a goal exits unless it says otherwise.
    assert {"condition": "ineligible"} in journeys["reengagement"].exits
    assert journeys["reengagement"].goal["exits"] is True
    assert journeys["milestones"].reentry == "per_key" and journeys["milestones"].goal is None
    assert journeys["milestones"].steps[0].settings["weekdays"][0] == "mon"


def changed(name: str, change) -> dict:
    journey = copy.deepcopy(PLANNED[name])
    change(journey)
    return journey


def step(journey: dict, step_id: str) -> dict:
    return next(s for s in journey["steps"] if s["id"] == step_id)


MISTAKES = [
    ("welcome", lambda j: step(j, "hello").update(send="welcome_helo"),
     r"journey welcome, step hello: send 'welcome_helo' is not a campaign; add a model with meta.campaign.id"),
    ("welcome", lambda j: step(j, "day_2").update(send="weekly_picks"),
     r"step day_2: campaign 'weekly_picks' has type batch; a journey can only send type: journey"),
    ("welcome", lambda j: step(j, "wait_d5")["wait"].update(until_local="9am"),
     r"step wait_d5: wait.until_local '9am' is not HH:MM; write e.g. \"09:00\""),
    ("reengagement", lambda j: j["steps"].insert(0, j["steps"].pop(2)),
     r"step engaged_1: engaged_since_previous needs a send step before it"),
    ("cart_abandonment", lambda j: j["exit"][0].update(match="basket_id"),
     r"journey cart_abandonment, exit 1: match: basket_id is not a column of the entry model"),
    ("milestones", lambda j: step(j, "by_kind")["branch"].update({"else": "anniversery"}),
     r"step by_kind: goto 'anniversery' is not a later step \(later steps: anniversary, birthday, nth_order\)"),
    ("welcome", lambda j: step(j, "tour").update(goto="hello"),
     r"step tour: goto 'hello' is not a later step"),
    ("welcome", lambda j: step(j, "tour").update(id="day_2"),
     r"step day_2: step id 'day_2' is used twice"),
    ("welcome", lambda j: j.update(reentry={"after_days": 0}),
     r"journey welcome: reentry \{'after_days': 0\} must be never, per_key or \{after_days: N\}"),
    ("welcome", lambda j: step(j, "hello").update(wait={"hours": 1}),
     r"step hello: must have exactly one of send, wait, branch, suppress \(it has send, wait\)"),
    ("welcome", lambda j: step(j, "wait_2d").update(wait={"days": "two"}),
     r"step wait_2d: wait.days 'two' must be a positive number"),
    ("welcome", lambda j: j.update(entry={"type": "webhook"}),
     r"journey welcome: entry.type 'webhook' must be one of event, audience"),
    ("welcome", lambda j: j.update(entry=yaml.safe_load("{on: event}")),
     r"journey welcome: entry: \{on: ...\} reads as \{true: ...\} in YAML; write entry: \{type: event\}"),
    ("welcome", lambda j: j.update(holdout_share=1.5), r"holdout_share 1.5 must be a fraction"),
    ("reengagement", lambda j: step(j, "sunset").update(suppress="forever"),
     r"step sunset: suppress 'forever' must be one of sunset"),
    ("welcome", lambda j: j.update(goal={"event": "Order Completed", "within_days": 0}),
     r"journey welcome, goal: within_days 0 must be a positive number of days"),
]


@pytest.mark.parametrize("name, change, message", MISTAKES)
def test_each_mistake_names_the_journey_the_step_and_the_fix(name, change, message):
    with pytest.raises(JourneyError, match=message) as error:
        parse(changed(name, change))
    assert f"dbt model journey_{name}" in str(error.value)


def test_an_event_entry_needs_an_incremental_model_with_the_entry_columns():
    with pytest.raises(JourneyError, match=r"entry type: event needs an incremental entry model \(journey_welcome "
                                           r"is materialized table\)"):
        parse(PLANNED["welcome"], materialized="table")
    node = entry_model(PLANNED["milestones"])
    del node["columns"]["entry_key"]
    with pytest.raises(JourneyError, match="the entry model has no column entry_key"):
        parse_journey(node, PLANNED["milestones"], CAMPAIGNS)


def test_two_models_cannot_declare_one_journey():
    other = entry_model(PLANNED["welcome"]) | {"name": "journey_welcome_copy"}
    manifest = {"nodes": {"a": entry_model(PLANNED["welcome"]), "b": other}}
    with pytest.raises(JourneyError, match="both declare journey 'welcome'"):
        journeys_from_manifest(manifest, CAMPAIGNS)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 100) | st.floats(allow_nan=True) | st.text(max_size=12)
    | st.sampled_from(["welcome_hello", "09:00", "never", "event", "end", "hello", "ineligible"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["id", "send", "wait", "branch", "goto", "hours", "days", "until_local",
                                       "cases", "if", "else", "type", "event", "reason", "steps", "entry", "exit",
                                       "goal", "reentry", "after_days", "suppress", "match"]) | st.text(max_size=6),
                      children, max_size=5),
    max_leaves=25)


JOURNEY_KEYS = ("id", "entry", "reentry", "exit", "goal", "steps", "holdout_share", "status")
STEP_KEYS = ("id", "send", "wait", "branch", "suppress", "goto", "on_frequency_cap", "expires_after_hours")


@st.composite
def mutated_journeys(draw) -> dict:
    """A planned journey with one to three of its keys, or its steps' keys, set to any value."""
    journey = copy.deepcopy(PLANNED[draw(st.sampled_from(sorted(PLANNED)))])
    for _ in range(draw(st.integers(1, 3))):
        value = draw(yaml_values)
        if draw(st.booleans()) and isinstance(journey.get("steps"), list) and journey["steps"]:
            target = journey["steps"][draw(st.integers(0, len(journey["steps"]) - 1))]
            if isinstance(target, dict):
                target[draw(st.sampled_from(STEP_KEYS))] = value
        else:
            journey[draw(st.sampled_from(JOURNEY_KEYS))] = value
    return journey


@settings(max_examples=500, deadline=None)
@given(journey=mutated_journeys())
def test_any_shape_of_declaration_gives_a_journey_or_a_clear_error(journey):
    try:
        parsed = parse_journey(entry_model(journey), journey, CAMPAIGNS)
    except JourneyError as error:
        assert str(error).startswith(("journey ", "dbt model ")), error
    else:
        assert parsed.steps and all(step.kind in ("send", "wait", "branch", "suppress") for step in parsed.steps)
