"""Removing a person from the files Mailroom keeps on disk (docs/design/privacy.md, sections 3.4 and 3.7).

`rewrite_file` drops every record of one file that holds an identifier of the working set: a JSONL line
whose parsed strings hold one, a CSV record (its quoted fields may span lines) with a field that holds one,
any other line of text that holds one. Three things make the rewrite safe to do under a running pipeline:

- **Line numbers stay true.** Each physical line of a dropped record becomes an empty line that keeps its
  terminator (\\n or \\r\\n). The readers skip blank lines and number records by physical line, so every
  other record keeps the `source_line` that raw.* and raw.quarantine hold for it. Kept lines are copied byte
  for byte: encoding (latin-1 too), byte order mark and CRLF are as delivered. A `.gz` file is decompressed,
  rewritten and compressed again with mtime 0, so the same content gives the same bytes.
- **The file is never half-written.** The new content goes to `.<name>.erasure-<tag>.partial` beside the
  original, is fsynced, replaces the original with os.replace and the folder is fsynced: a crash leaves the
  old file or the new one, and a leftover `.partial` (which the verification scan finds) at worst.
- **Ingest never loads it again.** The rewritten file is a new (name, size, mtime, sha256) to ingest's
  ledger. `record_rewrite` adds a raw.ingested_files row with status 'rewritten' for it, committed with the
  step, so `_new_files` skips it; the original's digest stays in the ledger, so the old content dropped
  again under its name is skipped too.

A file that holds nothing is not touched at all (same bytes, same mtime): the step is idempotent.

`files_holding` is the same search, read-only, for the verification scan: which files still hold an
identifier and on how many lines, never which value.

Matching is the tables' (subjects.scan): an identifier of SHORT_ID characters or more matches as a whole
token anywhere (not preceded or followed by a letter, digit or . _ @ + -, so ann@example.com is not found
in joann@example.com), emails in any case; a shorter one only as a whole value (a CSV field, a JSON string),
never inside free text, so user id 42 does not match every 42.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import orjson

from dagster_project.ingest.loader import file_sha256
from dagster_project.ingest.reader import UTF8_BOM, ReadLimits
from dagster_project.key_files import fsync_directory
from dagster_project.privacy.requests import REQUEST_ID
from dagster_project.privacy.subjects import _TOKEN_EDGE, SHORT_ID
from dagster_project.warehouse import Connection

REWRITTEN = "rewritten"  # raw.ingested_files.status of a file an erasure rewrote
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")  # one JSON value per line, as ingest reads them
CSV_SUFFIXES = (".csv",)
_BROKEN_GZIP = (EOFError, zlib.error, gzip.BadGzipFile)  # what reading a .gz that is not gzip, or cut short, raises
_TOKEN_CHAR = _TOKEN_EDGE.replace("[^", "[", 1)  # what may not touch a token: the tables' rule, one definition


class RewriteError(RuntimeError):
    """The file could not be rewritten; the original is left as it was."""


class IdentifierMatcher:
    """Finds any of a working set's identifiers, (type, value) pairs, in text or in whole values."""

    def __init__(self, identifiers: Iterable[tuple[str, str]]):
        self._short: set[str] = set()  # whole values only
        self._short_emails: set[str] = set()  # whole values, lower-cased
        tokens: set[str] = set()
        for kind, value in identifiers:
            value = value.strip()
            if not value:
                continue  # an empty identifier would match every empty field
            if kind == "email":
                value = value.lower()
                if len(value) < SHORT_ID:
                    self._short_emails.add(value)
                else:
                    tokens.add(f"(?i:{re.escape(value)})")
            elif len(value) < SHORT_ID:
                self._short.add(value)
            else:
                tokens.add(re.escape(value))
        # One alternation between lookarounds: the regex engine skips ahead by the alternatives' first
        # characters, several times faster over a large file than one token_pattern per identifier.
        self._tokens = (re.compile(f"(?<!{_TOKEN_CHAR})(?:{'|'.join(sorted(tokens))})(?!{_TOKEN_CHAR})")
                        if tokens else None)

    @property
    def empty(self) -> bool:
        return not (self._short or self._short_emails or self._tokens)

    def matches_text(self, text: str) -> bool:
        """An identifier of SHORT_ID characters or more as a whole token anywhere in `text`."""
        return self._tokens is not None and self._tokens.search(text) is not None

    def matches_values(self, values: Iterable[str]) -> bool:
        """A value that is a short identifier (spaces around it allowed), or any value holding a long one."""
        values = list(values)
        if self._short or self._short_emails:
            for value in values:
                value = value.strip()
                if value in self._short or value.lower() in self._short_emails:
                    return True
        # A newline is no token character, so no match spans two values.
        return self.matches_text("\n".join(values))


