"""Send runs that overlap, on both warehouses: the rows a run works on are its own through leases, so a
second run - started at the same moment, or while a killed run's lease still runs - never touches
them; once a killed owner's lease runs out its rows are settled, and every customer gets exactly one
message. Without provider events, a crash between SendGrid's acceptance and the ledger update is
settled by MAILROOM_UNKNOWN_OUTCOME: held for an operator, or the batch cancelled and resent.

The send command runs as real processes (`python -m reverse_etl.send`) against the SendGrid double."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest

from dagster_project.settings import Settings, project_root
from dagster_project.warehouse import Warehouse, WarehouseError
from reverse_etl import ledger
from reverse_etl import sender as sender_module
from reverse_etl.chain import build_finders, build_routes, send_policy
from reverse_etl.concurrency import warehouse_session
from reverse_etl.destinations.base import BatchResult
from reverse_etl.run import send_campaigns, summary_lines
from reverse_etl.sender import Route, Sender
from reverse_etl.throttle import CircuitBreaker, TokenBucket

from activation_helpers import (
    activation_settings,
    customer_ids,
    ledger_states,
    seed_customers,
    seed_messages,
    wall_clock,
)
from conftest import settings_environment
from doubles.sendgrid_double import SendGridDouble

MESSAGES = 200
CAMPAIGN = "weekly"


# --- the ledger's leases, directly ---------------------------------------------------------------

def test_a_run_only_moves_rows_it_holds_and_takes_over_only_expired_ones(warehouse):
    customers = customer_ids(30)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, CAMPAIGN, customers)
    now, lease = wall_clock(), timedelta(seconds=60)
    with warehouse.connect() as conn:
        ledger.ensure_ledger(conn)
        ledger.plan(conn, CAMPAIGN, now)
        a_rows, _ = ledger.lease_page(conn, CAMPAIGN, "run-a", "", 20, now, now + lease)
        b_rows, _ = ledger.lease_page(conn, CAMPAIGN, "run-b", "", 20, now, now + lease)
        a_ids = [row[0] for row in a_rows]
        assert len(a_rows) == 20 and len(b_rows) == 10 and not set(a_ids) & {row[0] for row in b_rows}

        claimed = ledger.claim_for_sending(conn, a_ids[:5] + [b_rows[0][0]], "run-a", now, "sendgrid")
        assert claimed == set(a_ids[:5])  # B's row is not A's to send

        # A is alive: nothing of it to take over. Past its lease, A is gone: B settles its rows.
        assert ledger.take_over_expired(conn, CAMPAIGN, "run-b", now, now + lease) == 0
        later = now + lease + timedelta(seconds=1)
        assert ledger.take_over_expired(conn, CAMPAIGN, "run-b", later, later + lease) == 5
        with pytest.raises(ledger.LeaseLost, match="run-a"):
            ledger.move(conn, a_ids[:5], ledger.SENDING, ledger.ACCEPTED, now=later, owner="run-a")
        assert ledger.move(conn, a_ids[:5], ledger.SENDING, ledger.ACCEPTED, now=later, owner="run-b") == 5
        # Planned rows are free again once their lease ran out.
        c_rows, _ = ledger.lease_page(conn, CAMPAIGN, "run-c", "", 100, later, later + lease)
        assert {row[0] for row in c_rows} == set(a_ids[5:]) | {row[0] for row in b_rows}


@pytest.mark.parametrize("warehouse_kind", ["postgres"], indirect=True)
def test_a_run_that_outlives_its_lease_stops_and_leaves_the_rows_to_their_new_owner(settings, warehouse, tmp_path,
                                                                                    monkeypatch):
    """Only on PostgreSQL can another run take rows over while their owner still lives (a DuckDB file
    has one process at a time): the owner's next move finds them gone and it stops, without a crash."""
    customers = customer_ids(20)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, CAMPAIGN, customers)
    with SendGridDouble() as sendgrid:
        def take_over(deliveries):  # while SendGrid holds the request, the owner's lease "runs out"
            sendgrid.on_accept = None
            later = wall_clock() + timedelta(hours=1)
            with warehouse.connect() as conn:
                ledger.take_over_expired(conn, CAMPAIGN, "run-b", later, later + timedelta(hours=1))

        sendgrid.on_accept = take_over
        monkeypatch.setenv("MAILROOM_SENDGRID_API_KEY", sendgrid.api_key)
        [report] = send_campaigns(settings, activation_settings(
            tmp_path, destinations=("sendgrid",), sendgrid_host=sendgrid.url, sendgrid_batch_size=10),
            log=lambda m: None)
        requests = sendgrid.requests

    assert report.lease_lost and report.handed_over == 0 and requests == [(202, 10)]  # it stopped at once
    assert "stopped early" in "\n".join(summary_lines(report))
    with warehouse.connect() as conn:
        assert conn.fetchall("SELECT state, lease_owner, count(*) FROM ops.send_ledger WHERE state = 'sending' "
                             "GROUP BY 1, 2") == [("sending", "run-b", 10)]


