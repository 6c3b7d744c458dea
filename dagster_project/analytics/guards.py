"""Deliverability guards: each campaign's latest run judged on the numbers mailbox providers judge a
sender by, from marts.campaign_performance (the variants pooled; the holdout is sent nothing).

    hard_bounce_rate     hard bounces per send                         MAILROOM_GUARD_HARD_BOUNCE_RATE
    spam_complaint_rate  spam complaints per delivery                  MAILROOM_GUARD_SPAM_RATE
    unsubscribe_spike    unsubscribes against what the campaign's      MAILROOM_GUARD_UNSUBSCRIBE_SPIKE
                         earlier runs lead to expect (a multiple of
                         their median rate, at least one unsubscribe)

Each has a warn and an error level (settings.GuardSettings). Below MAILROOM_GUARD_MIN_SENDS sends (or
deliveries) a guard does not judge: one event more or less would swing the rate past any threshold.
What crossing error does (pausing the campaign's sends) is the Dagster check's job
(defs/analytics/guards.py); here is only the arithmetic and the one query it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from dagster_project.experiments.performance import PERFORMANCE_TABLE
from dagster_project.settings import GuardSettings
from dagster_project.warehouse import Connection

PASS, WARN, ERROR, NOT_JUDGED = "pass", "warn", "error", "not_judged"


@dataclass(frozen=True)
class Guard:
    name: str  # the asset check's name
    label: str  # what a person reads
    count_of: str  # the RunNumbers field it counts ("hard_bounces")...
    volume_of: str  # ...per this one ("sends")
    variable: str  # the setting with its thresholds
    description: str

    @property
    def events(self) -> str:
        return self.count_of.replace("_", " ").replace("spam reports", "spam complaints")


HARD_BOUNCE = Guard("hard_bounce_rate", "hard-bounce rate", "hard_bounces", "sends", "MAILROOM_GUARD_HARD_BOUNCE_RATE",
                    "Hard bounces per send in the campaign's latest run. A high rate means a stale or bought list; "
                    "mailbox providers throttle or block a sender that keeps mailing addresses that do not exist.")
SPAM = Guard("spam_complaint_rate", "spam-complaint rate", "spam_reports", "deliveries", "MAILROOM_GUARD_SPAM_RATE",
             "Spam complaints per delivery in the campaign's latest run. Gmail and Yahoo require bulk senders to "
             "stay under 0.3% (and ask for under 0.1%); above it mail goes to spam or is refused.")
UNSUBSCRIBES = Guard("unsubscribe_spike", "unsubscribe spike", "unsubscribes", "deliveries",
                     "MAILROOM_GUARD_UNSUBSCRIBE_SPIKE",
                     "Unsubscribes in the campaign's latest run against what its earlier runs lead to expect (their "
                     "median rate times this run's deliveries, at least one): a multiple means the content or the "
                     "audience went wrong.")
GUARDS = (HARD_BOUNCE, SPAM, UNSUBSCRIBES)


@dataclass(frozen=True)
class RunNumbers:
    """One campaign run's variants pooled."""

    run_key: str
    sends: int
    deliveries: int
    hard_bounces: int
    spam_reports: int
    unsubscribes: int


@dataclass(frozen=True)
class Verdict:
    guard: Guard
    campaign_id: str
    run_key: str | None  # the run judged (None: the campaign has no run in the mart yet)
    level: str  # PASS, WARN, ERROR or NOT_JUDGED
    value: float | None  # the rate, or for the spike the multiple of what was expected
    warn: float
    error: float
    volume: int  # the sends or deliveries the rate is of
    count: int  # the hard bounces, complaints or unsubscribes counted
    summary: str  # one line a person reads: the numbers and what they mean
    expected: float | None = None  # spike only: unsubscribes the campaign's history leads to expect
    history_runs: int = 0  # spike only: earlier runs with enough deliveries to count


def campaign_verdicts(conn: Connection, campaign_id: str, settings: GuardSettings) -> list[Verdict]:
    """Every guard's verdict on the campaign's latest run in marts.campaign_performance."""
    runs = run_numbers(conn, campaign_id)
    latest, earlier = (runs[-1], runs[:-1]) if runs else (None, [])
    return [
        judge_rate(HARD_BOUNCE, campaign_id, latest, settings.hard_bounce_rate, settings.min_sends),
        judge_rate(SPAM, campaign_id, latest, settings.spam_rate, settings.min_sends),
        judge_spike(campaign_id, latest, earlier, settings.unsubscribe_spike, settings.min_sends),
    ]