@dataclass(frozen=True)
class RewriteOutcome:
    path: Path
    records_dropped: int
    lines_blanked: int
    sha256: str  # of the new file as it is on disk (compressed, for .gz)
    size_bytes: int
    modified_ns: int


@dataclass(frozen=True)
class FileHit:
    path: Path
    lines: int  # physical lines of the records holding an identifier; never the value


def rewrite_file(path: Path, matcher: IdentifierMatcher, tag: str,
                 before_replace: Callable[[RewriteOutcome], None] | None = None) -> RewriteOutcome | None:
    """Drop every record of `path` that holds an identifier, in place and atomically; `tag` (the request id)
    names the temporary file. None, and the file untouched, when it holds none. `before_replace` gets the
    outcome (the new content's digest, size and mtime) once the new content is durable and before it replaces
    the original: what it records (ingest's ledger row) then exists before the new content can be seen, so a
    crash in between leaves the original, which the next attempt rewrites to the same bytes."""
    if not REQUEST_ID.fullmatch(tag):
        raise ValueError(f"tag {tag!r} cannot be part of a file name: use 1-64 letters, digits and . _ : -")
    path = Path(path)
    before = path.stat()
    if matcher.empty:
        return None
    try:
        with _open_binary(path) as handle:
            spans = list(_matching_spans(_physical_lines(handle), _kind(path), matcher))
    except _BROKEN_GZIP as error:
        if not _lines_holding(path, matcher):
            return None  # nothing of the person in what can be read, nor in the bytes as they are
        raise RewriteError(
            f"{path} holds an identifier but cannot be decompressed ({type(error).__name__}: it is not gzip, or "
            "it is cut short), so it cannot be rewritten record by record. Ingest rejects it too: delete the "
            "file, or replace it with a complete copy, and run the step again"
        ) from None
    if not spans:
        return None
    blank = {number for first, last in spans for number in range(first, last + 1)}
    partial = path.with_name(f".{path.name}.erasure-{tag}.partial")
    try:
        with open(partial, "wb") as raw:
            os.fchmod(raw.fileno(), stat.S_IMODE(before.st_mode))
            # Compressed as sample_data/writers.py does: no name and mtime 0 in the header.
            out_file = (gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
                        if _is_gzip(path) else contextlib.nullcontext(raw))
            with out_file as out, _open_binary(path) as source:
                for number, line in enumerate(_physical_lines(source), 1):
                    out.write(_blanked(line) if number in blank else line)
            raw.flush()
            os.fsync(raw.fileno())
        written = partial.stat()  # a rename keeps the mtime: these are the new file's
        outcome = RewriteOutcome(path, len(spans), len(blank), file_sha256(partial), written.st_size,
                                 written.st_mtime_ns)
        _unchanged_since(path, before)
        if before_replace is not None:
            before_replace(outcome)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    fsync_directory(path.parent)
    return outcome


def record_rewrite(conn: Connection, source: str, relative: str, outcome: RewriteOutcome, now: datetime) -> None:
    """Tell ingest's ledger that `relative` (as the loader names it: `<source>/<file>` under the landing
    directory) was rewritten, so the new content is never loaded as a new file. Commit it with the step."""
    if not conn.table_exists("raw", "ingested_files"):
        return  # nothing was ever ingested: the first ingest reads the rewritten file as it is
    moment = now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo else now
    conn.execute(
        "INSERT INTO raw.ingested_files (source, file, sha256, size_bytes, rows_read, rows_loaded, rows_quarantined, "
        "loaded_at, status, error, modified_ns) VALUES (?, ?, ?, ?, 0, 0, 0, ?, ?, NULL, ?)",
        [source, relative, outcome.sha256, outcome.size_bytes, moment, REWRITTEN, outcome.modified_ns],
    )


def files_holding(roots: Iterable[Path], matcher: IdentifierMatcher) -> list[FileHit]:
    """Every file under `roots` (recursively; a missing root is skipped) that still holds an identifier,
    read as `rewrite_file` reads it: `.gz` decompressed, JSONL and CSV record by record, any other file
    (binary too) line by line. Leftover `.partial` files are searched as well."""
    if matcher.empty:
        return []
    hits = []
    for path in _walk(roots):
        try:
            lines = _lines_holding(path, matcher)
        except FileNotFoundError:
            continue  # moved away (archived) while the scan ran: its new place is searched, or was
        if lines:
            hits.append(FileHit(path, lines))
    return hits


