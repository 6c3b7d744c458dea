"""Streaming writers that know the physical line number of every line they write (dirty rows are
recorded by file and line). Files are written under a hidden '.name.partial' name and renamed when
complete, so a landing sensor never picks up half a file; gzip output uses mtime=0 and no file name
in the header, so it is byte-identical run to run."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

_FLUSH_EVERY = 512


class _File:
    """One output file: buffered lines, optional gzip, atomic rename on close."""

    def __init__(self, root: Path, relative: str, compress: bool = False):
        self.relative = relative
        self.final = root / relative
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.final.with_name(f".{self.final.name}.partial")
        self._raw = open(self.partial, "wb")
        self._out = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6)
            if compress else self._raw
        )
        self._buffer: list[str] = []
        self.lines = 0

    def write(self, line: str) -> int:
        """Append one line (without its newline); returns its 1-based line number."""
        self._buffer.append(line)
        self.lines += 1
        if len(self._buffer) >= _FLUSH_EVERY:
            self.flush()
        return self.lines

    def flush(self) -> None:
        if self._buffer:
            self._out.write(("\n".join(self._buffer) + "\n").encode("utf-8"))
            self._buffer.clear()

    def close(self) -> None:
        self.flush()
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()
        self.partial.replace(self.final)


class JsonLines:
    """One JSON-lines file."""

    def __init__(self, root: Path, relative: str):
        self._file = _File(root, relative)
        self.files: dict[str, int] = {}

    def write(self, line: str) -> tuple[str, int]:
        return self._file.relative, self._file.write(line)

    @property
    def lines(self) -> int:
        return self._file.lines

    def close(self) -> None:
        self._file.close()
        self.files[self._file.relative] = self._file.lines


class ShardedJsonLines:
    """folder/events-00000.jsonl[.gz], folder/events-00001.jsonl[.gz], ...: a new shard every
    `per_file` lines."""

    def __init__(self, root: Path, folder: str, per_file: int, compress: bool, stem: str = "events"):
        if per_file < 1:
            raise ValueError("events per file must be at least 1")
        self.root, self.folder, self.per_file, self.compress, self.stem = root, folder, per_file, compress, stem
        self.suffix = ".jsonl.gz" if compress else ".jsonl"
        self._current: _File | None = None
        self.files: dict[str, int] = {}
        self.lines = 0

    def _open_next(self) -> None:
        if self._current is not None:
            self._close_current()
        relative = f"{self.folder}/{self.stem}-{len(self.files):05d}{self.suffix}"
        self._current = _File(self.root, relative, self.compress)
        self.files[relative] = 0

    def _close_current(self) -> None:
        self._current.close()
        self.files[self._current.relative] = self._current.lines

    def write(self, line: str) -> tuple[str, int]:
        if self._current is None or self._current.lines >= self.per_file:
            self._open_next()
        self.lines += 1
        return self._current.relative, self._current.write(line)

    def close(self) -> None:
        if self._current is None:
            self._open_next()  # an empty shard rather than no file at all
        self._close_current()
        self._current = None


class CsvRows:
    """One CSV file with a header; the header is line 1, so the first data row is line 2. Fields never
    contain line breaks, so one row is one physical line."""

    def __init__(self, root: Path, relative: str, header: tuple[str, ...]):
        self._file = _File(root, relative)
        self._text = io.StringIO()
        self._writer = csv.writer(self._text, lineterminator="")
        self.rows = 0
        self.files: dict[str, int] = {}
        self._emit(list(header))

    def _emit(self, values: list[str]) -> int:
        self._text.seek(0)
        self._text.truncate()
        self._writer.writerow(values)
        return self._file.write(self._text.getvalue())

    def write(self, values: list[str]) -> tuple[str, int]:
        self.rows += 1
        return self._file.relative, self._emit(values)

    def close(self) -> None:
        self._file.close()
        self.files[self._file.relative] = self._file.lines