@pytest.mark.parametrize("warehouse_kind", ["postgres"], indirect=True)
def test_a_lease_lost_while_settling_an_interrupted_run_stops_the_run_without_a_crash(settings, warehouse, tmp_path):
    """While the reconciler asks the outbox about rows a killed run left in `sending`, another run takes
    one of them over: the run records what is still its own, lets go of the rest and stops."""
    customers = customer_ids(10)
    seed_customers(warehouse, customers)
    ids = sorted(seed_messages(warehouse, CAMPAIGN, customers))
    activation = activation_settings(tmp_path)
    send_campaigns(settings, activation, log=lambda m: None)
    outbox = build_finders(activation)["outbox"]
    for message_id in ids[7:]:  # as if the killed run never wrote these files
        outbox.path_for(_outgoing(message_id)).unlink()
    with warehouse.connect() as conn:
        conn.execute("UPDATE ops.send_ledger SET state = 'sending', finished_at = NULL")

    class TakenOverWhileAsked:
        def find_accepted(self, messages):
            with warehouse.connect() as other:
                other.execute("SET LOCAL lock_timeout = '60s'")  # a lock the run still holds: fail, not hang
                other.execute("UPDATE ops.send_ledger SET lease_owner = 'run-b', lease_expires_at = ? "
                              "WHERE message_id = ?", [wall_clock() + timedelta(hours=1), ids[0]])
            return outbox.find_accepted(messages)

    stopped = Sender(warehouse, build_routes(activation), send_policy(activation),
                     finders={"outbox": TakenOverWhileAsked()}).send_campaign(CAMPAIGN)

    assert stopped.lease_lost and stopped.handed_over == 0
    assert "stopped early" in "\n".join(summary_lines(stopped))
    # What it still held it recorded (accepted: the files are there), or let go of (no file): the next
    # run settles those at once; run-b keeps its row.
    [after] = send_campaigns(settings, activation, log=lambda m: None)
    assert after.reconciled["resend"] == 3 and after.handed_over == 3 and after.held_elsewhere == 1
    with warehouse.connect() as conn:
        assert conn.fetchall("SELECT state, lease_owner = 'run-b', count(*) FROM ops.send_ledger "
                             "GROUP BY 1, 2 ORDER BY 1") == [("accepted", False, 9), ("sending", True, 1)]


def _outgoing(message_id: str):
    from reverse_etl.outgoing import OutgoingMessage

    return OutgoingMessage(message_id=message_id, campaign_id=CAMPAIGN, variant_id="", to_email="", subject="",
                           html="", text="")


class _Broken:
    """A destination that fails in a way no destination reports (a bug, an interrupt) on its first request."""
    name, max_batch, schedules_ahead = "outbox", 10, timedelta(hours=72)

    def deliver(self, batch, now, batch_id=None):
        raise RuntimeError("the destination broke during the request")

    def close(self) -> None:
        pass


