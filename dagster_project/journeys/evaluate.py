"""One tick of the journeys: admit new entries, end the entries whose exit or goal came true, and run
every step that is due, for all customers or only those touched since the last tick.

A tick is safe to run twice at once and to kill at any point (state.py): it leases the rows it works
on, every move is a compare-and-set, and a step counts as done only once its log row exists, so a
re-run neither repeats nor skips it. A send step renders the customer's message into
ops.campaign_messages under the run key `<journey>.<entry>.<step>` and plans it in the send ledger;
the hand-over is the campaign's ordinary send (pre-send check, frequency cap, quiet hours, exactly
once), which the caller runs after the tick (`handover_campaigns`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dagster_project.journeys import conditions, state
from dagster_project.journeys.render import render_step_message
from dagster_project.journeys.spec import Journey, Step
from dagster_project.journeys.timing import wait_ends
from dagster_project.personalization.campaigns import Campaign
from dagster_project.personalization.ops_tables import ensure_ops_tables
from dagster_project.personalization.render import MessageRenderer
from dagster_project.warehouse import Connection
from reverse_etl import ledger, pauses

DEFAULT_LEASE = timedelta(minutes=5)
# An event older than this admits nobody: the first tick after a deploy must not mail last month's carts.
DEFAULT_ENTRY_MAX_AGE = timedelta(hours=48)
PAGE = 500  # due rows leased at a time


def pause_key(journey_id: str) -> str:
    """Journeys are paused in ops.campaign_pauses under this key (no campaign is named like it)."""
    return f"journey:{journey_id}"


@dataclass
class TickReport:
    journey_id: str
    paused: str | None = None  # why, when the journey is paused
    entered: int = 0
    exited: Counter = field(default_factory=Counter)  # reason -> entries ended this tick
    goals: int = 0
    completed: int = 0
    steps: Counter = field(default_factory=Counter)  # (step_id, outcome) -> rows this tick
    planned: Counter = field(default_factory=Counter)  # campaign -> messages planned this tick
    lost: int = 0  # rows another run moved first

    @property
    def campaigns_to_send(self) -> list[str]:
        return sorted(campaign for campaign, count in self.planned.items() if count)


@dataclass
class Tick:
    conn: Connection
    journey: Journey
    campaigns: Mapping[str, Campaign]
    renderer: MessageRenderer
    now: datetime
    owner: str
    lease: timedelta = DEFAULT_LEASE
    customers: Sequence[str] | None = None  # only these customers (the fast path); None: everybody due
    entry_max_age: timedelta = DEFAULT_ENTRY_MAX_AGE
    report: TickReport = None

    def __post_init__(self):
        self.report = TickReport(self.journey.journey_id)
        self._content: dict = {}  # campaign -> its current content units, read once per tick

    @property
    def until(self) -> datetime:
        return self.now + self.lease

    def run(self) -> TickReport:
        self.enter()
        self.conn.commit()
        pause = pauses.current_pause(self.conn, pause_key(self.journey.journey_id))
        if pause is not None:  # entries are kept (an event is not lost); nobody moves
            self.report.paused = pause.describe()
            return self.report
        self.end_entries()
        self.conn.commit()
        while True:
            held = state.lease_due(self.conn, self.journey.journey_id, self.owner, self.now, self.until, PAGE,
                                   self.customers)
            self.conn.commit()
            if not held:
                break
            zones = self.timezones([row.customer_id for row in held])
            for row in held:
                try:
                    self.run_steps(row, zones.get(row.customer_id))
                except state.TransitionLost:
                    self.report.lost += 1
                self.conn.commit()
            if len(held) < PAGE:
                break
        return self.report

    # -- entries ---------------------------------------------------------------------------------

    def enter(self) -> None:
        journey = self.journey
        if not self._relation_exists(journey.relation):
            return
        # As text: the context is kept as JSON, and PostgreSQL has no min() of a boolean.
        context = "".join(f", min(CAST(e.{column} AS VARCHAR)) AS {column}" for column in journey.context_columns)
        only, params = self._only("e.customer_id")
        age = ""
        if journey.entry_kind == "event":  # audiences are today's: their rows carry the as-of time
            age, params = "AND e.entry_at >= ? ", [*params, self.now - self.entry_max_age]
        rows = self.conn.fetchall(
            f"SELECT e.customer_id, e.entry_key, min(e.entry_at) AS entry_at{context} FROM {journey.relation} AS e "
            f"WHERE e.customer_id IS NOT NULL AND e.entry_key IS NOT NULL {only}{age}"
            "AND NOT EXISTS (SELECT 1 FROM ops.journey_entries AS j WHERE j.journey_id = ? "
            "  AND j.customer_id = e.customer_id AND j.entry_key = e.entry_key) "
            "GROUP BY e.customer_id, e.entry_key ORDER BY min(e.entry_at), e.customer_id, e.entry_key",
            [*params, journey.journey_id])
        candidates = [state.Candidate(row[0], str(row[1]), row[2], dict(zip(journey.context_columns, row[3:])))
                      for row in rows]
        entered = state.enter(self.conn, journey.journey_id, journey.steps[0].step_id, journey.reentry, candidates,
                              self.now)
        self.report.entered += len(entered)
        if journey.steps[0].kind == "wait" and entered:
            self._start_first_wait(entered)

    def _start_first_wait(self, customers: list[str]) -> None:
        """A journey that starts with a wait: its end counts from the entry (the first step is not due now)."""
        step = self.journey.steps[0]
        zones = self.timezones(customers)
        for customer in customers:
            entered_at = self.conn.scalar("SELECT entered_at FROM ops.journey_state WHERE journey_id = ? "
                                          "AND customer_id = ?", [self.journey.journey_id, customer])
            self.conn.execute(
                "UPDATE ops.journey_state SET next_due_at = ? WHERE journey_id = ? AND customer_id = ? AND step_id = ? "
                "AND status = ? AND lease_owner IS NULL",
                [wait_ends(step.settings, entered_at, zones.get(customer)), self.journey.journey_id, customer,
                 step.step_id, state.WAITING])

    # -- exits and goals -------------------------------------------------------------------------

    def end_entries(self) -> None:
        """End the waiting entries whose exit event, goal or ineligibility came true since they entered."""
        ending = conditions.exits_due(self.conn, self.journey, self.customers)
        goals = conditions.goals_met(self.conn, self.journey, self.customers)
        for customer, (entry_no, met_at) in goals.items():
            self.report.goals += state.record_goal(self.conn, self.journey.journey_id, customer, entry_no, met_at)
            if self.journey.goal.get("exits", True):
                ending.setdefault(customer, "goal")
        if not ending:
            return
        held = state.lease(self.conn, self.journey.journey_id, self.owner, self.now, self.until, list(ending))
        for row in held:
            try:
                state.finish(self.conn, row, self.owner, state.EXITED, ending[row.customer_id], self.now)
                self.report.exited[ending[row.customer_id]] += 1
            except state.TransitionLost:
                self.report.lost += 1

    # -- steps -----------------------------------------------------------------------------------

    def run_steps(self, row: state.Held, tz_name: str | None) -> None:
        """Run the held row's due steps until it waits for a later time, or its entry ends."""
        while True:
            step = self.journey.step(row.step_id)
            if step is None:  # the declaration changed under a waiting customer
                state.finish(self.conn, row, self.owner, state.EXITED, "step_removed", self.now)
                self.report.exited["step_removed"] += 1
                return
            done = state.step_done(self.conn, row)
            if done is None:
                outcome, message_id = self.perform(step, row)
                state.record_step(self.conn, row, outcome, self.now, self.owner, message_id)
                self.report.steps[(step.step_id, outcome)] += 1
                done = state.step_done(self.conn, row)
            outcome, _message_id, done_at = done
            target = self._target(step, outcome)
            if target in ("end", "exit"):
                status = state.COMPLETED if target == "end" else state.EXITED
                reason = "completed" if target == "end" else _exit_reason(step, outcome)
                state.finish(self.conn, row, self.owner, status, reason, self.now)
                self.report.completed += status == state.COMPLETED
                if status == state.EXITED:
                    self.report.exited[reason] += 1
                return
            following = self.journey.step(target)
            # A wait counts from when the step before it was done (read back from the log, so a re-run
            # after a crash computes the same time).
            due = wait_ends(following.settings, done_at, tz_name) if following.kind == "wait" else done_at
            row = state.advance(self.conn, row, self.owner, target, due, self.now)
            if due > self.now:
                return

    def _target(self, step: Step, outcome: str) -> str:
        """Where the customer goes after `step` ended with `outcome`."""
        if outcome.startswith("exit:"):
            return "exit"
        if outcome.startswith("branch:"):
            return outcome.split(":", 1)[1]
        return self.journey.after(step)

    def perform(self, step: Step, row: state.Held) -> tuple[str, str | None]:
        """Do a step that has no log row yet; returns (outcome, message id)."""
        if step.kind == "wait":
            return "waited", None
        if step.kind == "branch":
            return f"branch:{conditions.choose(self.conn, step, row)}", None
        if step.kind == "suppress":
            from reverse_etl.suppressions import ensure_marketing_suppressions, record_sunset

            ensure_marketing_suppressions(self.conn)
            record_sunset(self.conn, [row.customer_id], self.journey.journey_id, self.now)
            return f"suppressed:{step.settings['suppress']}", None
        campaign = self.campaigns[step.settings["campaign"]]
        outcome, message_id = render_step_message(self.conn, campaign, step, row, self.renderer, self.now,
                                                  self._content)
        if message_id is not None:
            self.report.planned[campaign.campaign_id] += ledger.plan(self.conn, campaign.campaign_id, self.now)
        return outcome, message_id

    # -- helpers ---------------------------------------------------------------------------------

    def timezones(self, customers: list[str]) -> dict[str, str | None]:
        """Each customer's timezone: the profile's, else the one their entry event carried."""
        zones = {}
        if customers and self._relation_exists("marts.dim_customers"):
            zones = dict(self.conn.fetchall("SELECT customer_id, timezone FROM marts.dim_customers "
                                            "WHERE customer_id = ANY(?)", [customers]))
        for customer, context in self.conn.fetchall(
                "SELECT customer_id, context_json FROM ops.journey_state WHERE journey_id = ? AND customer_id = ANY(?)",
                [self.journey.journey_id, customers]):
            zones.setdefault(customer, json.loads(context or "{}").get("timezone"))
        return zones

    def _only(self, column: str) -> tuple[str, list]:
        if self.customers is None:
            return "", []
        return f"AND {column} = ANY(?) ", [list(self.customers)]

    def _relation_exists(self, relation: str) -> bool:
        return self.conn.table_exists(*relation.split("."))