def run_numbers(conn: Connection, campaign_id: str) -> list[RunNumbers]:
    """The campaign's runs in the mart, oldest first, each with its variants pooled (the holdout left out)."""
    if not conn.table_exists("marts", "campaign_performance"):
        return []
    rows = conn.fetchall(
        "SELECT run_key, sum(sends), sum(deliveries), sum(hard_bounces), sum(spam_reports), sum(unsubscribes) "
        f"FROM {PERFORMANCE_TABLE} WHERE campaign_id = ? AND NOT is_holdout GROUP BY run_key ORDER BY run_key",
        [campaign_id])
    return [RunNumbers(run_key, *(int(n or 0) for n in counts)) for run_key, *counts in rows]


def judge_rate(guard: Guard, campaign_id: str, run: RunNumbers | None, thresholds: tuple[float, float],
               min_sends: int) -> Verdict:
    """guard.count_of per guard.volume_of in the run, once the volume reaches min_sends."""
    warn, error = thresholds
    if run is None:
        return Verdict(guard, campaign_id, None, NOT_JUDGED, None, warn, error, 0, 0,
                       "No run of the campaign in marts.campaign_performance yet.")
    count, volume = getattr(run, guard.count_of), getattr(run, guard.volume_of)
    if volume < min_sends:
        return Verdict(guard, campaign_id, run.run_key, NOT_JUDGED, None, warn, error, volume, count,
                       _too_few(guard, run, min_sends))
    rate = count / volume
    level = _level(rate, warn, error)
    summary = (f"{guard.label.capitalize()} {rate:.2%} ({count:,} of {volume:,} {guard.volume_of}) in run "
               f"{run.run_key}: " + _against(guard, level, warn, error))
    return Verdict(guard, campaign_id, run.run_key, level, rate, warn, error, volume, count, summary)


def judge_spike(campaign_id: str, run: RunNumbers | None, earlier: list[RunNumbers],
                thresholds: tuple[float, float], min_sends: int) -> Verdict:
    """The latest run's unsubscribes against the median rate of the earlier runs with at least min_sends
    deliveries, times this run's deliveries - at least one unsubscribe, so a history without any (a
    rate of 0 has no multiple) does not make the first one a spike."""
    guard, (warn, error) = UNSUBSCRIBES, thresholds
    if run is None:
        return Verdict(guard, campaign_id, None, NOT_JUDGED, None, warn, error, 0, 0,
                       "No run of the campaign in marts.campaign_performance yet.")
    if run.deliveries < min_sends:
        return Verdict(guard, campaign_id, run.run_key, NOT_JUDGED, None, warn, error, run.deliveries,
                       run.unsubscribes, _too_few(guard, run, min_sends))
    history = [r.unsubscribes / r.deliveries for r in earlier if r.deliveries >= min_sends]
    unsubscribed = f"{_counted(run.unsubscribes, 'unsubscribes')} of {run.deliveries:,} deliveries in run {run.run_key}"
    if not history:
        return Verdict(guard, campaign_id, run.run_key, NOT_JUDGED, None, warn, error, run.deliveries,
                       run.unsubscribes, f"No history to compare with: no earlier run of the campaign had "
                       f"{min_sends:,} deliveries or more; {unsubscribed} ({run.unsubscribes / run.deliveries:.2%}).")
    typical = median(history)
    expected = max(typical * run.deliveries, 1.0)
    multiple = run.unsubscribes / expected
    level = _level(multiple, warn, error)
    summary = (f"{unsubscribed} ({run.unsubscribes / run.deliveries:.2%}), {multiple:.1f}x the {expected:.1f} "
               f"expected from the median of {len(history)} earlier runs ({typical:.2%}): "
               + _against(guard, level, warn, error))
    return Verdict(guard, campaign_id, run.run_key, level, multiple, warn, error, run.deliveries, run.unsubscribes,
                   summary, expected=expected, history_runs=len(history))


def _too_few(guard: Guard, run: RunNumbers, min_sends: int) -> str:
    volume = getattr(run, guard.volume_of)
    return (f"Too few to judge: {_counted(volume, guard.volume_of)} in run {run.run_key} (MAILROOM_GUARD_MIN_SENDS="
            f"{min_sends:,}); {_counted(getattr(run, guard.count_of), guard.events)}.")


def _counted(n: int, things: str) -> str:
    """'1 hard bounce', '3 hard bounces', '1 delivery'."""
    one = things.removesuffix("ies") + "y" if things.endswith("ies") else things.removesuffix("s")
    return f"{n:,} {one if n == 1 else things}"


def _level(value: float, warn: float, error: float) -> str:
    return ERROR if value >= error else WARN if value >= warn else PASS


def _against(guard: Guard, level: str, warn: float, error: float) -> str:
    if level == ERROR:
        return f"at or over the error threshold {_format(guard, error)} ({guard.variable})."
    if level == WARN:
        return (f"at or over the warning threshold {_format(guard, warn)}, under the error threshold "
                f"{_format(guard, error)}.")
    return f"under the warning threshold {_format(guard, warn)}."


def _format(guard: Guard, threshold: float) -> str:
    return f"{threshold:g}x" if guard is UNSUBSCRIBES else f"{threshold * 100:.4g}%"
