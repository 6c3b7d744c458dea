"""Erasing a person from landing files (pure, and one ingest on DuckDB): docs/design/privacy.md, section 3.4.

Ann is erased, Bob stays. Every test checks the two promises the rewrite makes to ingest: each line of a
dropped record becomes an empty line, so every other record keeps its line number, and every kept line is
the same bytes as before."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.reader import ReadLimits, read_csv, read_jsonl
from dagster_project.ingest.sources import SOURCES
from dagster_project.privacy.rewrite import (
    FileHit,
    IdentifierMatcher,
    RewriteError,
    RewriteOutcome,
    files_holding,
    record_rewrite,
    rewrite_file,
)
from dagster_project.privacy.subjects import token_pattern
from dagster_project.settings import Settings
from dagster_project.warehouse import Warehouse

from test_ingest import NOW

ANN = IdentifierMatcher([("email", "ann@example.com"), ("user_id", "u_ann_0001"), ("crm_contact_id", "9001001"),
                         ("anonymous_id", "42")])
CRM = SOURCES["crm"]
CRM_HEADER = "hs_object_id,email,firstname,address,user_id,createdate,lastmodifieddate"
OLD_NS = 1_700_000_000_000_000_000  # an mtime in the past, so "untouched" can be told from "rewritten now"


def crm_row(contact_id, email, first_name="Bob", address="Main St 1", user_id="u_bob_0002") -> str:
    return f'{contact_id},{email},{first_name},"{address}",{user_id},2026-01-01T00:00:00,2026-01-02T00:00:00'


def identify(message_id: str, user_id: str, **traits) -> bytes:
    return json.dumps({"messageId": message_id, "type": "identify", "userId": user_id,
                       "timestamp": "2026-10-30T10:00:00Z", "traits": traits}).encode()


def lines_of(data: bytes) -> list[bytes]:
    """Lines as ingest numbers them: split at \\n only (a final empty piece is no line)."""
    return data.split(b"\n")


def assert_only_blanked(before: bytes, after: bytes, dropped: set[int]) -> None:
    """Line n (from 1) is blank, keeping its \\r, when n is in `dropped`, and the same bytes otherwise."""
    old, new = lines_of(before), lines_of(after)
    assert len(new) == len(old)
    for number, (line, kept) in enumerate(zip(old, new, strict=True), 1):
        if number in dropped:
            assert kept == (b"\r" if line.endswith(b"\r") else b""), number
        else:
            assert kept == line, number


# --- matching --------------------------------------------------------------------------------------------

def test_a_long_identifier_matches_as_a_whole_token_and_emails_in_any_case():
    assert ANN.matches_text('{"traits": {"email": "Ann@Example.COM"}}')
    assert ANN.matches_text("to: <ann@example.com>") and ANN.matches_text("user u_ann_0001 signed up")
    assert not ANN.matches_text("joann@example.com")
    assert not ANN.matches_text("ann@example.com.au") and not ANN.matches_text("u_ann_00012")
    assert not ANN.matches_text("U_ANN_0001")  # ids are taken as given; only emails ignore case


def test_a_short_identifier_matches_only_a_whole_value():
    assert ANN.matches_values(["x", "42"]) and ANN.matches_values([" 42 "])
    assert not ANN.matches_values(["142"]) and not ANN.matches_values(["order 42"]) and not ANN.matches_values(["42x"])
    assert not ANN.matches_text("42") and not ANN.matches_text("order 42, 42 items")
    assert ANN.matches_values(["note", "mail ANN@example.com please"])
    assert not ANN.matches_values(["joann@example.com", "u_ann_00011"])


def test_a_matcher_without_identifiers_is_empty_and_matches_nothing():
    empty = IdentifierMatcher([("user_id", "  "), ("email", "")])
    assert empty.empty and IdentifierMatcher([]).empty and not ANN.empty
    assert not empty.matches_values(["", " "]) and not empty.matches_text("anything at all")


token_alphabet = st.sampled_from(list("aAnN@.exmplco_u01+- ,:\"\n\t{}é"))


@given(value=st.sampled_from(["u_ann_0001", "+4915112345678", "ann@example.com", "msg.1@mailroom.test"]),
       before=st.text(token_alphabet, max_size=8), after=st.text(token_alphabet, max_size=8),
       present=st.booleans(), upper=st.booleans())
@settings(max_examples=300, deadline=None)
def test_matches_text_agrees_with_the_table_scans_token_pattern(value, before, after, present, upper):
    kind = "email" if "@example" in value else "user_id"
    spelled = value.upper() if upper and kind == "email" else value
    text = before + (spelled if present else "") + after
    reference = re.search(token_pattern(value), text.lower() if kind == "email" else text) is not None
    assert IdentifierMatcher([(kind, value)]).matches_text(text) == reference


# --- JSONL -----------------------------------------------------------------------------------------------

def test_jsonl_drops_anns_records_and_keeps_bobs_bytes_and_line_numbers(tmp_path):
    path = tmp_path / "cdp" / "events-1.jsonl"
    path.parent.mkdir()
    content = b"\n".join([
        identify("m1", "u_bob_0002", email="bob@example.com"),
        identify("m2", "u_other_03", email="Ann@Example.COM"),  # Ann's address in traits, another case
        b"",
        identify("m3", "u_bob_0002", email="joann@example.com"),  # not Ann
        json.dumps({"messageId": "m4", "context": {"traits": [{"user": "u_ann_0001"}]}}).encode(),  # nested
        json.dumps({"messageId": "m5", "userId": 42}).encode(),  # a short id as a JSON number: loaded as "42"
        json.dumps({"messageId": "m6", "properties": {"note": "order 42", "sku": 142}}).encode(),
        b'{"messageId": "m7", "email": "ann@example.com"',  # cut short: searched as text
        '{"messageId": "m8", "userId": "u_bob_0002", "name": "Zoë"}'.encode(),  # no newline at the end
    ])
    path.write_bytes(content)
    records_before = [(r.line, r.text) for r in read_jsonl(path)]

    outcome = rewrite_file(path, ANN, "req-1")

    assert outcome is not None and (outcome.records_dropped, outcome.lines_blanked) == (4, 4)
    after = path.read_bytes()
    assert_only_blanked(content, after, dropped={2, 5, 6, 8})
    assert [(r.line, r.text) for r in read_jsonl(path)] == [
        (line, text) for line, text in records_before if line not in {2, 5, 6, 8}]
    assert (outcome.sha256, outcome.size_bytes) == (hashlib.sha256(after).hexdigest(), len(after))
    assert outcome.modified_ns == path.stat().st_mtime_ns
    assert [p.name for p in path.parent.iterdir()] == ["events-1.jsonl"]  # no .partial left behind


def test_a_gzipped_jsonl_file_is_rewritten_and_compressed_again_reproducibly(tmp_path):
    plain = b"\n".join([identify("m1", "u_bob_0002"), identify("m2", "u_ann_0001"), identify("m3", "x")]) + b"\n"
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress(plain, mtime=1_234_567))
    twin = tmp_path / "twin" / "events.jsonl.gz"
    twin.parent.mkdir()
    twin.write_bytes(gzip.compress(plain, mtime=7_654_321))

    outcome = rewrite_file(path, ANN, "req-1")

    assert outcome is not None and outcome.records_dropped == 1
    assert_only_blanked(plain, gzip.decompress(path.read_bytes()), dropped={2})
    assert path.read_bytes()[4:8] == b"\0\0\0\0"  # the header's mtime
    assert [(r.line, r.record["messageId"]) for r in read_jsonl(path)] == [(1, "m1"), (3, "m3")]
    rewrite_file(twin, ANN, "req-1")
    assert twin.read_bytes() == path.read_bytes()


def test_a_file_without_the_person_is_left_untouched(tmp_path):
    path = tmp_path / "events.jsonl"
    content = identify("m1", "u_bob_0002", email="joann@example.com") + b"\n" + identify("m2", "142") + b"\n"
    path.write_bytes(content)
    os.utime(path, ns=(OLD_NS, OLD_NS))

    assert rewrite_file(path, ANN, "req-1") is None
    assert rewrite_file(path, IdentifierMatcher([]), "req-1") is None

    assert path.read_bytes() == content and path.stat().st_mtime_ns == OLD_NS
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]


# --- CSV -------------------------------------------------------------------------------------------------

def test_csv_records_spanning_lines_are_dropped_whole_and_bom_and_crlf_are_kept(tmp_path):
    rows = [
        CRM_HEADER,
        crm_row(1, "bob@example.com", address="Main St 1\r\nFlat 2"),  # a kept record over two lines
        crm_row(2, "ANN@example.com", "Ann", address="Elm St 3\r\nBack house\r\nGarden"),  # dropped, 3 lines
        crm_row(3, "carol@example.com", "Carol", address="order 42", user_id="142"),  # 42 only inside values
        crm_row(4, "dan@example.com", "Dan", user_id="42"),  # Ann's short id as a whole field
        crm_row(9001001, "erin@example.com", "Erin"),  # Ann's CRM id
        "",
        crm_row(5, "joann@example.com", "Jo"),
    ]
    content = b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n"
    path = tmp_path / "crm" / "contacts.csv"
    path.parent.mkdir()
    path.write_bytes(content)
    records_before = [(r.line, r.text) for r in read_csv(path, CRM)]

    outcome = rewrite_file(path, ANN, "req-1")

    assert outcome is not None and (outcome.records_dropped, outcome.lines_blanked) == (3, 5)
    after = path.read_bytes()
    assert after.startswith(b"\xef\xbb\xbf" + CRM_HEADER.encode() + b"\r\n")
    assert_only_blanked(content, after, dropped={4, 5, 6, 8, 9})
    assert [line for line, _ in records_before] == [2, 4, 7, 8, 9, 11]
    assert [(r.line, r.text) for r in read_csv(path, CRM)] == [(2, records_before[0][1]), (7, records_before[2][1]),
                                                              (11, records_before[5][1])]


def test_a_latin1_csv_keeps_its_encoding(tmp_path):
    content = "\n".join([CRM_HEADER, crm_row(1, "bob@example.com", "José"), crm_row(2, "ann@example.com", "Zoë"),
                         crm_row(3, "cleo@example.com", "Renée")]).encode("latin-1") + b"\n"
    path = tmp_path / "contacts.csv.gz"
    path.write_bytes(gzip.compress(content))

    assert rewrite_file(path, ANN, "req-1").records_dropped == 1

    assert_only_blanked(content, gzip.decompress(path.read_bytes()), dropped={3})
    kept = list(read_csv(path, CRM, ReadLimits(encoding="latin-1")))
    assert [(r.line, r.record["firstname"]) for r in kept] == [(2, "José"), (4, "Renée")]


def test_the_csv_header_is_never_dropped(tmp_path):
    path = tmp_path / "odd.csv"
    content = b"u_ann_0001,email\n1,bob@example.com\n2,ann@example.com\n"
    path.write_bytes(content)

    rewrite_file(path, ANN, "req-1")

    assert_only_blanked(content, path.read_bytes(), dropped={3})


# --- any file, the property ------------------------------------------------------------------------------

clean_bytes = st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"").replace(b"u_ann_0001", b""))
file_lines = st.lists(st.tuples(st.booleans(), clean_bytes, clean_bytes, st.sampled_from([b"\n", b"\r\n"])),
                      min_size=1, max_size=12)


@given(lines=file_lines, suffix=st.sampled_from([".log", ".html", ".jsonl", ".log.gz"]), last_open=st.booleans())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_line_holding_the_identifier_is_blanked_and_every_other_line_is_kept(tmp_path, lines, suffix,
                                                                                  last_open):
    holders = {number for number, (holds, *_) in enumerate(lines, 1) if holds}
    content = b"".join(head + (b" u_ann_0001 " if holds else b"") + tail + end
                       for holds, head, tail, end in lines)
    if last_open:
        content = content.removesuffix(b"\n").removesuffix(b"\r")
    path = tmp_path / f"file{suffix}"
    path.write_bytes(gzip.compress(content) if suffix.endswith(".gz") else content)

    outcome = rewrite_file(path, ANN, "req-1")

    after = gzip.decompress(path.read_bytes()) if suffix.endswith(".gz") else path.read_bytes()
    assert (outcome is None) == (not holders)
    assert_only_blanked(content, after, dropped=holders)
    assert files_holding([path], ANN) == []


# --- the verification scan -------------------------------------------------------------------------------

def test_files_holding_counts_lines_before_and_finds_none_after(tmp_path):
    landing = tmp_path / "landing"
    (landing / "cdp").mkdir(parents=True)
    (landing / "crm").mkdir()
    (landing / "cdp" / "events.jsonl.gz").write_bytes(gzip.compress(
        identify("m1", "u_ann_0001") + b"\n" + identify("m2", "u_bob_0002") + b"\n"))
    (landing / "crm" / "contacts.csv").write_text("\n".join([
        CRM_HEADER, crm_row(1, "ann@example.com", address="a\nb"), crm_row(2, "bob@example.com")]) + "\n")
    (landing / "crm" / "bob.csv").write_text(CRM_HEADER + "\n" + crm_row(2, "bob@example.com") + "\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "demo.log").write_bytes(b"\x00\xff\xfe binary \x80 mail to ANN@example.com\r\nok 42\n")
    (tmp_path / "logs" / "fake.gz").write_bytes(b"not gzip at all: u_ann_0001\n")  # searched as it is
    roots = [landing, tmp_path / "logs", tmp_path / "missing"]

    assert files_holding(roots, ANN) == [
        FileHit(landing / "cdp" / "events.jsonl.gz", 1), FileHit(landing / "crm" / "contacts.csv", 2),
        FileHit(tmp_path / "logs" / "demo.log", 1), FileHit(tmp_path / "logs" / "fake.gz", 1)]
    for hit in files_holding(roots, ANN)[:-1]:
        rewrite_file(hit.path, ANN, "req-1")
    with pytest.raises(RewriteError, match="cannot be decompressed"):
        rewrite_file(tmp_path / "logs" / "fake.gz", ANN, "req-1")
    assert files_holding(roots, ANN) == [FileHit(tmp_path / "logs" / "fake.gz", 1)]
    (tmp_path / "logs" / "fake.gz").unlink()  # what the error tells the operator to do
    assert files_holding(roots, ANN) == []
    assert files_holding(roots, IdentifierMatcher([])) == []


# --- safety ----------------------------------------------------------------------------------------------

def test_a_file_changed_during_the_rewrite_is_not_replaced(tmp_path, monkeypatch):
    path = tmp_path / "events.jsonl"
    content = identify("m1", "u_ann_0001") + b"\n"
    path.write_bytes(content)
    os.chmod(path, 0o640)
    real_fsync = os.fsync

    def delivery_meanwhile(descriptor):
        assert oct(os.stat(descriptor).st_mode & 0o777) == oct(0o640)  # the new file has the old one's mode
        with open(path, "ab") as handle:
            handle.write(b"late\n")
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", delivery_meanwhile)

    with pytest.raises(RewriteError, match="Run the step again"):
        rewrite_file(path, ANN, "req-1")
    assert path.read_bytes() == content + b"late\n"
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]


def test_a_tag_that_cannot_be_part_of_a_file_name_is_refused(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(identify("m1", "u_ann_0001") + b"\n")
    with pytest.raises(ValueError, match="file name"):
        rewrite_file(path, ANN, "../req")


# --- the ingest ledger -----------------------------------------------------------------------------------

def test_ingest_never_loads_a_rewritten_file_again(tmp_path):
    warehouse = Warehouse(Settings(warehouse="duckdb", data_dir=tmp_path / "data", as_of=NOW.date().isoformat()))
    landing = tmp_path / "landing"
    path = landing / "crm" / "contacts.csv"
    with warehouse.connect() as conn:  # nothing ingested yet: nothing to record, and no ledger created
        record_rewrite(conn, "crm", "crm/contacts.csv", RewriteOutcome(path, 1, 1, "0" * 64, 1, 1), NOW)
        assert not conn.table_exists("raw", "ingested_files")
    path.parent.mkdir(parents=True)
    original = "\n".join([CRM_HEADER, crm_row(1, "bob@example.com"), crm_row(2, "ann@example.com", "Ann"),
                          crm_row(3, "carol@example.com", "Carol")]) + "\n"
    path.write_text(original)
    first = ingest_source(warehouse, CRM, landing, now=NOW)
    assert first.rows_loaded == 3

    def contacts():
        with warehouse.connect() as conn:
            return conn.fetchall("SELECT contact_id, email, source_file, source_line FROM raw.crm_contacts "
                                 "ORDER BY contact_id")

    loaded = contacts()
    outcome = rewrite_file(path, ANN, "req-1")
    with warehouse.connect() as conn:
        record_rewrite(conn, "crm", "crm/contacts.csv", outcome, NOW)

    again = ingest_source(warehouse, CRM, landing, now=NOW)
    assert (again.files_loaded, again.files_rejected, again.files_skipped) == ([], [], 1)
    assert contacts() == loaded
    # The old content dropped again under the same name is still known by its digest.
    path.write_text(original)
    assert ingest_source(warehouse, CRM, landing, now=NOW).files_skipped == 1
    with warehouse.connect() as conn:
        assert conn.fetchall("SELECT status, sha256, size_bytes, rows_read FROM raw.ingested_files "
                             "ORDER BY loaded_at, status") == [("loaded", first_digest(original), len(original), 3),
                                                              ("rewritten", outcome.sha256, outcome.size_bytes, 0)]
    assert contacts() == loaded


def first_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