def test_a_page_that_fails_midway_is_let_go_at_once(settings, warehouse, tmp_path):
    """The error propagates, and the page's lease ends with it: the next run need not wait for it to
    run out, settles the request that was in flight and sends the rest."""
    customers = customer_ids(30)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, CAMPAIGN, customers)
    activation = activation_settings(tmp_path)

    with pytest.raises(RuntimeError, match="broke during the request"):
        Sender(warehouse, [Route(_Broken(), TokenBucket(0), CircuitBreaker(5, 60))],
               send_policy(activation)).send_campaign(CAMPAIGN)
    assert ledger_states(warehouse, CAMPAIGN) == {"planned": 20, "sending": 10}

    [report] = send_campaigns(settings, activation, log=lambda m: None)
    assert report.reconciled == {"resend": 10} and report.handed_over == 30 and report.held_elsewhere == 0
    assert ledger_states(warehouse, CAMPAIGN) == {"accepted": 30}


@pytest.mark.parametrize("warehouse_kind", ["postgres"], indirect=True)
def test_a_send_goes_through_while_a_dry_run_of_the_campaign_is_paused(settings, warehouse, tmp_path, monkeypatch):
    """A dry run stopped in the middle of a hand-over holds no lock a real send needs: the send of the
    same campaign runs to the end meanwhile, and the dry run's plan never reaches the ledger."""
    customers = customer_ids(30)
    seed_customers(warehouse, customers)
    seed_messages(warehouse, CAMPAIGN, customers)
    with warehouse.connect() as conn:
        ledger.ensure_ledger(conn)
    activation = activation_settings(tmp_path)
    reached, resume = threading.Event(), threading.Event()

    class Paused:
        name, max_batch, schedules_ahead = "outbox", 10, timedelta(hours=72)

        def deliver(self, batch, now, batch_id=None):
            reached.set()
            resume.wait()
            return BatchResult(accepted={m.message_id: "dry-run" for m in batch})

    dry = Sender(warehouse, [Route(Paused(), TokenBucket(0), CircuitBreaker(5, 60))], send_policy(activation),
                 dry_run=True)
    plans = []
    thread = threading.Thread(target=lambda: plans.append(dry.send_campaign(CAMPAIGN)))
    thread.start()
    try:
        assert reached.wait(timeout=120), "the dry run never reached its destination"
        monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=30s")  # waiting for the dry run's locks fails, not hangs
        [real] = send_campaigns(settings, activation, log=lambda m: None)
        states_while_paused = ledger_states(warehouse, CAMPAIGN)
    finally:
        resume.set()
        thread.join()

    assert real.accepted == {"outbox": 30} and states_while_paused == {"accepted": 30}
    assert [plan.accepted for plan in plans] == [{"outbox": 30}]
    assert ledger_states(warehouse, CAMPAIGN) == {"accepted": 30}  # the dry run left the ledger as it was


@pytest.mark.parametrize("warehouse_kind", ["postgres"], indirect=True)
def test_two_senders_inside_one_campaign_at_once_send_each_message_once(settings, warehouse, tmp_path, monkeypatch):
    """With the campaign lock out of the way, leases alone keep two runs apart: a second run that starts
    while the first has a request in flight (SendGrid took it, the ledger does not know yet) leaves the
    first's page alone - its request in flight too, which it would otherwise settle as unknown and,
    with MAILROOM_UNKNOWN_OUTCOME=resend, send again - and sends the other pages."""
    monkeypatch.setattr(sender_module, "lock_campaign", lambda conn, campaign_id: True)
    customers = customer_ids(MESSAGES)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, CAMPAIGN, customers)
    with SendGridDouble() as sendgrid:
        monkeypatch.setenv("MAILROOM_SENDGRID_API_KEY", sendgrid.api_key)
        activation = activation_settings(tmp_path, destinations=("sendgrid",), sendgrid_host=sendgrid.url,
                                         sendgrid_batch_size=10, unknown_outcome="resend")
        policy = replace(send_policy(activation), page_size=40)
        second = Sender(warehouse, build_routes(activation), policy, finders=build_finders(activation))
        reports = {}

        class SecondRunMidRequest:  # the first run's SendGrid: after its first request, the second run works
            def __init__(self, real):
                self.real = real

            def __getattr__(self, name):
                return getattr(self.real, name)

            def deliver(self, batch, now, batch_id=None):
                result = self.real.deliver(batch, now)
                if "second" not in reports:
                    reports["second"] = second.send_campaign(CAMPAIGN)
                return result

        first = Sender(warehouse, [Route(SecondRunMidRequest(r.destination), r.bucket, r.breaker)
                                   for r in build_routes(activation)], policy, finders=build_finders(activation))
        reports["first"] = first.send_campaign(CAMPAIGN)
        delivered = Counter(d.custom_args["mailroom_message_id"] for d in sendgrid.deliveries)

    assert delivered == Counter(ids)
    assert not reports["first"].lease_lost and not reports["second"].lease_lost
    # The second run met the first's page (10 in flight, 30 planned) held, and sent the other pages.
    assert reports["second"].held_elsewhere == 40 and not reports["second"].reconciled
    assert (reports["first"].handed_over, reports["second"].handed_over) == (40, MESSAGES - 40)
    assert ledger_states(warehouse, CAMPAIGN) == {"accepted": MESSAGES}


