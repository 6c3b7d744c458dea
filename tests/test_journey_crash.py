"""A journey tick killed with SIGKILL at random points (mid-entry, mid-render, between the log row and
the move) and run again once its leases ran out: every customer gets each step exactly once - one
message, one ledger row, one log row - and nobody is left behind or skipped ahead."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from journey_helpers import add_entries, journey_campaigns, seed_world

from activation_helpers import customer_ids
from conftest import settings_environment

pytestmark = pytest.mark.slow

T0 = datetime(2026, 11, 2, 9, 0)
CUSTOMERS = 400
CART = {
    "id": "cart", "reentry": "never",
    "steps": [{"id": "wait_1h", "wait": {"hours": 1}}, {"id": "reminder", "send": "cart_reminder"},
              {"id": "wait_24h", "wait": {"hours": 24}}],
}
LEASE_MINUTES = 5
# Runs one tick at the clock given (minutes after T0) and says "ticking" just before it starts.
TICK = f"""
import sys
from datetime import datetime, timedelta
from dagster_project.journeys.evaluate import tick
from dagster_project.settings import load_settings
from dagster_project.warehouse import Warehouse
from journey_helpers import journey_campaigns, make_journey, renderer
import test_journey_crash as case

campaigns = journey_campaigns("cart_reminder")
journey = make_journey(case.CART, campaigns)
now = case.T0 + timedelta(minutes=float(sys.argv[1]))
with Warehouse(load_settings()).session() as conn:
    print("ticking", flush=True)
    tick(conn, [journey], campaigns, renderer(), now, "run-" + sys.argv[1], lease=timedelta(minutes={LEASE_MINUTES}))
"""


def run_tick(minutes: float, env: dict, kill_after: float | None = None) -> int:
    process = subprocess.Popen([sys.executable, "-c", TICK, str(minutes)], env=env, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "ticking"
    if kill_after is not None:
        time.sleep(kill_after)
        process.send_signal(signal.SIGKILL)
    process.wait(300)
    return process.returncode


def test_killing_ticks_at_random_points_never_repeats_or_skips_a_step(warehouse, settings):
    campaigns = journey_campaigns("cart_reminder")
    customers = customer_ids(CUSTOMERS)
    seed_world(warehouse, customers, campaigns)
    add_entries(warehouse, [(c, f"cart-{c}", T0, f"cart-{c}") for c in customers])
    env = {**os.environ, **settings_environment(settings), "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parent), str(Path(__file__).parents[1])])}
    rng = random.Random(17)
    minutes, killed, attempt = 0.0, 0, 0
    # At least 8 ticks, and on until 4 of them were killed mid-run: on a fast machine a tick can finish
    # before its kill, and a test that killed nothing would prove nothing.
    while attempt < 8 or (killed < 4 and attempt < 20):
        # Each run's clock is past the killed runs' leases, as a real next tick would be.
        minutes = (1 if attempt == 0 else 61) + attempt * (LEASE_MINUTES + 1)
        killed += run_tick(minutes, env, kill_after=rng.uniform(0.05, 1.0)) == -signal.SIGKILL
        attempt += 1
    assert run_tick(minutes + LEASE_MINUTES + 1, env) == 0
    assert killed >= 4, f"only {killed} of {attempt} ticks were killed mid-run"

    with warehouse.connect() as conn:
        assert conn.fetchall("SELECT step_id, status, count(*) FROM ops.journey_state GROUP BY 1, 2") \
            == [("wait_24h", "waiting", CUSTOMERS)]
        for table, key in (("ops.campaign_messages", "customer_id"), ("ops.send_ledger", "customer_id")):
            assert conn.fetchall(f"SELECT count(*), count(DISTINCT {key}) FROM {table}") == [(CUSTOMERS, CUSTOMERS)]
        assert conn.fetchall("SELECT step_id, count(*), count(DISTINCT customer_id) FROM ops.journey_steps "
                             "GROUP BY step_id ORDER BY step_id") == [("reminder", CUSTOMERS, CUSTOMERS),
                                                                      ("wait_1h", CUSTOMERS, CUSTOMERS)]
        # Each log row names the message its customer has, and every entry was made once.
        assert conn.scalar("SELECT count(*) FROM ops.journey_steps AS j JOIN ops.campaign_messages AS m "
                           "ON m.message_id = j.message_id AND m.customer_id = j.customer_id") == CUSTOMERS
        assert conn.scalar("SELECT count(*) FROM ops.journey_entries") == CUSTOMERS
