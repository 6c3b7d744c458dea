"""ops.audit_log: an append-only, hash-chained record of what decides who is mailed and what was done about
a person (consent changes, sends, suppressions, erasures, configuration), docs/design/privacy.md, section 5.

Writers never touch the chain. They `record` an entry into ops.audit_pending inside their own transaction
(a plain insert: no lock, no conflict, and the entry exists exactly when their rows do). `seal` is the one
writer of the chain: it takes the pending entries in order, gives each the next seq and chains it,

    entry_hash = sha256("mailroom-audit-v1\\n" + canonical([seq, entry_at, kind, subject_key, payload_json,
                                                           prev_hash]))

with seq 1 a genesis entry whose prev_hash is 64 zeros. Editing, deleting or reordering any entry breaks a
link that `verify` reports. A chain alone cannot tell a deleted tail, or a rewrite with recomputed hashes,
from the real thing: anchors (a seq and its hash, appended to a file the warehouse's writers cannot
change) can.

Entries carry counts and digests, never a person's identifiers: subject_key is a keyed hash
(`<key id>:<64 hex>`), and `record` refuses anything else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dagster_project.key_files import fsync_directory
from dagster_project.warehouse import Connection, Warehouse, columns, ensure_table

LOG, PENDING = "ops.audit_log", "ops.audit_pending"
LOG_COLUMNS = columns("seq:BIGINT entry_at:TIMESTAMP kind:VARCHAR subject_key:VARCHAR payload_json:VARCHAR "
                      "prev_hash:VARCHAR entry_hash:VARCHAR")
PENDING_COLUMNS = columns("pending_id:VARCHAR recorded_at:TIMESTAMP kind:VARCHAR subject_key:VARCHAR "
                          "payload_json:VARCHAR")
FORMAT = b"mailroom-audit-v1\n"
GENESIS, ZERO_HASH = "genesis", "0" * 64
SEAL_BATCH = 5_000
PAGE = 10_000
# PostgreSQL advisory lock key (predictive/registry.py 7_362_006): one sealer at a time, and the privacy
# tables' creators
SEAL_LOCK = 7_362_007
_KIND = re.compile(r"[a-z][a-z_]{0,39}")
_SUBJECT_KEY = re.compile(r"[0-9a-f]{8}:[0-9a-f]{64}")
_MAX_SAFE_INTEGER = 2**53  # what every JSON reader keeps exactly


class AuditError(ValueError):
    """An entry that cannot go into the chain as it is (the message says which part and why)."""


@dataclass(frozen=True)
class Entry:
    seq: int
    entry_at: datetime
    kind: str
    subject_key: str | None
    payload_json: str
    prev_hash: str
    entry_hash: str


@dataclass(frozen=True)
class Anchor:
    seq: int
    entry_hash: str


@dataclass(frozen=True)
class Verification:
    entries: int
    head: Anchor | None
    broken_at: int | None = None  # the first seq that fails, or None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None and self.problem is None

    def describe(self) -> str:
        if self.ok:
            head = f", head {self.head.seq} {self.head.entry_hash[:12]}" if self.head else ""
            return f"audit chain verified: {self.entries:,} entries{head}"
        where = f" at seq {self.broken_at}" if self.broken_at is not None else ""
        return f"audit chain broken{where}: {self.problem}"


def canonical(value) -> str:
    """The one JSON text of a value: sorted keys, no spaces, ASCII only. Strings, integers within 2^53,
    booleans, null, lists and string-keyed objects only: a float's text differs between writers (money goes
    in as a string)."""
    _check_canonical(value, "payload")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def entry_hash(seq: int, entry_at: datetime, kind: str, subject_key: str | None, payload_json: str,
               prev_hash: str) -> str:
    fields = [seq, _timestamp(entry_at), kind, subject_key, payload_json, prev_hash]
    return hashlib.sha256(FORMAT + canonical(fields).encode("ascii")).hexdigest()


def ensure_audit_tables(conn: Connection) -> None:
    ensure_table(conn, LOG, LOG_COLUMNS, [("seq",)], SEAL_LOCK)
    ensure_table(conn, PENDING, PENDING_COLUMNS, [("pending_id",)], SEAL_LOCK)


def record(conn: Connection, kind: str, payload: dict, recorded_at: datetime, subject_key: str | None = None) -> None:
    """Queue an entry for the chain, in the caller's transaction."""
    if not _KIND.fullmatch(kind or "") or kind == GENESIS:
        raise AuditError(f"audit kind {kind!r} must be lower-case letters and underscores (and not {GENESIS})")
    if subject_key is not None and not _SUBJECT_KEY.fullmatch(subject_key):
        raise AuditError("an audit subject_key must be a keyed hash (<8 hex key id>:<64 hex>), never an identifier "
                         "itself; make it with the privacy key")
    if not isinstance(payload, dict):
        raise AuditError(f"an audit payload must be an object, not {type(payload).__name__}")
    ensure_audit_tables(conn)
    conn.execute(f"INSERT INTO {PENDING} (pending_id, recorded_at, kind, subject_key, payload_json) "
                 "VALUES (?, ?, ?, ?, ?)", [uuid.uuid4().hex, recorded_at, kind, subject_key, canonical(payload)])


