"""ops.campaign_pauses: who paused or resumed a campaign's sends, when and why. Append-only.

    (none) ──pause──> paused ──resume──> resumed ──pause──> paused ...

A campaign is paused while its latest entry is a pause. The sender honours it (sender.py): new
messages are still planned in the ledger, but nothing of the campaign is leased or handed over until
somebody resumes it - from the CLI (`python -m reverse_etl.send --resume --campaign ID`) or the
Dagster job resume_campaign_sends. A deliverability guard (dagster_project/analytics/guards.py)
pauses a campaign whose numbers cross an error threshold; its entry names the campaign run it judged.

Each campaign's entries are numbered (1, 2, ...) under a unique key, so two writers at the same moment
cannot both append after the same entry: the second inserts nothing, reads the state again, and
appends after it or - when that state is already what it wanted - records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dagster_project.privacy import audit
from dagster_project.warehouse import Connection, columns

TABLE = "ops.campaign_pauses"
COLUMNS = columns(
    "campaign_id:VARCHAR entry:INTEGER action:VARCHAR reason:VARCHAR actor:VARCHAR run_key:VARCHAR "
    "recorded_at:TIMESTAMP"
)
PAUSE, RESUME = "pause", "resume"
_DDL_LOCK = 7_362_002  # PostgreSQL advisory lock key: one ensure_pauses at a time (ledger.py has 7_362_001)
_READ = ", ".join(c.name for c in COLUMNS)


@dataclass(frozen=True)
class PauseEntry:
    campaign_id: str
    entry: int  # 1, 2, ... per campaign, in the order recorded
    action: str  # PAUSE or RESUME
    reason: str
    actor: str  # "cli:<os user>", "guard:<check name>", "dagster:<run id>" or who the job's config names
    run_key: str | None  # the campaign run whose numbers a guard judged; None for a person's entry
    recorded_at: datetime  # naive UTC

    def describe(self) -> str:
        done = "paused" if self.action == PAUSE else "resumed"
        return f"{self.reason} ({done} by {self.actor} at {self.recorded_at:%Y-%m-%d %H:%M} UTC)"


def ensure_pauses(conn: Connection) -> None:
    """Create the table and its unique key, and commit at once. As ensure_ledger: on PostgreSQL the DDL
    runs under a transaction-scoped advisory lock, since two runs creating it together race in the
    catalog, and only when there is something to create."""
    if conn.table_exists("ops", "campaign_pauses"):
        return
    if conn.kind == "postgres":
        conn.execute(f"SELECT pg_advisory_xact_lock({_DDL_LOCK})")
    conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
    conn.create_table(TABLE, COLUMNS)
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS campaign_pauses__campaign_id__entry "
                 f"ON {TABLE} (campaign_id, entry)")
    conn.commit()


def pause(conn: Connection, campaign_id: str, reason: str, actor: str, now: datetime,
          run_key: str | None = None) -> PauseEntry | None:
    """Pause the campaign's sends; returns the new entry. Idempotent: pausing a campaign that is paused
    already records nothing and returns None (a guard that fails on every run adds one entry, not one
    per run; the first pause's reason stays the one shown)."""
    return _append(conn, campaign_id, PAUSE, reason, actor, now, run_key)


def resume(conn: Connection, campaign_id: str, reason: str, actor: str, now: datetime) -> PauseEntry | None:
    """Let the campaign's planned messages go out again from the next send; returns the new entry, or
    None when the campaign was not paused (nothing recorded)."""
    return _append(conn, campaign_id, RESUME, reason, actor, now, None)


def current_pause(conn: Connection, campaign_id: str) -> PauseEntry | None:
    """The pause in force for the campaign (its latest entry, when that is a pause), else None."""
    latest = _latest(conn, campaign_id)
    return latest if latest is not None and latest.action == PAUSE else None


def paused_campaigns(conn: Connection) -> list[PauseEntry]:
    """The pause in force of every paused campaign, by campaign."""
    if not conn.table_exists("ops", "campaign_pauses"):
        return []
    rows = conn.fetchall(
        f"SELECT {_READ} FROM {TABLE} AS p WHERE entry = (SELECT max(entry) FROM {TABLE} AS q "
        "WHERE q.campaign_id = p.campaign_id) ORDER BY campaign_id")
    return [entry for entry in map(_entry, rows) if entry.action == PAUSE]


def history(conn: Connection, campaign_id: str) -> list[PauseEntry]:
    """Every pause and resume of the campaign, oldest first."""
    if not conn.table_exists("ops", "campaign_pauses"):
        return []
    return [_entry(row) for row in conn.fetchall(
        f"SELECT {_READ} FROM {TABLE} WHERE campaign_id = ? ORDER BY entry", [campaign_id])]


def resumed_since_pause_by(conn: Connection, campaign_id: str, actor: str, run_key: str) -> PauseEntry | None:
    """The resume that followed `actor`'s pause for campaign run `run_key`, if somebody resumed after it:
    a person who resumed has seen that run's numbers, so the same guard does not pause for them again."""
    entries = history(conn, campaign_id)
    paused_at = [e.entry for e in entries if e.action == PAUSE and e.actor == actor and e.run_key == run_key]
    if not paused_at:
        return None
    return next((e for e in entries if e.action == RESUME and e.entry > paused_at[0]), None)


def _append(conn: Connection, campaign_id: str, action: str, reason: str, actor: str, now: datetime,
            run_key: str | None) -> PauseEntry | None:
    if not campaign_id:
        raise ValueError("a pause or resume needs the campaign id")
    ensure_pauses(conn)
    while True:
        latest = _latest(conn, campaign_id)
        if (latest.action if latest else RESUME) == action:
            return None  # already in the state asked for: nothing to record
        entry = PauseEntry(campaign_id, (latest.entry if latest else 0) + 1, action, reason, actor, run_key, now)
        inserted = conn.execute(
            f"INSERT INTO {TABLE} ({_READ}) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [entry.campaign_id, entry.entry, entry.action, entry.reason, entry.actor, entry.run_key,
             entry.recorded_at])
        if inserted:
            audit.record(conn, "config", {"campaign_id": campaign_id, "action": action, "reason": reason,
                                          "actor": actor, "run_key": run_key}, now)
            return entry
        # Another writer appended this entry first: look again at what the campaign's state is now.


def _latest(conn: Connection, campaign_id: str) -> PauseEntry | None:
    if not conn.table_exists("ops", "campaign_pauses"):
        return None
    rows = conn.fetchall(f"SELECT {_READ} FROM {TABLE} WHERE campaign_id = ? ORDER BY entry DESC LIMIT 1",
                         [campaign_id])
    return _entry(rows[0]) if rows else None


def _entry(row: tuple) -> PauseEntry:
    campaign_id, entry, action, reason, actor, run_key, recorded_at = row
    return PauseEntry(campaign_id, int(entry), action, reason or "", actor or "", run_key, recorded_at)