def _exit_reason(step: Step, outcome: str) -> str:
    """Why an entry exits at `step`: the reason the step gave ("exit:<reason>"), or its goto exit."""
    return outcome[len("exit:"):] if outcome.startswith("exit:") else f"goto_exit:{step.step_id}"


def tick(conn: Connection, journeys: Sequence[Journey], campaigns: Mapping[str, Campaign],
         renderer: MessageRenderer, now: datetime, owner: str, customers: Sequence[str] | None = None,
         lease: timedelta = DEFAULT_LEASE, entry_max_age: timedelta = DEFAULT_ENTRY_MAX_AGE,
         log: Callable[[str], None] = lambda message: None) -> list[TickReport]:
    """Tick every live journey; returns a report per journey. Commits as it goes."""
    state.ensure_journey_tables(conn)
    ensure_ops_tables(conn)
    ledger.ensure_ledger(conn)
    pauses.ensure_pauses(conn)
    conn.commit()
    reports = []
    for journey in journeys:
        if journey.status != "live":
            continue
        report = Tick(conn, journey, campaigns, renderer, now, owner, lease, customers, entry_max_age).run()
        log(describe(report))
        reports.append(report)
    return reports


def describe(report: TickReport) -> str:
    if report.paused:
        return f"journey {report.journey_id}: paused ({report.paused}); {report.entered} entered and wait"
    exits = ", ".join(f"{count} {reason}" for reason, count in sorted(report.exited.items())) or "none"
    planned = sum(report.planned.values())
    return (f"journey {report.journey_id}: {report.entered} entered, {planned} messages planned, "
            f"{report.completed} completed, exits: {exits}, {report.goals} goals"
            + (f", {report.lost} left to another run" if report.lost else ""))


def next_due(conn: Connection, journey_id: str) -> datetime | None:
    """When the journey's next waiting step falls due (None: nobody is waiting)."""
    return conn.scalar("SELECT min(next_due_at) FROM ops.journey_state WHERE journey_id = ? AND status = ?",
                       [journey_id, state.WAITING])
