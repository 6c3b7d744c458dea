"""What a journey asks of the data: which waiting entries an exit or a goal has ended, and where a
branch goes. Events come from journeys.journey_events (refreshed by the fast path within a minute of
a landing file); `match` compares an event's column with the entry's context (that cart, not any cart).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from dagster_project.journeys.spec import Journey, Step
from dagster_project.journeys.state import WAITING, Held
from dagster_project.warehouse import Connection

JOURNEY_EVENTS = "journeys.journey_events"
EVENT_COLUMNS = ("cart_id", "order_id", "product_id")  # what `match` may compare with the entry's context
# A send the pre-send check refused for one of these reasons ends the journey: mailing on would be refused too.
ENDING_SUPPRESSIONS = ("opted_out", "unsubscribed", "hard_bounced", "spam_complaint")
RETRYABLE_SUPPRESSIONS = ("frequency_cap", "expired", "duplicate_address", "no_consent_yet")
ENGAGEMENT_EVENTS = {"opened": "open", "clicked": "click"}
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def exits_due(conn: Connection, journey: Journey, customers: Sequence[str] | None) -> dict[str, str]:
    """customer -> exit reason for every waiting entry of the journey that an exit has ended."""
    ending: dict[str, str] = {}
    for exit_rule in journey.exits:
        if exit_rule.get("condition") == "ineligible":
            for customer, reason in _ineligible(conn, journey, customers):
                ending.setdefault(customer, reason)
            continue
        for customer, _entry_no, _at in _events_since_entry(conn, journey, exit_rule, customers):
            ending.setdefault(customer, exit_rule["reason"])
    return ending


def goals_met(conn: Connection, journey: Journey, customers: Sequence[str] | None) -> dict[str, tuple[int, datetime]]:
    """customer -> (entry, when) for waiting entries whose goal event came within the goal's window."""
    if not journey.goal:
        return {}
    window = timedelta(days=float(journey.goal["within_days"]))
    met: dict[str, tuple[int, datetime]] = {}
    for customer, entry_no, at, entered_at in _events_since_entry(conn, journey, journey.goal, customers,
                                                                  with_entered=True):
        if at <= entered_at + window and (customer not in met or at < met[customer][1]):
            met[customer] = (entry_no, at)
    return met


def _events_since_entry(conn: Connection, journey: Journey, rule: dict, customers: Sequence[str] | None,
                        with_entered: bool = False) -> list[tuple]:
    """(customer, entry_no, event time[, entered_at]) of the rule's events after each waiting entry began,
    matching the entry's context when the rule says `match`."""
    if not conn.table_exists(*JOURNEY_EVENTS.split(".")):
        return []
    match = rule.get("match")
    if match is not None and match not in EVENT_COLUMNS:
        return []  # spec.py checked it is an entry column; events carry only these
    only = "AND s.customer_id = ANY(?) " if customers is not None else ""
    rows = conn.fetchall(
        f"SELECT s.customer_id, s.entry_no, e.event_at, s.entered_at, s.context_json, "
        f"{'e.' + match if match else 'NULL'} FROM ops.journey_state AS s "
        f"JOIN {JOURNEY_EVENTS} AS e ON e.customer_id = s.customer_id AND e.event_name = ? "
        "  AND e.event_at > s.entered_at "
        f"WHERE s.journey_id = ? AND s.status = ? {only}ORDER BY s.customer_id, e.event_at",
        [rule["event"], journey.journey_id, WAITING, *([list(customers)] if customers is not None else [])])
    found = []
    for customer, entry_no, at, entered_at, context_json, value in rows:
        if match is not None and str(json.loads(context_json or "{}").get(match)) != str(value):
            continue
        found.append((customer, entry_no, at, entered_at) if with_entered else (customer, entry_no, at))
    return found


