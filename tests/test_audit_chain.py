"""The audit chain (ops.audit_log): what is sealed verifies, and every edit, deletion or reordering of
entries is reported at the first broken link, on both warehouses and over generated chains and tampering;
anchors catch a deleted tail and a rewrite with recomputed hashes; two sealers at once lose nothing."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagster_project.privacy.audit import (
    GENESIS,
    ZERO_HASH,
    Anchor,
    AuditError,
    Entry,
    canonical,
    entry_hash,
    read_anchors,
    record,
    seal,
    verify,
    verify_entries,
    write_anchor,
)
from dagster_project.settings import project_root

from conftest import settings_environment

NOW = datetime(2026, 12, 7, 6, 0, 0, 123456)
KEY = "0a1b2c3d:" + "e" * 64


def chain(payloads: list[dict]) -> list[Entry]:
    """An in-memory chain: genesis, then one entry per payload."""
    entries = [Entry(1, NOW, GENESIS, None, canonical({"chain_id": "x"}), ZERO_HASH,
                     entry_hash(1, NOW, GENESIS, None, canonical({"chain_id": "x"}), ZERO_HASH))]
    for payload in payloads:
        previous = entries[-1]
        seq, at, text = previous.seq + 1, NOW + timedelta(seconds=previous.seq), canonical(payload)
        entries.append(Entry(seq, at, "consent", None, text, previous.entry_hash,
                             entry_hash(seq, at, "consent", None, text, previous.entry_hash)))
    return entries


def test_the_hash_format_is_pinned():
    # A change to the encoding would make every stored chain unverifiable: this vector must never change.
    assert entry_hash(2, datetime(2026, 1, 2, 3, 4, 5, 6), "consent", KEY, canonical({"rows": 3, "file": "é.jsonl"}),
                      "f" * 64) == hashlib_vector()


def hashlib_vector() -> str:
    import hashlib

    text = '[2,"2026-01-02T03:04:05.000006Z","consent","' + KEY + '","{\\"file\\":\\"\\\\u00e9.jsonl\\",' \
           '\\"rows\\":3}","' + "f" * 64 + '"]'
    return hashlib.sha256(b"mailroom-audit-v1\n" + text.encode("ascii")).hexdigest()


@pytest.mark.parametrize(("value", "message"), [
    ({"share": 0.5}, "payload.share is a float"),
    ({"n": 2**53}, "beyond 2^53"),
    ({1: "a"}, "not a string"),
    ({"rows": [1, {"x": b"bytes"}]}, "payload.rows[1].x is a bytes"),
])
def test_a_payload_that_has_no_single_text_is_refused(value, message):
    with pytest.raises(AuditError, match=message.replace("[", r"\[").replace("]", r"\]").replace("^", r"\^")):
        canonical(value)


def test_record_refuses_anything_but_a_keyed_hash_as_subject(settings):
    from dagster_project.warehouse import Warehouse

    with Warehouse(settings).connect() as conn:
        for subject in ("ann@example.com", "cus_0123456789abcdef", "0a1b2c3d:" + "E" * 64):
            with pytest.raises(AuditError, match="keyed hash"):
                record(conn, "consent", {"rows": 1}, NOW, subject_key=subject)
        with pytest.raises(AuditError, match="audit kind"):
            record(conn, "Consent changes", {"rows": 1}, NOW)


tampering = st.sampled_from(["payload", "entry_hash", "prev_hash", "delete", "swap", "kind", "entry_at"])


@given(payloads=st.lists(st.dictionaries(st.text(max_size=8), st.one_of(st.text(), st.integers(-10**6, 10**6),
                                                                         st.booleans(), st.none()), max_size=4),
                         min_size=2, max_size=8),
       how=tampering, data=st.data())
def test_any_tampering_is_reported_at_or_before_the_entry_changed(payloads, how, data):
    entries = chain(payloads)
    assert verify_entries(entries).ok
    at = data.draw(st.integers(1, len(entries) - 2))  # not the last: its tail needs an anchor (below)
    target = entries[at]
    if how == "delete":
        del entries[at]
    elif how == "swap":
        entries[at], entries[at + 1] = entries[at + 1], entries[at]
    else:
        changed = {"payload": {"payload_json": canonical({"edited": target.payload_json})},
                   "entry_hash": {"entry_hash": "0" * 64}, "prev_hash": {"prev_hash": "1" * 64},
                   "kind": {"kind": "send"}, "entry_at": {"entry_at": target.entry_at + timedelta(microseconds=1)}}
        entries[at] = dataclasses.replace(target, **changed[how])
    result = verify_entries(entries)
    assert not result.ok and result.broken_at is not None and result.broken_at <= target.seq + 1


def test_a_deleted_tail_or_a_recomputed_rewrite_is_caught_only_by_an_anchor():
    entries = chain([{"rows": 1}, {"rows": 2}, {"rows": 3}])
    anchor = Anchor(entries[-1].seq, entries[-1].entry_hash)
    assert verify_entries(entries[:-1]).ok  # a chain alone cannot see its missing end
    tail = verify_entries(entries[:-1], [anchor])
    assert not tail.ok and "entries at the end were deleted" in tail.problem
    rewritten = chain([{"rows": 1}, {"rows": 20}, {"rows": 3}])  # every hash recomputed from seq 3 on
    assert verify_entries(rewritten).ok
    caught = verify_entries(rewritten, [anchor])
    assert (caught.broken_at, caught.ok) == (4, False) and "rewritten" in caught.problem


# --- in a warehouse ---------------------------------------------------------------------------------

def test_sealed_entries_verify_and_an_edit_in_the_warehouse_is_found(warehouse, tmp_path):
    with warehouse.connect() as conn:
        record(conn, "consent", {"file": "consent/a.jsonl", "rows": 2, "note": "ünïcode ✓"}, NOW)
        record(conn, "suppression", {"unsubscribe": 1}, NOW + timedelta(seconds=1), subject_key=KEY)
        record(conn, "send", {"accepted": 5, "campaign_id": "weekly_picks"}, NOW + timedelta(seconds=2))
    assert seal(warehouse, NOW, batch=2) == 4  # genesis + 3, in two batches
    assert seal(warehouse, NOW) == 0
    with warehouse.connect() as conn:
        result = verify(conn)
        assert result.ok and result.entries == 4 and result.head.seq == 4
        kinds = [row[0] for row in conn.fetchall("SELECT kind FROM ops.audit_log ORDER BY seq")]
        assert kinds == [GENESIS, "consent", "suppression", "send"]
        assert json.loads(conn.scalar("SELECT payload_json FROM ops.audit_log WHERE seq = 2"))["note"] == "ünïcode ✓"
        assert conn.scalar("SELECT count(*) FROM ops.audit_pending") == 0
        anchor = write_anchor(conn, tmp_path / "anchors.jsonl", NOW)
    assert read_anchors(tmp_path / "anchors.jsonl") == [anchor]

    with warehouse.connect() as conn:
        conn.execute("UPDATE ops.audit_log SET payload_json = ? WHERE seq = 3", ['{"unsubscribe":0}'])
        edited = verify(conn)
    assert (edited.ok, edited.broken_at) == (False, 3) and "edited" in edited.problem

    with warehouse.connect() as conn:
        conn.execute("DELETE FROM ops.audit_log WHERE seq >= 3")
        assert verify(conn).ok  # the end is gone: only the anchor knows
        assert "entries at the end were deleted" in verify(conn, [anchor]).problem


@pytest.mark.parametrize("warehouse_kind", ["postgres"])
def test_two_sealers_at_once_chain_every_pending_entry_once(warehouse):
    with warehouse.connect() as conn:
        for number in range(300):
            record(conn, "send", {"n": number}, NOW + timedelta(microseconds=number))
    environment = {**settings_environment(warehouse.settings), "PATH": "/usr/bin:/bin"}
    runs = [subprocess.Popen([sys.executable, "-m", "dagster_project.privacy", "audit", "seal"], env=environment,
                             cwd=project_root(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    with warehouse.connect() as conn:
        assert verify(conn).ok
        numbers = [json.loads(row[0])["n"] for row in conn.fetchall(
            "SELECT payload_json FROM ops.audit_log WHERE kind = 'send' ORDER BY seq")]
        assert conn.scalar("SELECT count(*) FROM ops.audit_log WHERE kind = ?", [GENESIS]) == 1
    assert numbers == list(range(300))  # each once, in the order recorded
    assert conn_configs(warehouse) == 1  # the configuration, recorded by one of them
    verified = subprocess.run([sys.executable, "-m", "dagster_project.privacy", "audit", "verify"], env=environment,
                              cwd=project_root(), capture_output=True, text=True)
    assert verified.returncode == 0 and "audit chain verified: 302 entries" in verified.stdout


def conn_configs(warehouse) -> int:
    with warehouse.connect() as conn:
        return conn.scalar("SELECT count(*) FROM ops.audit_log WHERE kind = 'config'")


def test_a_configuration_change_is_recorded_once_and_pauses_as_they_happen(warehouse, monkeypatch, tmp_path):
    from dagster_project.privacy.audit_config import config_snapshot, record_config_if_changed
    from reverse_etl.pauses import pause, resume

    with warehouse.connect() as conn:
        assert record_config_if_changed(conn, NOW)
        assert not record_config_if_changed(conn, NOW)  # unchanged: nothing new
    seal(warehouse, NOW)
    with warehouse.connect() as conn:
        assert not record_config_if_changed(conn, NOW)  # the sealed entry is the last one
        monkeypatch.setenv("MAILROOM_FREQUENCY_CAP_PER_7_DAYS", "7")
        assert record_config_if_changed(conn, NOW) and config_snapshot()["frequency_cap"] == 7
        pause(conn, "weekly_picks", "bounce rate 6% over 5%", "guard", NOW + timedelta(microseconds=1))
        pause(conn, "weekly_picks", "again", "guard", NOW)  # already paused: nothing recorded
        resume(conn, "weekly_picks", "list cleaned", "ops@example.com", NOW + timedelta(microseconds=2))
    seal(warehouse, NOW)
    with warehouse.connect() as conn:
        configs = [json.loads(row[0]) for row in conn.fetchall(
            "SELECT payload_json FROM ops.audit_log WHERE kind = 'config' ORDER BY seq")]
        assert verify(conn).ok
    assert [c.get("frequency_cap", c.get("action")) for c in configs] == [3, 7, "pause", "resume"]
