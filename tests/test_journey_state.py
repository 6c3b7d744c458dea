"""Journey state on both engines: entries and re-entry rules, leases on due rows, guarded moves, the
step log written once; and two processes entering and advancing the same customers together."""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta

import pytest

from dagster_project.journeys.state import (
    COMPLETED,
    EXITED,
    Candidate,
    TransitionLost,
    advance,
    ensure_journey_tables,
    enter,
    finish,
    lease_due,
    record_step,
    step_done,
)
from dagster_project.settings import Settings
from dagster_project.warehouse import Warehouse

NOW = datetime(2026, 11, 2, 9, 0)
LEASE = timedelta(minutes=10)


@pytest.fixture
def conn(warehouse):
    with warehouse.connect() as connection:
        ensure_journey_tables(connection)
        yield connection


def candidates(*keys: tuple[str, str]) -> list[Candidate]:
    return [Candidate(customer, key, NOW, {"cart_id": key}) for customer, key in keys]


def entries(conn, journey: str = "cart") -> list[tuple]:
    return conn.fetchall("SELECT customer_id, entry_no, entry_key, end_reason FROM ops.journey_entries "
                         "WHERE journey_id = ? ORDER BY customer_id, entry_no", [journey])


def run_to_the_end(conn, customer: str, when: datetime, reason: str = "purchased") -> None:
    [row] = lease_due(conn, "cart", "run-a", when, when + LEASE, customers=[customer])
    finish(conn, row, "run-a", EXITED, reason, when)


def test_a_key_enters_once_and_a_customer_is_in_a_journey_once(conn):
    assert enter(conn, "cart", "wait_1h", 7, candidates(("c1", "k1"), ("c2", "k2")), NOW) \
        == ["c1", "c2"]
    # The same key again (a replayed file), and a new key while the first entry is live: nobody enters.
    assert enter(conn, "cart", "wait_1h", 7, candidates(("c1", "k1"), ("c2", "k3")), NOW) == []
    assert entries(conn) == [("c1", 1, "k1", None), ("c2", 1, "k2", None)]


@pytest.mark.parametrize("reentry, days_later, enters", [
    ("never", 400, False),
    (7, 3, False),
    (7, 8, True),
    ("per_key", 0, True),
])
def test_re_entry_after_an_entry_ended_follows_the_rule(conn, reentry, days_later, enters):
    enter(conn, "cart", "wait_1h", reentry, candidates(("c1", "k1")), NOW)
    run_to_the_end(conn, "c1", NOW + timedelta(hours=1))
    later = NOW + timedelta(hours=1, days=days_later)
    assert enter(conn, "cart", "wait_1h", reentry, [Candidate("c1", "k2", later)], later) == (["c1"] if enters else [])
    # The old key never enters again, whatever the rule.
    assert enter(conn, "cart", "wait_1h", reentry, [Candidate("c1", "k1", later)], later + timedelta(days=400)) == []
    expected = [("c1", 1, "k1", "purchased")] + ([("c1", 2, "k2", None)] if enters else [])
    assert entries(conn) == expected


def test_a_leased_row_belongs_to_one_run_until_its_lease_runs_out(conn):
    enter(conn, "cart", "wait_1h", 7, candidates(("c1", "k1"), ("c2", "k2")), NOW)
    with pytest.raises(TransitionLost):  # nobody holds it yet
        advance(conn, lease_due(conn, "cart", "run-a", NOW, NOW + LEASE, customers=["c1"])[0], "run-b",
                "reminder", NOW, NOW)
    held = lease_due(conn, "cart", "run-a", NOW, NOW + LEASE)
    assert [row.customer_id for row in held] == ["c1", "c2"]
    assert held[0].context == {"cart_id": "k1"}
    assert lease_due(conn, "cart", "run-b", NOW, NOW + LEASE) == []  # run-a's lease is live
    assert len(lease_due(conn, "cart", "run-b", NOW + LEASE, NOW + 2 * LEASE)) == 2  # run-a is gone