def _ineligible(conn: Connection, journey: Journey, customers: Sequence[str] | None) -> list[tuple[str, str]]:
    """Waiting customers the marts now say may not be mailed, or whose last journey message the pre-send
    check refused for good (opted out, unsubscribed, bounced, complained)."""
    only = "AND s.customer_id = ANY(?) " if customers is not None else ""
    params = [journey.journey_id, WAITING, *([list(customers)] if customers is not None else [])]
    found = []
    if conn.table_exists("marts", "send_eligibility"):
        found += conn.fetchall(
            "SELECT s.customer_id, 'ineligible:' || coalesce(e.ineligible_reason, 'ineligible') "
            "FROM ops.journey_state AS s JOIN marts.send_eligibility AS e ON e.customer_id = s.customer_id "
            f"WHERE s.journey_id = ? AND s.status = ? AND e.is_eligible = FALSE {only}", params)
    if conn.table_exists("ops", "send_ledger"):
        ending = ", ".join(f"'{reason}'" for reason in ENDING_SUPPRESSIONS)
        found += conn.fetchall(
            "SELECT s.customer_id, 'ineligible:' || min(l.reason) FROM ops.journey_state AS s "
            "JOIN ops.journey_steps AS j ON j.journey_id = s.journey_id AND j.customer_id = s.customer_id "
            "  AND j.entry_no = s.entry_no AND j.message_id IS NOT NULL "
            "JOIN ops.send_ledger AS l ON l.message_id = j.message_id "
            f"WHERE s.journey_id = ? AND s.status = ? AND l.state = 'suppressed' AND l.reason IN ({ending}) {only}"
            "GROUP BY s.customer_id", params)
    return found


def choose(conn: Connection, step: Step, row: Held) -> str | None:
    """The branch's goto for this customer: the first case that holds, else its `else` (None: the next step)."""
    for case in step.settings["cases"]:
        if _holds(conn, case["if"], row):
            return case["goto"]
    return step.settings["else"]


def _holds(conn: Connection, condition: dict, row: Held) -> bool:
    if "engaged_since_previous" in condition:
        return engaged_since_previous(conn, row, condition["engaged_since_previous"])
    if "attribute" in condition:
        value = row.context.get(condition["attribute"])
    else:
        value = _profile_value(conn, condition["profile"], row.customer_id)
    return compare(value, condition)


def compare(value, condition: dict) -> bool:
    """equals / in / gte, with text compared as text (a dbt column may arrive as a number or a string)."""
    if "equals" in condition:
        return _same(value, condition["equals"])
    if "in" in condition:
        return any(_same(value, option) for option in condition["in"])
    try:
        return value is not None and float(value) >= float(condition["gte"])
    except (TypeError, ValueError):
        return False


def _same(value, expected) -> bool:
    if value is None or expected is None:
        return value is None and expected is None
    return str(value) == str(expected)


def _profile_value(conn: Connection, column: str, customer_id: str):
    if not _IDENTIFIER.fullmatch(str(column)) or not conn.table_exists("marts", "campaign_candidates"):
        return None
    return conn.scalar(f"SELECT {column} FROM marts.campaign_candidates WHERE customer_id = ?", [customer_id])


def engaged_since_previous(conn: Connection, row: Held, kinds: list[str]) -> bool:
    """Whether the customer opened or clicked (as listed) the message of the entry's latest send step."""
    message_id = conn.scalar(
        "SELECT message_id FROM ops.journey_steps WHERE journey_id = ? AND customer_id = ? AND entry_no = ? "
        "AND message_id IS NOT NULL ORDER BY done_at DESC LIMIT 1",
        [row.journey_id, row.customer_id, row.entry_no])
    if message_id is None or not conn.table_exists("raw", "esp_events"):
        return False
    events = [ENGAGEMENT_EVENTS[kind] for kind in kinds]
    return bool(conn.scalar(
        "SELECT count(*) FROM raw.esp_events WHERE mailroom_message_id = ? AND event = ANY(?)", [message_id, events]))