def test_a_send_waits_for_the_duckdb_file_and_names_the_setting_when_it_gives_up(tmp_path):
    settings = Settings(warehouse="duckdb", data_dir=tmp_path)
    Warehouse(settings).ensure_schemas()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True); "
         "time.sleep(1.5)", str(settings.duckdb_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"

    with pytest.raises(WarehouseError, match="MAILROOM_DUCKDB_WAIT_SECONDS"):
        with warehouse_session(Warehouse(settings), commit=True, wait_seconds=0.2):
            pass
    with warehouse_session(Warehouse(settings), commit=True, wait_seconds=60) as conn:
        assert holder.poll() is not None  # it had to wait for the other process to finish
        assert conn.scalar("SELECT 1") == 1
    holder.stdout.close()


# --- real processes ------------------------------------------------------------------------------

@pytest.fixture
def sendgrid(settings):
    with SendGridDouble(events_dir=settings.landing_dir / "esp") as double:
        yield double


@pytest.fixture
def messages(warehouse) -> list[str]:
    customers = customer_ids(MESSAGES)
    seed_customers(warehouse, customers)
    return seed_messages(warehouse, CAMPAIGN, customers)


def _environment(settings, sendgrid, **overrides) -> dict[str, str]:
    return {
        **os.environ,
        **settings_environment(settings),
        "MAILROOM_DESTINATIONS": "sendgrid",
        "MAILROOM_SENDGRID_HOST": sendgrid.url,
        "MAILROOM_SENDGRID_API_KEY": sendgrid.api_key,
        "MAILROOM_SENDGRID_BATCH_SIZE": "10",
        "MAILROOM_SENDGRID_RATE_PER_SECOND": "20",  # a run takes about a second: room to overlap in
        "MAILROOM_SEND_BACKOFF_SECONDS": "0",
        "MAILROOM_RECONCILE_AFTER_MINUTES": "0",
        "MAILROOM_QUIET_HOURS": "off",
        **overrides,
    }


def _start(environment, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "reverse_etl.send", *args], env=environment, cwd=project_root(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=120)
    return output


def _kill_on_accepted_request(sendgrid: SendGridDouble, process: subprocess.Popen, requests: int) -> None:
    """SIGKILL the sender once SendGrid has accepted `requests` requests, before it answers the last:
    the crash between SendGrid's acceptance and the ledger update."""
    remaining = [requests]

    def on_accept(deliveries):
        remaining[0] -= 1
        if remaining[0] == 0:
            sendgrid.on_accept = None
            os.kill(process.pid, signal.SIGKILL)

    sendgrid.on_accept = on_accept


def _delivered(sendgrid: SendGridDouble) -> Counter:
    return Counter(d.custom_args["mailroom_message_id"] for d in sendgrid.delivered)


def _ledger(warehouse) -> list[tuple]:
    with warehouse.connect() as conn:
        return conn.fetchall("SELECT state, reason, count(*) FROM ops.send_ledger GROUP BY state, reason ORDER BY 1, 2")


def test_two_send_processes_started_together_send_each_message_once(settings, warehouse, sendgrid, messages):
    environment = _environment(settings, sendgrid)
    first, second = _start(environment), _start(environment)
    outputs = [_finish(first), _finish(second)]

    assert [first.returncode, second.returncode] == [0, 0], outputs
    handed_over = [int(n.replace(",", "")) for output in outputs for n in re.findall(r"handed over ([\d,]+)", output)]
    assert sum(handed_over) == MESSAGES
    assert _delivered(sendgrid) == Counter(messages) and len(sendgrid.deliveries) == MESSAGES
    assert _ledger(warehouse) == [("accepted", None, MESSAGES)]


def test_a_killed_owner_keeps_its_rows_until_its_lease_runs_out(settings, warehouse, sendgrid, messages):
    environment = _environment(settings, sendgrid)  # the default lease: 10 minutes, far longer than the test
    owner = _start(environment)
    _kill_on_accepted_request(sendgrid, owner, 2)
    _finish(owner)
    assert owner.returncode == -signal.SIGKILL and len(sendgrid.deliveries) == 20

    # The owner's lease still runs: its request in flight stays unknown, its page stays its.
    second = _start(environment)
    output = _finish(second)
    assert second.returncode == 0, output
    assert f"{CAMPAIGN}: handed over 0 " in output and "10 awaiting reconciliation, 190 held by another run" in output
    assert len(sendgrid.deliveries) == 20

    # The lease runs out: set in the past rather than waited for.
    with warehouse.connect() as conn:
        [(killed,)] = conn.fetchall(
            "SELECT DISTINCT lease_owner FROM ops.send_ledger WHERE state IN ('planned', 'sending')")
        conn.execute("UPDATE ops.send_ledger SET lease_expires_at = ? WHERE lease_owner = ?",
                     [wall_clock() - timedelta(seconds=1), killed])
    assert killed.startswith("cli-")
    third = _start(environment)
    output = _finish(third)

    assert third.returncode == 0, output
    assert "from an interrupted run: accepted 10" in output  # from SendGrid's events of the killed request
    assert _delivered(sendgrid) == Counter(messages) and len(sendgrid.deliveries) == MESSAGES
    assert _ledger(warehouse) == [("accepted", None, MESSAGES)]


@pytest.mark.parametrize("policy", ["hold", "cancel_and_resend"])
def test_a_crash_after_acceptance_without_events_never_sends_twice(settings, warehouse, messages, policy):
    lease = 1
    with SendGridDouble(events_dir=None) as sendgrid:  # no Event Webhook events, ever
        environment = _environment(settings, sendgrid, MAILROOM_SEND_LEASE_SECONDS=str(lease),
                                   MAILROOM_UNKNOWN_OUTCOME=policy, MAILROOM_SENDGRID_CANCEL_MARGIN_MINUTES="11")
        owner = _start(environment)
        _kill_on_accepted_request(sendgrid, owner, 1)
        _finish(owner)
        time.sleep(lease + 0.5)  # the killed run's lease runs out

        recovery = _start(environment)
        output = _finish(recovery)
        delivered_before_operator = _delivered(sendgrid)
        if policy == "hold":
            resolved = _start(environment, "--resolve-unknown", "accepted", "--campaign", CAMPAIGN)
            resolved_output = _finish(resolved)

    assert owner.returncode == -signal.SIGKILL
    assert delivered_before_operator == Counter(messages)  # once each, the killed request's copies included
    if policy == "hold":
        assert recovery.returncode == 1 and "from an interrupted run: held 10" in output
        assert f"--resolve-unknown accepted|resend --campaign {CAMPAIGN}" in output
        assert resolved.returncode == 0, resolved_output
        assert f"{CAMPAIGN}: 10 messages with an unknown outcome settled as accepted" in resolved_output
    else:
        assert recovery.returncode == 0 and "from an interrupted run: cancelled_resend 10" in output
        assert sum(d.cancelled for d in sendgrid.deliveries) == 10  # the killed request's batch, cancelled in time
    assert _delivered(sendgrid) == Counter(messages)
    assert _ledger(warehouse) == [("accepted", None, MESSAGES)]
