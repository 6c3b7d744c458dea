"""Journeys as code: read each journey from its dbt entry model's `meta.journey` in the manifest and
check it before anything runs. A bad declaration fails with the model, the journey, the step and the
fix (docs/design/journeys.md, section 2).

A journey is an entry (an event model or an audience model whose rows admit customers), an ordered
list of steps (send a journey campaign's message, wait, branch, suppress), exits, an optional goal and
a re-entry rule. Steps fall through to the next one unless they say `goto`; a goto may only point to
a later step, `end` or `exit`, so a journey can never loop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

ENTRY_KINDS = ("event", "audience")
STATUSES = ("live", "draft")
CAP_ACTIONS = ("skip", "delay")
SUPPRESSIONS = ("sunset",)
ENGAGEMENTS = ("opened", "clicked")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
GOTO_TARGETS = ("end", "exit")
STEP_KINDS = ("send", "wait", "branch", "suppress")
CONDITION_SOURCES = ("attribute", "profile")
COMPARISONS = ("equals", "in", "gte")
DEFAULT_EXPIRES_AFTER_HOURS = 48.0
ENTRY_COLUMNS = ("customer_id", "entry_key", "entry_at")
_LOCAL_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_STEP_ID = re.compile(r"[a-z][a-z0-9_]*")


class JourneyError(ValueError):
    """A journey's declaration cannot be used; the message names the journey, the step and the fix."""


@dataclass(frozen=True)
class Step:
    step_id: str
    kind: str  # send | wait | branch | suppress
    settings: Mapping = field(default_factory=dict)  # the step's own keys, checked
    goto: str | None = None  # a later step id, end or exit; None: the next step


@dataclass(frozen=True)
class Journey:
    journey_id: str
    model: str  # the entry model (dbt model name)
    relation: str  # schema.table the entry rows are read from
    context_columns: tuple[str, ...]  # the entry model's other columns, kept with each entry
    entry_kind: str  # event | audience
    reentry: str | int  # "never", "per_key" or days after the last entry ended
    exits: tuple[Mapping, ...]
    goal: Mapping | None
    steps: tuple[Step, ...]
    holdout_share: float
    status: str

    @property
    def campaigns(self) -> tuple[str, ...]:
        return tuple(step.settings["campaign"] for step in self.steps if step.kind == "send")

    def step(self, step_id: str) -> Step | None:
        return next((step for step in self.steps if step.step_id == step_id), None)

    def after(self, step: Step, goto: str | None = None) -> str:
        """Where a customer goes when `step` is done: `goto` (a branch's choice), the step's own goto,
        else the next step; "end" after the last step."""
        target = goto or step.goto
        if target:
            return target
        position = self.steps.index(step)
        return self.steps[position + 1].step_id if position + 1 < len(self.steps) else "end"


def journeys_from_manifest(manifest: dict, campaign_types: Mapping[str, str]) -> list[Journey]:
    """Every model with meta.journey, sorted by journey id. `campaign_types`: campaign id -> type."""
    journeys = []
    for node in manifest.get("nodes", {}).values():
        meta = (node.get("config") or {}).get("meta") or node.get("meta") or {}
        if node.get("resource_type") == "model" and "journey" in meta:
            journeys.append(parse_journey(node, meta["journey"], campaign_types))
    seen: dict[str, str] = {}
    for journey in journeys:
        if journey.journey_id in seen:
            raise JourneyError(f"models {seen[journey.journey_id]} and {journey.model} both declare journey "
                               f"{journey.journey_id!r}; journey ids must be unique")
        seen[journey.journey_id] = journey.model
    return sorted(journeys, key=lambda j: j.journey_id)