def test_moves_are_compare_and_set_on_step_version_and_lease(conn):
    enter(conn, "cart", "wait_1h", 7, candidates(("c1", "k1")), NOW)
    [row] = lease_due(conn, "cart", "run-a", NOW, NOW + LEASE)
    moved = advance(conn, row, "run-a", "reminder", NOW + timedelta(hours=1), NOW)
    assert (moved.step_id, moved.version) == ("reminder", row.version + 1)
    with pytest.raises(TransitionLost, match="no longer at step wait_1h"):
        advance(conn, row, "run-a", "reminder", NOW, NOW)  # the version it read is gone
    with pytest.raises(TransitionLost):
        finish(conn, moved, "run-a", COMPLETED, "done", NOW + LEASE)  # its lease ran out
    # Not due yet: nobody leases it before its time.
    assert lease_due(conn, "cart", "run-b", NOW + timedelta(minutes=59), NOW + 2 * LEASE) == []
    [again] = lease_due(conn, "cart", "run-b", NOW + timedelta(hours=1), NOW + timedelta(hours=2))
    assert (again.step_id, again.version) == ("reminder", moved.version)
    finish(conn, again, "run-b", COMPLETED, "last_step", NOW + timedelta(hours=1))
    assert conn.fetchall("SELECT status, exit_reason FROM ops.journey_state") == [(COMPLETED, "last_step")]


def test_a_step_is_logged_once_and_a_rerun_finds_it_done(conn):
    enter(conn, "cart", "reminder", 7, candidates(("c1", "k1")), NOW)
    [row] = lease_due(conn, "cart", "run-a", NOW, NOW + LEASE)
    assert step_done(conn, row) is None
    assert record_step(conn, row, "planned", NOW, "run-a", message_id="<m1@x>")
    # A run that crashed after logging: the next one finds the outcome and does not send again.
    assert not record_step(conn, row, "planned", NOW + LEASE, "run-b", message_id="<m2@x>")
    assert step_done(conn, row)[:2] == ("planned", "<m1@x>")


def _enter_and_advance(settings: Settings, owner: str, start, results) -> None:
    start.wait()
    warehouse = Warehouse(settings)
    with warehouse.connect() as conn:
        entered = enter(conn, "cart", "wait_1h", 7, candidates(*[(f"c{i}", f"k{i}") for i in range(40)]), NOW)
    advanced = 0
    with warehouse.connect() as conn:
        for row in lease_due(conn, "cart", owner, NOW, NOW + LEASE):
            try:
                advance(conn, row, owner, "reminder", NOW + timedelta(hours=1), NOW)
                record_step(conn, row, "waited", NOW, owner)
                advanced += 1
            except TransitionLost:
                pass
    results.put((owner, len(entered), advanced))


# PostgreSQL only: DuckDB lets one process open the file, so two DuckDB evaluators are never concurrent.
@pytest.mark.parametrize("warehouse_kind", ["postgres"], indirect=True)
def test_two_processes_started_together_enter_and_advance_each_customer_once(settings, warehouse):
    with warehouse.connect() as conn:
        ensure_journey_tables(conn)
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    workers = [context.Process(target=_enter_and_advance, args=(settings, owner, start, results))
               for owner in ("run-a", "run-b")]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    outcomes = [results.get(timeout=5) for _ in workers]
    assert sum(entered for _, entered, _ in outcomes) == 40
    assert sum(advanced for _, _, advanced in outcomes) == 40
    with warehouse.connect() as conn:
        assert conn.fetchall("SELECT count(*), count(DISTINCT customer_id), min(version), max(version) "
                             "FROM ops.journey_state") == [(40, 40, 2, 2)]
        assert conn.scalar("SELECT count(*) FROM ops.journey_entries") == 40
        assert conn.scalar("SELECT count(*) FROM ops.journey_steps") == 40
