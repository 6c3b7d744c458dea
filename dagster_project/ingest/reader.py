"""Reads one landing file record by record, keeping each record's line number and raw text so a
rejected record can be quarantined exactly as it arrived.

Hostile input is normal input: a line of any length, any bytes, any nesting becomes either a record
or a record with a `problem` (quarantined with that reason), and memory stays bounded by
`ReadLimits.max_line_bytes` whatever the file holds. Only what spoils the whole file - a truncated
gzip stream, a CSV header that lacks required columns, a CSV that is not in its declared encoding -
raises LandingFileError, and the loader records that file as rejected and goes on with the next.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from dagster_project.ingest.sources import Source

PAYLOAD_KEEP_CHARS = 16 << 10  # quarantine keeps this much of a rejected record, and its length
UTF8_BOM = codecs.BOM_UTF8


class LandingFileError(ValueError):
    """The file as a whole cannot be read; nothing of it is loaded and it is recorded as rejected."""


@dataclass(frozen=True)
class ReadLimits:
    max_line_bytes: int = 4 << 20  # a longer line (or CSV field) is quarantined, never held whole
    max_depth: int = 64  # JSON nesting deeper than this is quarantined (no event needs it)
    encoding: str = ""  # CSV only; empty: UTF-8, with or without a byte order mark


@dataclass
class RawRecord:
    line: int
    text: str | bytes  # as read; decoded and bounded only when it is quarantined
    record: dict | None  # None when the text could not be parsed
    problem: str | None = None

    @property
    def payload(self) -> str:
        text = self.text.decode("utf-8", "replace") if isinstance(self.text, bytes) else self.text
        return bounded(text)


def bounded(text: str) -> str:
    """A copy of `text` that fits the quarantine: PostgreSQL text holds no NUL, and a 100 MiB line
    is kept as its head and its length."""
    text = text.replace("\x00", "\ufffd")
    if len(text) <= PAYLOAD_KEEP_CHARS:
        return text
    return f"{text[:PAYLOAD_KEEP_CHARS]}... [truncated: {len(text):,} characters in all]"


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _lines(handle, max_bytes: int) -> Iterator[tuple[int, bytes, int]]:
    """(line number, line, length in bytes): a line over `max_bytes` comes back as its head only,
    the rest read through and dropped in steps of `max_bytes`."""
    number = 0
    while line := handle.readline(max_bytes + 1):
        number += 1
        if len(line) <= max_bytes or line.endswith(b"\n"):
            yield number, line, len(line)
            continue
        length = len(line)
        rest = line
        while rest and not rest.endswith(b"\n"):
            rest = handle.readline(max_bytes)
            length += len(rest)
        yield number, line, length


def _oversize(length: int, limits: ReadLimits) -> bool:
    return length > limits.max_line_bytes + 1  # the newline does not count


def _oversize_reason(length: int, limits: ReadLimits) -> str:
    return (f"line too long: {length:,} bytes, over the {limits.max_line_bytes:,}-byte limit "
            "(MAILROOM_INGEST_MAX_LINE_BYTES)")


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in key or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _depth(value) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


def _json_problem(line: bytes, record, limits: ReadLimits) -> str | None:
    if not isinstance(record, dict):
        return "malformed JSON: expected an object per line"
    # The full walks run only when the cheap byte test says they could find something.
    if b"\\u0000" in line and _has_nul(record):
        return "NUL character: a value holds \\u0000, which PostgreSQL text and jsonb refuse"
    if line.count(b"{") + line.count(b"[") > limits.max_depth and _depth(record) > limits.max_depth:
        return f"nested too deep: more than {limits.max_depth} levels of objects and arrays"
    return None


def read_jsonl(path: Path, limits: ReadLimits = ReadLimits()) -> Iterator[RawRecord]:
    with _open_binary(path) as handle:
        for number, line, length in _lines(handle, limits.max_line_bytes):
            stripped = line.strip()
            if not stripped:
                continue
            if _oversize(length, limits):
                yield RawRecord(number, stripped, None, _oversize_reason(length, limits))
                continue
            if b"\x00" in stripped:
                yield RawRecord(number, stripped, None, "NUL character: a raw NUL byte in the line")
                continue
            try:
                record = orjson.loads(stripped)
            except orjson.JSONDecodeError as error:
                yield RawRecord(number, stripped, None, f"malformed JSON: {error.args[0][:80]}")
                continue
            problem = _json_problem(stripped, record, limits)
            yield RawRecord(number, stripped, None if problem else record, problem)


OVERSIZE_MARK = "\x00mailroom:line-too-long:"  # cannot survive as data: a NUL quarantines a row anyway


def _csv_text_lines(handle, path: Path, source: Source, limits: ReadLimits) -> Iterator[str]:
    """Decoded lines for csv.reader; an oversize line becomes a marker the row check recognises."""
    encoding = limits.encoding or "utf-8"
    for number, line, length in _lines(handle, limits.max_line_bytes):
        if number == 1 and line.startswith(UTF8_BOM):
            line = line[len(UTF8_BOM):]
        if _oversize(length, limits):
            yield f"{OVERSIZE_MARK}{length}\n"
            continue
        try:
            yield line.decode(encoding)
        except UnicodeDecodeError as error:
            raise LandingFileError(
                f"not {encoding}: line {number} has byte 0x{line[error.start]:02x} at position {error.start + 1}. "
                f"Export the file as UTF-8, or set MAILROOM_INGEST_ENCODING_{source.name.upper()} to its encoding "
                "(e.g. latin-1 or cp1252), then drop it again or re-run ingest with retry_rejected"
            ) from None


_OVERSIZE_MARKS = re.compile(re.escape(OVERSIZE_MARK) + r"(\d+)\n?")


def _csv_row_problem(values: list[str], header: list[str], limits: ReadLimits) -> str | None:
    joined = "".join(values)
    if "\x00" in joined:
        if oversize := _OVERSIZE_MARKS.search(joined):
            return _oversize_reason(int(oversize.group(1)), limits)
        return "NUL character: a field holds a NUL byte, which PostgreSQL text refuses"
    if any(len(value) > limits.max_line_bytes for value in values):
        # A quoted field can span lines, each of them short.
        return (f"field too long: over the {limits.max_line_bytes:,}-character limit "
                "(MAILROOM_INGEST_MAX_LINE_BYTES)")
    if len(values) != len(header):
        return f"malformed CSV row: expected {len(header)} fields, got {len(values)}"
    return None


def read_csv(path: Path, source: Source, limits: ReadLimits = ReadLimits()) -> Iterator[RawRecord]:
    # csv's own field limit bounds memory; it is module-wide, so it is only ever raised.
    csv.field_size_limit(max(csv.field_size_limit(), limits.max_line_bytes))
    with _open_binary(path) as binary:
        reader = csv.reader(_csv_text_lines(binary, path, source, limits))
        try:
            header = next(reader, None)
        except csv.Error as error:
            raise LandingFileError(f"the header row cannot be read as CSV ({error})") from None
        if header is None:
            return
        header = [name.strip() for name in header]
        missing = [name for name in source.required_headers if name not in header]
        if missing:
            raise LandingFileError(
                f"the header lacks {', '.join(missing)}. A {source.name} export needs the columns "
                "documented in docs/landing-files.md; fix the export and drop the file again."
            )
        start = reader.line_num + 1
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                line, start = start, reader.line_num + 1
                yield RawRecord(line, "", None, f"malformed CSV row: {error}")
                continue
            line, start = start, reader.line_num + 1
            if not any(value.strip() for value in values):
                continue
            problem = _csv_row_problem(values, header, limits)
            if problem:
                text = _OVERSIZE_MARKS.sub(lambda m: f"[a {int(m.group(1)):,}-byte line, not kept]", ",".join(values))
                yield RawRecord(line, text, None, problem)
            else:
                yield RawRecord(line, orjson.dumps(dict(zip(header, values))).decode(), dict(zip(header, values)))


def read_records(path: Path, source: Source, limits: ReadLimits = ReadLimits()) -> Iterator[RawRecord]:
    return read_jsonl(path, limits) if source.file_format == "jsonl" else read_csv(path, source, limits)


def landing_files(landing_dir: Path, source: Source) -> list[Path]:
    """Files of one source in name order; hidden and partial (.tmp) files are still being written."""
    folder = landing_dir / source.name
    if not folder.is_dir():
        return []
    suffixes = (".jsonl", ".jsonl.gz", ".json", ".ndjson") if source.file_format == "jsonl" else (".csv", ".csv.gz")
    return sorted(
        path for path in folder.iterdir()
        if path.is_file() and not path.name.startswith(".") and path.name.endswith(suffixes)
    )