def parse_journey(node: dict, spec: object, campaign_types: Mapping[str, str]) -> Journey:
    model = node["name"]
    if not isinstance(spec, dict):
        raise JourneyError(f"dbt model {model}: meta.journey must be a mapping of settings")
    journey_id = spec.get("id")
    if not isinstance(journey_id, str) or not _STEP_ID.fullmatch(journey_id):
        raise JourneyError(f"dbt model {model}: meta.journey.id must be a lower-case name "
                           f"(letters, digits, _), not {journey_id!r}")

    def fail(where: str, problem: str) -> JourneyError:
        return JourneyError(f"journey {journey_id}{', ' + where if where else ''}: {problem} "
                            f"(dbt model {model}; see docs/design/journeys.md)")

    columns = {name.lower() for name in (node.get("columns") or {})}
    entry_kind = _entry(spec.get("entry"), node, columns, fail)
    steps = _steps(spec.get("steps"), campaign_types, columns, fail)
    return Journey(
        journey_id=journey_id,
        model=model,
        relation=f"{node.get('schema')}.{node.get('alias') or model}",
        context_columns=tuple(sorted(columns - set(ENTRY_COLUMNS))),
        entry_kind=entry_kind,
        reentry=_reentry(spec.get("reentry", "never"), fail),
        exits=_exits(spec.get("exit") or [], columns, fail),
        goal=_goal(spec.get("goal"), columns, fail),
        steps=steps,
        holdout_share=_share(spec.get("holdout_share", 0), fail),
        status=_choice(spec.get("status", "live"), STATUSES, "status", "", fail),
    )


def _choice(value, allowed: tuple[str, ...], key: str, where: str, fail) -> str:
    if value not in allowed:
        raise fail(where, f"{key} {value!r} must be one of {', '.join(allowed)}")
    return value


def _entry(entry, node: dict, columns: set[str], fail) -> str:
    if isinstance(entry, dict) and True in entry:  # YAML 1.1, which dbt reads, takes the key `on` for true
        raise fail("", "entry: {on: ...} reads as {true: ...} in YAML; write entry: {type: event} or "
                       "entry: {type: audience}")
    if not isinstance(entry, dict) or "type" not in entry:
        raise fail("", "entry is required: write entry: {type: event} or entry: {type: audience}")
    kind = _choice(entry["type"], ENTRY_KINDS, "entry.type", "", fail)
    materialized = (node.get("config") or {}).get("materialized")
    if kind == "event" and materialized != "incremental":
        raise fail("", f"entry type: event needs an incremental entry model ({node['name']} is "
                       f"materialized {materialized}); add config(materialized='incremental')")
    missing = [name for name in ENTRY_COLUMNS if columns and name not in columns]
    if missing:
        raise fail("", f"the entry model has no column {', '.join(missing)}; an entry model selects "
                       f"{', '.join(ENTRY_COLUMNS)} (and the context columns steps refer to)")
    return kind


def _reentry(value, fail) -> str | int:
    if value in ("never", "per_key"):
        return value
    days = value.get("after_days") if isinstance(value, dict) else None
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise fail("", f"reentry {value!r} must be never, per_key or {{after_days: N}} with N at least 1")
    return days


def _exits(exits, columns: set[str], fail) -> tuple[Mapping, ...]:
    if not isinstance(exits, list):
        raise fail("", "exit must be a list of {event: ..., reason: ...} or {condition: ineligible}")
    checked = []
    for number, item in enumerate(exits, start=1):
        where = f"exit {number}"
        if isinstance(item, dict) and item.get("condition") == "ineligible":
            checked.append({"condition": "ineligible"})
            continue
        if not isinstance(item, dict) or not item.get("event") or not item.get("reason"):
            raise fail(where, "must be {event: <event name>, reason: <why>} or {condition: ineligible}")
        _match_column(item.get("match"), columns, where, fail)
        checked.append(dict(item))
    if not any(item.get("condition") == "ineligible" for item in checked):
        # The pre-send check would suppress an ineligible customer anyway; this ends the journey cleanly.
        checked.append({"condition": "ineligible"})
    return tuple(checked)


def _match_column(column, columns: set[str], where: str, fail) -> None:
    if column is not None and columns and str(column).lower() not in columns:
        raise fail(where, f"match: {column} is not a column of the entry model; add it to the model's select "
                          "or drop match")


