"""Several send runs at once (the Dagster job, the delivery schedule, cron): who works on what.

Rows are owned through leases (ledger.py). On top of that:
    DuckDB      one process at a time may open the file: a run waits for its turn (bounded by
                MAILROOM_DUCKDB_WAIT_SECONDS) instead of failing at once, so runs started
                together take turns
    PostgreSQL  a session-level advisory lock per campaign: a second run skips a campaign another
                run is sending (it ends when the session closes, also when the holder is killed)
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from dagster_project.warehouse import Connection, Warehouse, WarehouseError


def new_owner(run_id: str | None = None) -> str:
    """A lease owner id: `<run id>/<random>` when Dagster runs it (the random part: a retried step of
    the same run never mistakes a killed attempt's leases for its own), `cli-<random>` otherwise."""
    return f"{run_id}/{secrets.token_hex(6)}" if run_id else f"cli-{secrets.token_hex(6)}"


@contextmanager
def warehouse_session(warehouse: Warehouse, commit: bool, wait_seconds: float,
                      sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] = lambda m: None
                      ) -> Iterator[Connection]:
    """warehouse.session(), waiting while another process holds the DuckDB file."""
    if warehouse.kind != "duckdb":
        with warehouse.session(commit=commit) as conn:
            yield conn
        return
    with ExitStack() as stack:  # a new session per attempt: a failed one leaves nothing open
        yield wait_for_duckdb(lambda: stack.enter_context(warehouse.session(commit=commit)), wait_seconds, sleep, log)


def wait_for_duckdb(call: Callable[[], object], wait_seconds: float, sleep: Callable[[float], None] = time.sleep,
                    log: Callable[[str], None] = lambda m: None):
    """Run `call` (which opens the DuckDB file), again while another process holds the file."""
    deadline, delay, told = time.monotonic() + wait_seconds, 0.05, False
    while True:
        try:
            return call()
        except WarehouseError as error:
            if not _locked_by_another_process(error):
                raise
            if time.monotonic() + delay > deadline:
                raise WarehouseError(
                    f"{error} Waited {wait_seconds:g}s for the other process to finish; raise "
                    "MAILROOM_DUCKDB_WAIT_SECONDS to wait longer."
                ) from error
            if not told:
                log("another process has the DuckDB warehouse open; waiting for it to finish "
                    f"(up to {wait_seconds:g}s, MAILROOM_DUCKDB_WAIT_SECONDS)")
                told = True
            sleep(delay)
            delay = min(delay * 2, 1.0)


def _locked_by_another_process(error: WarehouseError) -> bool:
    return "lock" in str(error.__cause__ or "").lower()


def lock_campaign(conn: Connection, campaign_id: str) -> bool:
    """PostgreSQL: try to take the campaign's advisory lock for this session (False: another run has
    it). DuckDB: always True - one process has the file at a time anyway."""
    if conn.kind != "postgres":
        return True
    taken = conn.scalar("SELECT pg_try_advisory_lock(?)", [_lock_key(campaign_id)])
    conn.commit()  # the lock belongs to the session; do not keep the transaction open
    return bool(taken)


def _lock_key(campaign_id: str) -> int:
    digest = hashlib.sha256(f"mailroom.send:{campaign_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