def seal(warehouse: Warehouse, now: datetime, batch: int = SEAL_BATCH) -> int:
    """Chain every pending entry (in batches of `batch`, each in one transaction); returns how many entries
    were appended. Two sealers take turns (an advisory lock on PostgreSQL; DuckDB has one writing process)."""
    appended = 0
    while True:
        with warehouse.connect() as conn:
            ensure_audit_tables(conn)
            if conn.kind == "postgres":
                conn.execute(f"SELECT pg_advisory_xact_lock({SEAL_LOCK})")
            head = _head(conn)
            entries = []
            if head is None:
                payload = canonical({"chain_id": secrets.token_hex(16), "format": FORMAT.decode().strip()})
                entries.append(_chained(1, now, GENESIS, None, payload, ZERO_HASH))
            pending = conn.fetchall(f"SELECT pending_id, recorded_at, kind, subject_key, payload_json FROM {PENDING} "
                                    f"ORDER BY recorded_at, pending_id LIMIT {int(batch)}")
            for _, _, kind, subject_key, payload_json in pending:
                previous = entries[-1] if entries else head
                entries.append(_chained(previous.seq + 1, now, kind, subject_key, payload_json, previous.entry_hash))
            for entry in entries:
                conn.execute(f"INSERT INTO {LOG} ({', '.join(c.name for c in LOG_COLUMNS)}) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [entry.seq, entry.entry_at, entry.kind, entry.subject_key, entry.payload_json,
                              entry.prev_hash, entry.entry_hash])
            for start in range(0, len(pending), 500):
                ids = [row[0] for row in pending[start:start + 500]]
                conn.execute(f"DELETE FROM {PENDING} WHERE pending_id IN ({', '.join('?' for _ in ids)})", ids)
        appended += len(entries)
        if len(pending) < batch:
            return appended


def verify(conn: Connection, anchors: Iterable[Anchor] = ()) -> Verification:
    """Walk the chain from seq 1 and report the first broken link, then check it reaches every anchor."""
    if not conn.table_exists("ops", "audit_log"):
        return verify_entries([], anchors)
    return verify_entries(_stream(conn), anchors)