def _goal(goal, columns: set[str], fail) -> Mapping | None:
    if goal is None:
        return None
    if not isinstance(goal, dict) or not goal.get("event"):
        raise fail("goal", "must be {event: <event name>, within_days: N, exits: true|false}")
    days = goal.get("within_days")
    if not isinstance(days, (int, float)) or isinstance(days, bool) or days <= 0:
        raise fail("goal", f"within_days {days!r} must be a positive number of days")
    _match_column(goal.get("match"), columns, "goal", fail)
    return {"exits": True, **goal}


def _share(value, fail) -> float:
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = -1.0
    if not 0 <= share < 1:
        raise fail("", f"holdout_share {value!r} must be a fraction from 0 to below 1")
    return share


def _steps(steps, campaign_types: Mapping[str, str], columns: set[str], fail) -> tuple[Step, ...]:
    if not isinstance(steps, list) or not steps:
        raise fail("", "steps must be a non-empty list, e.g. [{id: hello, send: <journey campaign>}]")
    parsed, order = [], {}
    for position, raw in enumerate(steps):
        step_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(step_id, str) or not _STEP_ID.fullmatch(step_id) or step_id in GOTO_TARGETS:
            raise fail(f"step {position + 1}", f"id {step_id!r} must be a lower-case name (letters, digits, _), "
                                               "not end or exit")
        if step_id in order:
            raise fail(f"step {step_id}", f"step id {step_id!r} is used twice; step ids must be unique within "
                                          "a journey")
        order[step_id] = position
        kinds = [kind for kind in STEP_KINDS if kind in raw]
        if len(kinds) != 1:
            raise fail(f"step {step_id}", f"must have exactly one of {', '.join(STEP_KINDS)} (it has "
                                          f"{', '.join(kinds) or 'none'})")
        parsed.append((raw, kinds[0]))
    checked = []
    for position, (raw, kind) in enumerate(parsed):
        where = f"step {raw['id']}"
        check = {"send": _send, "wait": _wait, "branch": _branch, "suppress": _suppress}[kind]
        settings = check(raw, campaign_types, columns, where, fail)
        if kind == "branch":
            for target in [case["goto"] for case in settings["cases"]] + [settings["else"]]:
                _forward(target, position, order, where, fail)
            if settings["needs_previous_send"] and not any(step.kind == "send" for step in checked):
                raise fail(where, "engaged_since_previous needs a send step before it; move the branch after "
                                  "a send step")
        goto = raw.get("goto")
        if goto is not None:
            _forward(goto, position, order, where, fail)
        checked.append(Step(raw["id"], kind, settings, goto))
    return tuple(checked)


def _forward(target, position: int, order: dict[str, int], where: str, fail) -> None:
    if target is None or target in GOTO_TARGETS:
        return
    if not isinstance(target, str) or target not in order or order[target] <= position:
        later = sorted(step for step, at in order.items() if at > position)
        raise fail(where, f"goto {target!r} is not a later step (later steps: {', '.join(later) or 'none'}); "
                          "goto may only point forward, or to end or exit")


def _send(raw: dict, campaign_types: Mapping[str, str], columns, where: str, fail) -> dict:
    campaign = raw["send"]
    if not isinstance(campaign, str) or campaign not in campaign_types:
        raise fail(where, f"send {campaign!r} is not a campaign; add a model with meta.campaign.id {campaign} "
                          "and type: journey to dbt/models/campaigns/_campaigns.yml")
    if campaign_types[campaign] != "journey":
        raise fail(where, f"campaign {campaign!r} has type {campaign_types[campaign]}; a journey can only send "
                          "type: journey campaigns (another type also goes out on its own schedule or trigger)")
    cap = _choice(raw.get("on_frequency_cap", "delay"), CAP_ACTIONS, "on_frequency_cap", where, fail)
    expires = raw.get("expires_after_hours", DEFAULT_EXPIRES_AFTER_HOURS)
    if not isinstance(expires, (int, float)) or isinstance(expires, bool) or expires <= 0:
        raise fail(where, f"expires_after_hours {expires!r} must be a positive number of hours")
    return {"campaign": campaign, "on_frequency_cap": cap, "expires_after_hours": float(expires)}


