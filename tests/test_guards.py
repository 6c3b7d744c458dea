"""Deliverability guards that pause a bad send, on both warehouses.

End to end: the weekly newsletter's messages draw a spam-complaint spike; dbt counts it in
marts.campaign_performance; the campaign's guard check (run by Dagster) reports ERROR and pauses the
campaign; the next send plans its new messages and hands none over; the CLI resumes it; the next
send hands them over, and the guard, still seeing the same run's spike, does not pause it again.
Around it: the pause record (idempotent, append-only), the sender honouring a pause between pages
and in a dry run, the guards' arithmetic on small numbers, and their settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from dagster_project.analytics.guards import (
    ERROR,
    HARD_BOUNCE,
    NOT_JUDGED,
    PASS,
    SPAM,
    WARN,
    RunNumbers,
    judge_rate,
    judge_spike,
)
from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.sources import SOURCES
from dagster_project.pipeline import load_definitions
from dagster_project.settings import GuardSettings, Settings, SettingsError, load_guard_settings
from dagster_project.warehouse import Warehouse
from reverse_etl import pauses
from reverse_etl.chain import build_routes, send_policy
from reverse_etl.receiver.landing_writer import write_landing_file
from reverse_etl.run import send_campaigns, summary_lines
from reverse_etl.send import main as send_main
from reverse_etl.sender import Sender

from activation_helpers import activation_settings, customer_ids, ledger_states, seed_customers, seed_messages
from conftest import settings_environment
from dbt_runner import dbt

NOW = datetime(2026, 11, 2, 9, 0)
CAMPAIGN = "weekly_picks"
COMPLAINTS = 10  # of the newsletter's 61 messages in the sample: a 16.4% spam-complaint rate
# What the new provider events flow into, up to the mart the guards read.
MODELS = [f"{start}+,+campaign_performance" for start in (
    "stg_esp__events", "stg_ops__send_ledger", "stg_ops__campaign_messages", "stg_ops__campaign_assignments")]
DELIVERY_JOB = "deliver_due_messages"


# --- the guards' arithmetic -------------------------------------------------------------------------

def _run(run_key="2026-11-02", sends=0, deliveries=None, hard_bounces=0, spam_reports=0, unsubscribes=0):
    return RunNumbers(run_key, sends, sends if deliveries is None else deliveries, hard_bounces, spam_reports,
                      unsubscribes)


def _bounces(run, thresholds=(0.02, 0.05), min_sends=100):
    return judge_rate(HARD_BOUNCE, "weekly", run, thresholds, min_sends)


def test_a_rate_is_judged_against_warn_and_error_once_there_are_enough_sends():
    few = _bounces(_run(sends=99, hard_bounces=50))
    assert few.level == NOT_JUDGED and few.summary.startswith("Too few to judge: 99 sends")
    assert _bounces(None).level == NOT_JUDGED

    assert _bounces(_run(sends=200, hard_bounces=3)).level == PASS  # 1.5%
    warned = _bounces(_run(sends=200, hard_bounces=4))  # 2%: at the warning threshold
    assert warned.level == WARN and warned.value == 0.02 and warned.volume == 200 and warned.count == 4
    failed = _bounces(_run(sends=200, hard_bounces=10))  # 5%
    assert failed.level == ERROR
    assert failed.summary == ("Hard-bounce rate 5.00% (10 of 200 sends) in run 2026-11-02: at or over the error "
                              "threshold 5% (MAILROOM_GUARD_HARD_BOUNCE_RATE).")


def test_spam_complaints_are_counted_per_delivery():
    """300 sent, 100 delivered: one complaint is 1% of deliveries (0.33% of sends would be an error too)."""
    run = _run(sends=300, deliveries=100, spam_reports=1)
    verdict = judge_rate(SPAM, "weekly", run, (0.001, 0.003), 100)
    assert verdict.level == ERROR and verdict.value == 0.01 and verdict.volume == 100
    assert "0.3%" in verdict.summary
    too_few = judge_rate(SPAM, "weekly", run, (0.001, 0.003), 101)
    assert too_few.level == NOT_JUDGED and too_few.summary == (
        "Too few to judge: 100 deliveries in run 2026-11-02 (MAILROOM_GUARD_MIN_SENDS=101); 1 spam complaint.")


def test_an_unsubscribe_spike_is_measured_against_the_campaigns_own_history():
    def spike(latest, earlier, min_sends=100):
        return judge_spike("weekly", latest, earlier, (2.0, 3.0), min_sends)

    latest = _run("2026-11-09", sends=1000, unsubscribes=15)
    no_history = spike(latest, [])
    assert no_history.level == NOT_JUDGED and no_history.summary.startswith("No history to compare with")
    # Earlier runs too small to count are no history either.
    assert spike(latest, [_run("2026-10-26", sends=50, unsubscribes=0)]).level == NOT_JUDGED

    # Median of 0.4%, 0.5%, 0.6% = 0.5%: 5 expected in 1,000 deliveries; 15 is 3x -> error, 10 is 2x -> warn.
    history = [_run(f"2026-10-{day}", sends=1000, unsubscribes=n) for day, n in (("12", 4), ("19", 6), ("26", 5))]
    failed = spike(latest, history)
    assert failed.level == ERROR and failed.value == pytest.approx(3.0) and failed.expected == pytest.approx(5.0)
    assert failed.history_runs == 3
    assert spike(_run("2026-11-09", sends=1000, unsubscribes=10), history).level == WARN
    assert spike(_run("2026-11-09", sends=1000, unsubscribes=9), history).level == PASS
    assert spike(_run("2026-11-09", sends=99, unsubscribes=90), history).level == NOT_JUDGED

    # A history without unsubscribes expects at least one: the first one is no spike, three are.
    quiet = [_run("2026-10-26", sends=1000, unsubscribes=0)]
    assert spike(_run("2026-11-09", sends=1000, unsubscribes=1), quiet).level == PASS
    assert spike(_run("2026-11-09", sends=1000, unsubscribes=3), quiet).level == ERROR


def test_guard_settings_come_from_the_environment_and_bad_values_name_the_variable():
    assert load_guard_settings({}) == GuardSettings()
    assert load_guard_settings({"MAILROOM_GUARD_SPAM_RATE": "0.002, 0.004", "MAILROOM_GUARD_MIN_SENDS": "50",
                                "MAILROOM_GUARD_UNSUBSCRIBE_SPIKE": "1.5,4"}) == GuardSettings(
        spam_rate=(0.002, 0.004), unsubscribe_spike=(1.5, 4.0), min_sends=50)
    for name, value, hint in [("MAILROOM_GUARD_SPAM_RATE", "0.3%", "two numbers WARN,ERROR"),
                              ("MAILROOM_GUARD_SPAM_RATE", "0.003", "two numbers"),
                              ("MAILROOM_GUARD_HARD_BOUNCE_RATE", "0.05,0.02", "WARN <= ERROR"),
                              ("MAILROOM_GUARD_HARD_BOUNCE_RATE", "2,5", "fractions between 0 and 1"),
                              ("MAILROOM_GUARD_UNSUBSCRIBE_SPIKE", "0.5,3", "multiples of at least 1"),
                              ("MAILROOM_GUARD_MIN_SENDS", "0", "at least 1")]:
        with pytest.raises(SettingsError, match=name) as raised:
            load_guard_settings({name: value})
        assert hint in str(raised.value), raised.value


# --- the pause record ---------------------------------------------------------------------------------

def test_pauses_are_recorded_once_and_resumed(warehouse):
    with warehouse.connect() as conn:
        assert pauses.current_pause(conn, "weekly") is None and pauses.paused_campaigns(conn) == []
        first = pauses.pause(conn, "weekly", "spam complaints 0.5%", "guard:spam_complaint_rate", NOW, run_key="r1")
        assert first.entry == 1 and pauses.current_pause(conn, "weekly") == first
        # A guard that fails on every run records one pause, not one per run.
        assert pauses.pause(conn, "weekly", "again", "guard:spam_complaint_rate", NOW, run_key="r1") is None
        assert pauses.resume(conn, "other", "not paused", "cli:sam", NOW) is None
        assert [p.campaign_id for p in pauses.paused_campaigns(conn)] == ["weekly"]
        assert pauses.resumed_since_pause_by(conn, "weekly", "guard:spam_complaint_rate", "r1") is None

        resumed = pauses.resume(conn, "weekly", "list cleaned", "cli:sam", NOW + timedelta(hours=1))
        assert resumed.entry == 2 and pauses.current_pause(conn, "weekly") is None
        assert pauses.resumed_since_pause_by(conn, "weekly", "guard:spam_complaint_rate", "r1") == resumed
        assert pauses.resumed_since_pause_by(conn, "weekly", "guard:spam_complaint_rate", "r2") is None
        assert pauses.paused_campaigns(conn) == []
        assert [(p.action, p.actor) for p in pauses.history(conn, "weekly")] == [
            ("pause", "guard:spam_complaint_rate"), ("resume", "cli:sam")]


TOGGLER = """
import sys
from datetime import datetime
from dagster_project.settings import load_settings
from dagster_project.warehouse import Warehouse
from reverse_etl import pauses
warehouse = Warehouse(load_settings())
for turn in range(25):
    for record in (pauses.pause, pauses.resume):
        with warehouse.connect() as conn:
            record(conn, "weekly", f"turn {turn}", sys.argv[1], datetime(2026, 11, 2, 9, 0))