def verify_entries(entries: Iterable[Entry], anchors: Iterable[Anchor] = ()) -> Verification:
    """The checks of `verify` over entries in seq order (pure, so tests can feed any sequence)."""
    anchored = {anchor.seq: anchor.entry_hash for anchor in anchors}
    previous: Entry | None = None
    count = 0
    for entry in entries:
        count += 1
        expected_seq = previous.seq + 1 if previous else 1
        problem = None
        if entry.seq != expected_seq:
            problem = (f"expected seq {expected_seq} next, found {entry.seq}: an entry was deleted or the entries "
                       "were reordered")
        elif previous is None and (entry.kind != GENESIS or entry.prev_hash != ZERO_HASH):
            problem = "the first entry is not the genesis entry"
        elif previous is not None and entry.prev_hash != previous.entry_hash:
            problem = (f"prev_hash {entry.prev_hash[:12]} is not the hash of seq {previous.seq} "
                       f"({previous.entry_hash[:12]}): the entry before it was changed or replaced")
        elif not _is_canonical(entry.payload_json):
            problem = "payload_json is not in canonical form: it was edited"
        elif entry_hash(entry.seq, entry.entry_at, entry.kind, entry.subject_key, entry.payload_json,
                        entry.prev_hash) != entry.entry_hash:
            problem = "the entry's content does not match its entry_hash: it was edited"
        elif entry.seq in anchored and anchored[entry.seq] != entry.entry_hash:
            problem = (f"the anchor recorded {anchored[entry.seq][:12]} for this seq, the chain holds "
                       f"{entry.entry_hash[:12]}: the chain was rewritten from here or before")
        if problem:
            return Verification(count, None, entry.seq, problem)
        previous = entry
    head = Anchor(previous.seq, previous.entry_hash) if previous else None
    beyond = [seq for seq in anchored if head is None or seq > head.seq]
    if beyond:
        return Verification(count, head, None, (
            f"the chain ends at seq {head.seq if head else 0}, but an anchor recorded seq {max(beyond)}: "
            "entries at the end were deleted"))
    return Verification(count, head)


def write_anchor(conn: Connection, path: Path, now: datetime) -> Anchor | None:
    """Append the chain's head to `path` (one JSON line, fsynced). Keep that file where the warehouse's
    writers cannot change it."""
    head = _head(conn) if conn.table_exists("ops", "audit_log") else None
    if head is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = canonical({"seq": head.seq, "entry_hash": head.entry_hash, "at": _timestamp(now)}) + "\n"
    with open(path, "a", encoding="ascii") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_directory(path.parent)
    return Anchor(head.seq, head.entry_hash)


def read_anchors(path: Path) -> list[Anchor]:
    """The anchors in `path`; a line that is not an anchor is an error naming the file and line."""
    anchors = []
    for number, line in enumerate(Path(path).read_text(encoding="ascii", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            anchors.append(Anchor(int(item["seq"]), str(item["entry_hash"])))
        except (ValueError, KeyError, TypeError):
            raise AuditError(f"{path} line {number} is not an anchor ({{\"seq\", \"entry_hash\", \"at\"}}); "
                             "restore the file from its copy") from None
    return anchors


def _head(conn: Connection) -> Entry | None:
    rows = conn.fetchall(f"SELECT {', '.join(c.name for c in LOG_COLUMNS)} FROM {LOG} ORDER BY seq DESC LIMIT 1")
    return Entry(*rows[0]) if rows else None


def _stream(conn: Connection) -> Iterator[Entry]:
    after = 0
    while True:
        rows = conn.fetchall(f"SELECT {', '.join(c.name for c in LOG_COLUMNS)} FROM {LOG} WHERE seq > ? "
                             f"ORDER BY seq LIMIT {PAGE}", [after])
        yield from (Entry(int(row[0]), *row[1:]) for row in rows)
        if len(rows) < PAGE:
            return
        after = int(rows[-1][0])


def _chained(seq: int, entry_at: datetime, kind: str, subject_key: str | None, payload_json: str,
             prev_hash: str) -> Entry:
    return Entry(seq, entry_at, kind, subject_key, payload_json, prev_hash,
                 entry_hash(seq, entry_at, kind, subject_key, payload_json, prev_hash))


def _timestamp(value: datetime) -> str:
    """Naive UTC to microseconds, as both warehouses store it."""
    if value.tzinfo is not None:
        raise AuditError("audit times are naive UTC (as the warehouse stores them)")
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_canonical(payload_json: str) -> bool:
    try:
        return canonical(json.loads(payload_json)) == payload_json
    except (ValueError, AuditError):
        return False


def _check_canonical(value, where: str) -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if abs(value) >= _MAX_SAFE_INTEGER:
            raise AuditError(f"{where} is an integer beyond 2^53 ({value}); write it as a string")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_canonical(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditError(f"{where} has a key that is not a string ({key!r})")
            _check_canonical(item, f"{where}.{key}")
        return
    raise AuditError(f"{where} is a {type(value).__name__}; audit payloads hold strings, integers, booleans, null, "
                     "lists and objects (write a number with a fraction as a string)")
