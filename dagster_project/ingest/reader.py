"""Reads one landing file record by record, keeping each record's line number and raw text so a
rejected record can be quarantined exactly as it arrived."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from dagster_project.ingest.sources import Source


class LandingFileError(ValueError):
    """The file as a whole cannot be read (not a single row); nothing of it is loaded."""


@dataclass
class RawRecord:
    line: int
    payload: str
    record: dict | None  # None when the text could not be parsed
    problem: str | None = None


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; keep the rest of the payload verbatim.
    return text.replace("\x00", "\ufffd")


def read_jsonl(path: Path) -> Iterator[RawRecord]:
    with _open_binary(path) as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if not stripped:
                continue
            try:
                record = orjson.loads(stripped)
            except orjson.JSONDecodeError as error:
                yield RawRecord(number, _clean(stripped.decode("utf-8", "replace")), None,
                                f"malformed JSON: {error.args[0][:80]}")
                continue
            payload = stripped.decode("utf-8", "replace")
            if not isinstance(record, dict):
                yield RawRecord(number, _clean(payload), None, "malformed JSON: expected an object per line")
            else:
                yield RawRecord(number, payload, record)


def read_csv(path: Path, source: Source) -> Iterator[RawRecord]:
    with _open_binary(path) as binary, io.TextIOWrapper(binary, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        header = [name.strip() for name in header]
        missing = [name for name in source.required_headers if name not in header]
        if missing:
            raise LandingFileError(
                f"{path}: the header lacks {', '.join(missing)}. A {source.name} export needs the columns "
                "documented in docs/landing-files.md; fix the export and drop the file again."
            )
        start = reader.line_num + 1
        for values in reader:
            line, start = start, reader.line_num + 1
            if not any(value.strip() for value in values):
                continue
            payload = _clean(orjson.dumps(dict(zip(header, values))).decode())
            if len(values) != len(header):
                yield RawRecord(line, _clean(",".join(values)), None,
                                f"malformed CSV row: expected {len(header)} fields, got {len(values)}")
            else:
                yield RawRecord(line, payload, dict(zip(header, values)))


def read_records(path: Path, source: Source) -> Iterator[RawRecord]:
    return read_jsonl(path) if source.file_format == "jsonl" else read_csv(path, source)


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