"""


@pytest.mark.parametrize("warehouse_kind", ["postgres"], indirect=True)
def test_two_processes_pausing_and_resuming_together_keep_one_consistent_history(settings, warehouse):
    """Two operators (or a guard and an operator) at the same moment: the numbered entries never
    collide, and the history alternates pause, resume, pause... however the two interleave."""
    environment = {**os.environ, **settings_environment(settings)}
    with warehouse.connect() as conn:
        pauses.ensure_pauses(conn)
    processes = [subprocess.Popen([sys.executable, "-c", TOGGLER, f"cli:operator{n}"], env=environment,
                                  stderr=subprocess.PIPE, text=True) for n in (1, 2)]
    for process in processes:
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors
    with warehouse.connect() as conn:
        history = pauses.history(conn, "weekly")
    assert [entry.entry for entry in history] == list(range(1, len(history) + 1))
    assert [entry.action for entry in history] == [pauses.PAUSE, pauses.RESUME] * (len(history) // 2)
    # Both ended with a resume, so however they interleaved, the campaign is not paused.
    assert len(history) >= 2 and history[-1].action == pauses.RESUME


# --- the sender honours a pause ----------------------------------------------------------------------

def test_a_paused_campaign_plans_its_messages_and_hands_none_over_until_resumed(settings, warehouse, tmp_path):
    customers = customer_ids(12)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "weekly", customers)
    activation = activation_settings(tmp_path)
    with warehouse.connect() as conn:
        pauses.pause(conn, "weekly", "complaints from one ISP", "cli:sam", NOW)

    [dry] = send_campaigns(settings, activation, dry_run=True, log=lambda m: None)
    assert dry.paused is not None and dry.handed_over == 0
    [report] = send_campaigns(settings, activation, log=lambda m: None)
    assert report.paused.reason == "complaints from one ISP" and report.planned == 12 and report.handed_over == 0
    assert ledger_states(warehouse) == {"planned": 12}  # nothing lost: planned and kept
    assert not (tmp_path / "outbox").exists() or not list((tmp_path / "outbox").rglob("*.eml"))
    [line, *_] = summary_lines(report)
    assert line.startswith("weekly: paused - complaints from one ISP (paused by cli:sam at 2026-11-02 09:00 UTC); "
                           "12 messages stay planned; "
                           "resume with `python -m reverse_etl.send --resume --campaign weekly`")

    with warehouse.connect() as conn:
        pauses.resume(conn, "weekly", "understood", "cli:sam", NOW + timedelta(minutes=5))
    [after] = send_campaigns(settings, activation, log=lambda m: None)
    assert after.paused is None and after.accepted == {"outbox": 12}
    assert ledger_states(warehouse) == {"accepted": 12}


def test_a_pause_recorded_while_a_run_sends_stops_it_before_the_next_page(settings, warehouse, tmp_path):
    customers = customer_ids(30)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, "weekly", customers)
    activation = activation_settings(tmp_path)
    with warehouse.connect() as conn:
        pauses.ensure_pauses(conn)
    [route] = build_routes(activation)
    deliver = route.destination.deliver

    def deliver_then_pause(batch, now, **kwargs):  # a guard pauses the campaign while the first page goes out
        result = deliver(batch, now, **kwargs)
        with warehouse.connect() as conn:
            pauses.pause(conn, "weekly", "spike", "guard:spam_complaint_rate", NOW)
        return result

    route.destination.deliver = deliver_then_pause
    logged = []
    sender = Sender(warehouse, [route], replace(send_policy(activation), page_size=10), log=logged.append)
    report = sender.send_campaign("weekly")

    assert report.accepted == {"outbox": 10} and report.paused.reason == "spike"
    assert ledger_states(warehouse) == {"accepted": 10, "planned": 20}
    assert any("paused while sending" in line for line in logged)


# --- the Dagster wiring ------------------------------------------------------------------------------

def test_every_campaign_is_guarded_wherever_it_sends_and_daily(prepared_dbt):
    from dagster_project.defs.analytics.guards import guard_check_keys
    from dagster_project.defs.experiments.assets import campaign_performance_key
    from dagster_project.defs.personalization.campaign_assets import load_campaigns

    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    campaigns = load_campaigns()
    for campaign in campaigns:
        keys = guard_check_keys(campaign)
        assert {key.name for key in keys} == {"hard_bounce_rate", "spam_complaint_rate", "unsubscribe_spike"}
        for key in keys:
            node = graph.get_check_spec(key)
            assert not node.blocking and campaign_performance_key() in {dep.asset_key for dep in node.additional_deps}
        jobs = ["daily_campaign_pipeline", DELIVERY_JOB] + (
            [f"{campaign.campaign_id}_campaign"] if campaign.campaign_type == "batch" else [])
        for name in jobs:
            selected = defs.resolve_job_def(name).asset_layer.asset_graph.asset_check_keys
            assert set(keys) <= set(selected), (name, campaign.campaign_id)
    for name in ("pause_campaign_sends", "resume_campaign_sends"):
        assert defs.resolve_job_def(name).description


def test_the_ui_pauses_and_resumes_a_campaign_through_jobs(prepared_dbt, mailroom_env, warehouse):
    defs = load_definitions()

    def launch(job: str, **config):
        op = "pause_campaign" if job.startswith("pause") else "resume_campaign"
        return defs.resolve_job_def(job).execute_in_process(
            run_config={"ops": {op: {"config": config}}}, instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False)

    typo = launch("pause_campaign_sends", campaign_id="weekly_pick")
    [failure] = [e for e in typo.all_events if e.is_step_failure]
    assert "No campaign 'weekly_pick': set campaign_id to one of" in failure.step_failure_data.error.message
    assert "weekly_picks" in failure.step_failure_data.error.message

    assert launch("pause_campaign_sends", campaign_id=CAMPAIGN, reason="complaints from one ISP",
                  operator="sam").success
    assert launch("pause_campaign_sends", campaign_id=CAMPAIGN).success  # paused already: nothing recorded
    assert launch("resume_campaign_sends", campaign_id=CAMPAIGN).success
    with warehouse.connect() as conn:
        paused, resumed = pauses.history(conn, CAMPAIGN)
    assert (paused.action, paused.actor, paused.reason) == ("pause", "dagster:sam", "complaints from one ISP")
    assert (resumed.action, resumed.reason) == ("resume", "resumed from the Dagster UI")
    assert resumed.actor.startswith("dagster:run ")  # no operator named: the run that recorded it


# --- end to end, on both warehouses ------------------------------------------------------------------

@pytest.mark.slow
def test_a_complaint_spike_pauses_the_campaign_until_it_is_resumed(campaigned_warehouse, monkeypatch, capsys):
    settings = campaigned_warehouse.settings
    warehouse = Warehouse(settings)
    monkeypatch.setenv("MAILROOM_GUARD_MIN_SENDS", "20")  # the sample's newsletter went to 61 customers
    _complaints_arrive(settings, warehouse)

    # The delivery job's guards judge the newsletter's run: ERROR, and its sends are paused.
    first = _deliver_due()
    spam = _check(first, "spam_complaint_rate")
    assert not spam.passed and spam.severity == dg.AssetCheckSeverity.ERROR
    assert spam.metadata["spam_complaint_rate"].value == pytest.approx(COMPLAINTS / 61, abs=1e-6)
    assert spam.metadata["deliveries_judged"].value == 61 and spam.metadata["run_key"].value == "2026-11-01"
    assert "Its sends are paused" in spam.description
    assert _check(first, "hard_bounce_rate").passed
    assert "No history" in _check(first, "unsubscribe_spike").description
    with warehouse.connect() as conn:
        [paused] = pauses.history(conn, CAMPAIGN)
        assert (paused.action, paused.actor, paused.run_key) == ("pause", "guard:spam_complaint_rate", "2026-11-01")
        assert "16.39% (10 of 61 deliveries)" in paused.reason and "0.3%" in paused.reason
        # A pause is the campaign's own: the others that sent (the re-engagement journey's nudge) go on.
        others = {c for (c,) in conn.fetchall("SELECT DISTINCT campaign_id FROM ops.send_ledger "
                                               "WHERE state = 'accepted' AND campaign_id <> ?", [CAMPAIGN])}
        assert others and all(pauses.current_pause(conn, other) is None for other in others), others
    assert send_main(["--paused"]) == 0
    assert capsys.readouterr().out.startswith("weekly_picks: paused - Spam-complaint rate 16.39%")

    # The next run's messages are planned, and none is handed over; the guard records no second pause.
    new_run = _new_messages(warehouse, count=5)
    second = _deliver_due()
    sends = _materialization(second, ["campaigns", CAMPAIGN, f"{CAMPAIGN}_sends"])
    assert sends["handed_over"].value == 0 and sends["paused"].value.startswith("Spam-complaint rate")
    assert ledger_states(warehouse, CAMPAIGN) == {"accepted": 61, "planned": 5}
    assert not _check(second, "spam_complaint_rate").passed
    with warehouse.connect() as conn:
        assert len(pauses.history(conn, CAMPAIGN)) == 1

    # An operator resumes it from the command line; the next run hands the planned messages over, and the
    # guard, still seeing the run it paused for, does not pause the campaign again.
    with pytest.raises(SystemExit):  # a typo pauses or resumes nothing
        send_main(["--resume", "--campaign", "weekly_pick"])
    assert "no messages of campaign weekly_pick in the warehouse" in capsys.readouterr().err
    assert send_main(["--resume", "--campaign", CAMPAIGN, "--reason", "one bad import; list cleaned"]) == 0
    assert "weekly_picks: resumed" in capsys.readouterr().out
    third = _deliver_due()
    assert _materialization(third, ["campaigns", CAMPAIGN, f"{CAMPAIGN}_sends"])["handed_over"].value == 5
    assert ledger_states(warehouse, CAMPAIGN) == {"accepted": 66}
    with warehouse.connect() as conn:
        assert conn.scalar("SELECT count(*) FROM ops.send_ledger WHERE run_key = ? AND state = 'accepted'",
                           [new_run]) == 5
        assert pauses.current_pause(conn, CAMPAIGN) is None
        assert [(p.action, p.actor.split(":")[0], p.reason) for p in pauses.history(conn, CAMPAIGN)][1:] == [
            ("resume", "cli", "one bad import; list cleaned")]
    again = _check(third, "spam_complaint_rate")
    assert not again.passed and "Not paused again" in again.description


def _complaints_arrive(settings: Settings, warehouse: Warehouse) -> None:
    """The provider reports every message of the newsletter delivered, and COMPLAINTS of them as spam;
    dbt counts them into marts.campaign_performance."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with warehouse.connect() as conn:
        sent = conn.fetchall(
            "SELECT l.message_id, l.campaign_id, l.variant_id, m.to_email FROM ops.send_ledger AS l "
            "JOIN ops.campaign_messages AS m ON m.message_id = l.message_id WHERE l.state = 'accepted' "
            "ORDER BY l.message_id")
    assert sum(1 for row in sent if row[1] == CAMPAIGN) == 61, "the sample's newsletter changed: adjust COMPLAINTS"
    events, complained = [], 0
    for message_id, campaign_id, variant_id, email in sent:
        kinds = ["delivered"]
        if campaign_id == CAMPAIGN and complained < COMPLAINTS:
            kinds.append("spamreport")
            complained += 1
        for kind in kinds:
            events.append(json.dumps({
                "sg_event_id": f"{kind}-{message_id}"[:60], "event": kind, "email": email,
                "timestamp": int(now.replace(tzinfo=timezone.utc).timestamp()),
                "sg_message_id": f"test.{message_id[:16]}", "mailroom_message_id": message_id,
                "campaign_id": campaign_id, "variant_id": variant_id, "category": [campaign_id]}).encode())
    write_landing_file(settings.landing_dir / "esp", "provider-events", events)
    report = ingest_source(warehouse, SOURCES["esp"], settings.landing_dir, now=now, workers=1)
    assert report.files_loaded and not any(f.rows_quarantined for f in report.files_loaded), report
    dbt(settings, "build", "--select", *MODELS)


def _new_messages(warehouse: Warehouse, count: int) -> str:
    """The newsletter's next run, rendered for customers who have had no message yet (the test run's
    remainder): new ledger rows once a send plans them."""
    run_key = "2026-11-08"
    with warehouse.connect() as conn:
        customers = [row[0] for row in conn.fetchall(
            "SELECT customer_id FROM ops.campaign_assignments WHERE campaign_id = ? AND phase = 'remainder' "
            "ORDER BY customer_id LIMIT ?", [CAMPAIGN, count])]
    seed_messages(warehouse, CAMPAIGN, customers, run_key=run_key)
    return run_key


def _deliver_due() -> dg.ExecuteInProcessResult:
    result = load_definitions().resolve_job_def(DELIVERY_JOB).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success, [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
    return result


def _check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    [found] = [c for c in result.get_asset_check_evaluations()
               if c.check_name == name and c.asset_key.path[1] == CAMPAIGN]
    return found


def _materialization(result: dg.ExecuteInProcessResult, key: list[str]) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(key)]
    return event.materialization.metadata