def _wait(raw: dict, campaign_types, columns, where: str, fail) -> dict:
    wait = raw["wait"]
    if not isinstance(wait, dict):
        raise fail(where, "wait must be {hours: N}, {days: N} or {until_local: \"HH:MM\", after_days: N}")
    if "until_local" in wait:
        local = wait["until_local"]
        if not isinstance(local, str) or not _LOCAL_TIME.fullmatch(local):
            raise fail(where, f"wait.until_local {local!r} is not HH:MM; write e.g. \"09:00\"")
        after_days = wait.get("after_days", 0)
        if not isinstance(after_days, int) or isinstance(after_days, bool) or after_days < 0:
            raise fail(where, f"wait.after_days {after_days!r} must be a whole number of days, 0 or more")
        weekdays = wait.get("weekdays", list(WEEKDAYS))
        if not isinstance(weekdays, list) or not weekdays or any(day not in WEEKDAYS for day in weekdays):
            raise fail(where, f"wait.weekdays {weekdays!r} must be a non-empty list of {', '.join(WEEKDAYS)}")
        return {"until_local": local, "after_days": after_days, "weekdays": tuple(weekdays)}
    units = [unit for unit in ("hours", "days") if unit in wait]
    if len(units) != 1:
        raise fail(where, "wait needs exactly one of hours, days or until_local")
    try:
        amount = float(wait[units[0]])  # a dbt var renders as text
    except (TypeError, ValueError):
        amount = -1.0
    if amount <= 0:
        raise fail(where, f"wait.{units[0]} {wait[units[0]]!r} must be a positive number")
    return {"hours": amount * (24 if units[0] == "days" else 1)}


def _branch(raw: dict, campaign_types, columns: set[str], where: str, fail) -> dict:
    branch = raw["branch"]
    cases = branch.get("cases") if isinstance(branch, dict) else None
    if not isinstance(cases, list) or not cases:
        raise fail(where, "branch needs cases: [{if: <condition>, goto: <later step>}] and optionally else")
    checked, needs_previous_send = [], False
    for case in cases:
        if not isinstance(case, dict) or "if" not in case or "goto" not in case:
            raise fail(where, f"branch case {case!r} needs if: and goto:")
        condition = case["if"]
        if isinstance(condition, dict) and "engaged_since_previous" in condition:
            engaged = condition["engaged_since_previous"]
            if not isinstance(engaged, list) or not engaged or any(e not in ENGAGEMENTS for e in engaged):
                raise fail(where, f"engaged_since_previous {engaged!r} must list {' and/or '.join(ENGAGEMENTS)}")
            needs_previous_send = True
        else:
            _condition(condition, columns, where, fail)
        checked.append({"if": condition, "goto": case["goto"]})
    return {"cases": tuple(checked), "else": branch.get("else"), "needs_previous_send": needs_previous_send}


def _condition(condition, columns: set[str], where: str, fail) -> None:
    sources = [s for s in CONDITION_SOURCES if isinstance(condition, dict) and s in condition]
    tests = [c for c in COMPARISONS if isinstance(condition, dict) and c in condition]
    if len(sources) != 1 or len(tests) != 1:
        raise fail(where, f"branch condition {condition!r} must be {{attribute|profile: <column>, "
                          "equals|in|gte: <value>}} or {engaged_since_previous: [opened, clicked]}")
    if sources[0] == "attribute":
        _match_column(condition["attribute"], columns, where, fail)
    if tests[0] == "in" and not isinstance(condition["in"], list):
        raise fail(where, f"branch condition in: {condition['in']!r} must be a list")


def _suppress(raw: dict, campaign_types, columns, where: str, fail) -> dict:
    return {"suppress": _choice(raw["suppress"], SUPPRESSIONS, "suppress", where, fail)}