def _lines_holding(path: Path, matcher: IdentifierMatcher) -> int:
    found = 0
    try:
        with _open_binary(path) as handle:
            for first, last in _matching_spans(_physical_lines(handle), _kind(path), matcher):
                found += last - first + 1
    except _BROKEN_GZIP:
        # Named .gz but not gzip, or cut short: its bytes as they are get searched too.
        with open(path, "rb") as handle:
            for first, last in _matching_spans(_physical_lines(handle), "text", matcher):
                found += last - first + 1
    return found


def _walk(roots: Iterable[Path]) -> Iterator[Path]:
    for root in roots:
        root = Path(root)
        if root.is_file():
            yield root
            continue
        for folder, subfolders, names in os.walk(root):
            subfolders.sort()
            for name in sorted(names):
                path = Path(folder) / name
                if path.is_file():  # not a fifo or socket: reading one would block
                    yield path


def _kind(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(JSON_SUFFIXES):
        return "json"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    return "text"


def _is_gzip(path: Path) -> bool:
    return path.name.endswith(".gz")


def _open_binary(path: Path):
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


def _physical_lines(handle) -> Iterator[bytes]:
    """Lines as ingest numbers them (reader._lines): split at \\n only, each with its terminator."""
    while line := handle.readline():
        yield line


def _blanked(line: bytes) -> bytes:
    return b"\r\n" if line.endswith(b"\r\n") else b"\n" if line.endswith(b"\n") else b""


def _decode(line: bytes) -> str:
    """Text to search, never to write: UTF-8, else latin-1 (which decodes any bytes, cp1252 exports too)."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("latin-1")


def _matching_spans(lines: Iterable[bytes], kind: str, matcher: IdentifierMatcher) -> Iterator[tuple[int, int]]:
    """(first line, last line), numbered from 1, of every record that holds an identifier."""
    if kind == "csv":
        yield from _csv_spans(lines, matcher)
        return
    for number, line in enumerate(lines, 1):
        holds = _json_line_holds(line, matcher) if kind == "json" else matcher.matches_text(_decode(line))
        if holds:
            yield number, number


def _json_line_holds(line: bytes, matcher: IdentifierMatcher) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    try:
        value = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return matcher.matches_text(_decode(stripped))  # what ingest quarantines still holds the person
    return matcher.matches_values(_json_strings(value))


def _json_strings(value) -> Iterator[str]:
    """Every key and string of a parsed JSON value, nested ones too, and its integers as text: ingest loads
    `"userId": 42` as user id "42"."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            yield from item.keys()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            yield str(item)


def _csv_spans(lines: Iterable[bytes], matcher: IdentifierMatcher) -> Iterator[tuple[int, int]]:
    """Records as read_csv reads them (csv.reader over decoded lines); the header record is never dropped."""
    csv.field_size_limit(max(csv.field_size_limit(), ReadLimits().max_line_bytes))  # as read_csv: only raised
    record_texts: list[str] = []  # the decoded lines of the record being read

    def decoded() -> Iterator[str]:
        for number, line in enumerate(lines, 1):
            if number == 1 and line.startswith(UTF8_BOM):
                line = line[len(UTF8_BOM):]
            text = _decode(line)
            record_texts.append(text)
            yield text

    reader = csv.reader(decoded())
    first, header = 1, True
    while True:
        record_texts.clear()
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error:
            fields = None  # ingest quarantines it; its lines are searched as text
        last = reader.line_num
        if last < first:
            continue
        if not header:
            if fields is None:
                holds = matcher.matches_text("".join(record_texts))
            else:
                holds = matcher.matches_values(fields)
            if holds:
                yield first, last
        first, header = last + 1, False


def _unchanged_since(path: Path, before: os.stat_result) -> None:
    try:
        now = path.stat()
    except FileNotFoundError:
        now = None
    if now is None or (now.st_ino, now.st_size, now.st_mtime_ns) != (before.st_ino, before.st_size,
                                                                      before.st_mtime_ns):
        raise RewriteError(
            f"{path} was changed, moved or deleted while it was being rewritten (an ingest archiving it, a "
            "delivery under the same name?); it was not replaced. Run the step again: it searches the file anew"
        )

