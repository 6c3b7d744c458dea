"""Crash recovery: the sending process is killed with SIGKILL at random points - and right between
SendGrid's acceptance and the ledger update - again and again, and re-run each time. At the end the
SendGrid double has exactly one message per customer and the ledger agrees."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from dagster_project.settings import project_root

from activation_helpers import customer_ids, seed_customers, seed_messages
from conftest import settings_environment
from doubles.sendgrid_double import SendGridDouble

KILLS = 24
MESSAGES = 4000
LEASE_SECONDS = 1


def _environment(settings, sendgrid) -> dict[str, str]:
    return {
        **os.environ,
        **settings_environment(settings),
        "MAILROOM_DESTINATIONS": "sendgrid",
        "MAILROOM_SENDGRID_HOST": sendgrid.url,
        "MAILROOM_SENDGRID_API_KEY": sendgrid.api_key,
        "MAILROOM_SENDGRID_BATCH_SIZE": "10",
        "MAILROOM_SENDGRID_RATE_PER_SECOND": "10",  # a run takes a few seconds: room to be killed in
        "MAILROOM_SEND_BACKOFF_SECONDS": "0",
        # The double writes its events before it answers, so a message without events was never handed
        # over: a run may resend it at once (the default, hold, is tested in test_activation_concurrency).
        "MAILROOM_RECONCILE_AFTER_MINUTES": "0",
        "MAILROOM_UNKNOWN_OUTCOME": "resend",
        # A killed run's rows are reconciled once its lease runs out: short here, so the next runs can.
        "MAILROOM_SEND_LEASE_SECONDS": str(LEASE_SECONDS),
        "MAILROOM_QUIET_HOURS": "off",
    }


def _files_in(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.eml")) if folder.exists() else 0


def _start(environment) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "reverse_etl.send"], env=environment, cwd=project_root(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _kill_after_accepted_requests(sendgrid: SendGridDouble, process: subprocess.Popen, requests: int) -> None:
    """SIGKILL the sender once SendGrid has accepted `requests` more requests, before it answers."""
    remaining = [requests]

    def on_accept(deliveries):
        remaining[0] -= 1
        if remaining[0] == 0:
            os.kill(process.pid, signal.SIGKILL)
            sendgrid.on_accept = None

    sendgrid.on_accept = on_accept


@pytest.mark.slow
@pytest.mark.parametrize("warehouse_kind", ["duckdb", "postgres"], indirect=True)
def test_killing_the_sender_at_random_points_never_loses_or_duplicates_a_message(settings, warehouse, tmp_path):
    customers = customer_ids(MESSAGES)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers)
    rng = random.Random(20261123)
    killed = 0
    with SendGridDouble(events_dir=settings.landing_dir / "esp") as sendgrid:
        environment = _environment(settings, sendgrid)
        for attempt in range(KILLS):
            process = _start(environment)
            if attempt % 2:
                _kill_after_accepted_requests(sendgrid, process, rng.randint(1, 3))
                process.wait(timeout=120)
            else:
                time.sleep(rng.uniform(0.3, 2.0))
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=60)
            sendgrid.on_accept = None
            killed += process.returncode == -signal.SIGKILL
            time.sleep(0.2)  # let a request the killed process had in flight finish at the double
        time.sleep(LEASE_SECONDS + 0.5)  # every killed run's lease has run out: the last run settles all
        final = _start(environment)
        output, _ = final.communicate(timeout=300)

    assert final.returncode == 0, output
    assert killed >= 20, f"only {killed} runs were killed mid-send"
    delivered = Counter(d.custom_args["mailroom_message_id"] for d in sendgrid.deliveries)
    assert delivered == Counter({message_id: 1 for message_id in ids})
    with warehouse.connect() as conn:
        assert conn.fetchall("SELECT state, count(*), count(provider_message_id) FROM ops.send_ledger GROUP BY state") \
            == [("accepted", MESSAGES, MESSAGES)]
        provider_ids = [row[0] for row in conn.fetchall("SELECT provider_message_id FROM ops.send_ledger")]
    # Kills between acceptance and the ledger update happened, and were settled from SendGrid's events
    # (those rows carry the event's sg_message_id rather than the X-Message-Id of a recorded answer).
    answered = {d.x_message_id for d in sendgrid.deliveries}
    assert sum(provider_id not in answered for provider_id in provider_ids) >= 20


OUTBOX_KILLS = 8
# Six batches of 1,000: a run is killed while it writes a batch, so each batch is a chance of a kill; with
# four, a run that happened to finish its batch before the kill left too few (a flaky "only 2 killed").
OUTBOX_MESSAGES = 6000


# DuckDB only: the ledger's moves under a kill are proven on both engines by the SendGrid test above;
# what this adds (the outbox's pool, its files and their names) does not depend on the engine.
@pytest.mark.slow
@pytest.mark.parametrize("warehouse_kind", ["duckdb"], indirect=True)
def test_killing_an_outbox_run_again_and_again_leaves_one_complete_file_per_message(settings, warehouse, tmp_path):
    """The outbox writes its batches in a pool of processes: a sender killed at random points while it
    writes, then run again, ends with exactly one complete .eml per message, no temporary file, and a
    ledger whose every row is accepted with the name of its file."""
    import email
    from email import policy

    customers = customer_ids(OUTBOX_MESSAGES)
    seed_customers(warehouse, customers)
    ids = seed_messages(warehouse, "weekly", customers)
    outbox = tmp_path / "outbox"
    environment = {
        **os.environ, **settings_environment(settings), "MAILROOM_DESTINATIONS": "outbox",
        "MAILROOM_OUTBOX_DIR": str(outbox),
        "MAILROOM_OUTBOX_RATE_PER_SECOND": "0.5",  # a batch every 2 s: room to be killed in
        "MAILROOM_RECONCILE_AFTER_MINUTES": "0", "MAILROOM_SEND_LEASE_SECONDS": str(LEASE_SECONDS),
        "MAILROOM_QUIET_HOURS": "off",
    }
    rng = random.Random(20261207)
    killed = 0
    for _ in range(OUTBOX_KILLS):
        written_before = _files_in(outbox)
        if written_before >= OUTBOX_MESSAGES:
            break
        process = _start(environment)
        # Killed while it writes: once this run has written its first file, at a random moment after.
        deadline = time.monotonic() + 60
        while _files_in(outbox) == written_before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        killed += process.returncode == -signal.SIGKILL
        time.sleep(LEASE_SECONDS + 0.5)  # its lease has run out; its pool has finished what it was given
    final = _start(environment)
    output, _ = final.communicate(timeout=300)

    assert final.returncode == 0, output
    assert killed >= 3, f"only {killed} runs were killed mid-send"
    files = {str(path.relative_to(outbox)): path for path in outbox.rglob("*") if path.is_file()}
    written = {name: email.message_from_bytes(path.read_bytes(), policy=policy.default) for name, path in files.items()}
    assert Counter(m["Message-ID"] for m in written.values()) == Counter({message_id: 1 for message_id in ids})
    assert all(m.get_body(("html",)) is not None for m in written.values())
    with warehouse.connect() as conn:
        recorded = dict(conn.fetchall("SELECT provider_message_id, message_id FROM ops.send_ledger WHERE state = "
                                      "'accepted'"))
    assert recorded == {name: m["Message-ID"] for name, m in written.items()}
