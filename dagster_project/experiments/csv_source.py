"""Stream a CSV of units (one row per unit: an arm column and metric columns) into `ArmTotals`.

The file is read in blocks with pyarrow's streaming CSV reader, only the needed columns are parsed,
and each block is folded into running sums, so memory stays bounded by the block size whatever the
file's length. `.csv.gz` is decompressed on the fly. The file must be UTF-8 (a byte-order mark is
fine); values may contain quoted commas and newlines.

Cells: the arm is any non-empty text (surrounding spaces are dropped). A binary metric is 0/1,
true/false or yes/no (any case, surrounding spaces allowed), and an empty cell counts as 0. A
continuous metric is a finite decimal number such as 12, -3.5 or 1e3; an empty cell counts as 0.
Anything else stops the read with a `CsvInputError` naming the file, line, column and value.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from pathlib import Path
from typing import Iterator, NoReturn, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from dagster_project.experiments.totals import ArmTotals, MetricSpec, MetricTotals

BLOCK_BYTES = 1 << 20  # bytes per parsed block; memory is bounded by ~32 of them (the read-ahead)
TRUE_WORDS = ["1", "true", "yes"]
FALSE_WORDS = ["0", "false", "no", ""]
SHOWN_VALUE_CHARS = 40


class CsvInputError(ValueError):
    """The file cannot be read as asked; the message says where and why."""


def read_arm_totals(path: str | Path, variant_column: str, metrics: Sequence[MetricSpec],
                    *, block_bytes: int = BLOCK_BYTES) -> tuple[list[ArmTotals], int]:
    """(ArmTotals per arm sorted by arm name, number of data rows read)."""
    path = Path(path)
    header = read_header(path)
    _check_columns(path, header, variant_column, metrics)
    sums: dict[str, np.ndarray] = {}  # arm -> [units, Σx, Σx² per metric...]
    rows_read = 0
    for batch in _batches(path, header, [variant_column] + [m.name for m in metrics], block_bytes):
        arms = _arm_column(path, batch.column(0), variant_column, rows_read)
        codes = arms.indices.to_numpy(zero_copy_only=False)
        per_arm = [np.bincount(codes, minlength=len(arms.dictionary)).astype(float)]
        for i, metric in enumerate(metrics, start=1):
            values = _metric_values(path, batch.column(i), metric, rows_read)
            per_arm.append(np.bincount(codes, weights=values, minlength=len(arms.dictionary)))
            per_arm.append(np.bincount(codes, weights=values * values, minlength=len(arms.dictionary)))
        block = np.vstack(per_arm)
        for index, name in enumerate(arms.dictionary.to_pylist()):
            sums[name] = sums[name] + block[:, index] if name in sums else block[:, index].copy()
        rows_read += batch.num_rows
    totals = [ArmTotals(name, int(s[0]), {m.name: MetricTotals(s[1 + 2 * i], s[2 + 2 * i])
                                          for i, m in enumerate(metrics)})
              for name, s in sorted(sums.items())]
    return totals, rows_read


def read_header(path: Path) -> list[str]:
    """The column names of the first record (quoted names with commas, quotes or newlines included)."""
    try:
        with _open_text(path) as text:
            header = next(csv.reader(text), None)
    except FileNotFoundError:
        raise CsvInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CsvInputError(f"{path}: cannot read the header line ({error}); the file must be UTF-8 CSV") from None
    if not header:
        raise CsvInputError(f"{path}: the file is empty; expected a header line with column names")
    return header


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _check_columns(path: Path, header: list[str], variant_column: str, metrics: Sequence[MetricSpec]) -> None:
    wanted = [variant_column] + [m.name for m in metrics]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise CsvInputError(f"{path}: no column {', '.join(map(repr, missing))}; "
                            f"the columns are {', '.join(map(repr, header))}")
    ambiguous = [name for name in wanted if header.count(name) > 1]
    if ambiguous:
        raise CsvInputError(f"{path}: column(s) {', '.join(map(repr, ambiguous))} appear more than once in the header")
    if len(set(wanted)) < len(wanted):
        raise CsvInputError(f"{path}: the arm column and each metric must be different columns, got {wanted}")


def _batches(path: Path, header: list[str], columns: list[str], block_bytes: int) -> Iterator[pa.RecordBatch]:
    # Measured on 10M rows: 1 MiB blocks without threads are as fast as bigger blocks with them, and the
    # reader's read-ahead (about 32 blocks) then holds ~40 MiB instead of most of the file.
    read = pacsv.ReadOptions(block_size=block_bytes, use_threads=False)
    # newlines_in_values: a quoted cell may span lines (free-text columns in exports do)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    # every needed column as text: the cell rules are ours (yes/no, empty = 0), and so are the errors
    convert = pacsv.ConvertOptions(include_columns=columns, column_types={c: pa.string() for c in columns},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
    try:
        reader = pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        yield from reader  # columns come in include_columns order
    except (pa.ArrowInvalid, OSError) as error:
        raise CsvInputError(_describe_arrow_error(path, header, str(error))) from None


def _describe_arrow_error(path: Path, header: list[str], message: str) -> str:
    if "invalid UTF8" in message:
        return f"{path}: {message.strip()}; convert the file to UTF-8"
    line = _first_line_with_wrong_width(path, len(header))
    where = f" line {line}:" if line else ""
    return f"{path}:{where} {_shorten(message.strip(), 200)} (the header has {len(header)} columns)"


# --- cells -----------------------------------------------------------------------------------------

def _arm_column(path: Path, column: pa.Array, name: str, rows_before: int) -> pa.DictionaryArray:
    arms = pc.utf8_trim_whitespace(column)
    empty = pc.equal(pc.utf8_length(arms), 0)
    if pc.any(empty).as_py():
        _fail(path, rows_before, _first_true(empty), name, "", "the arm is empty")
    return pc.dictionary_encode(arms)


def _metric_values(path: Path, column: pa.Array, metric: MetricSpec, rows_before: int) -> np.ndarray:
    cells = pc.utf8_trim_whitespace(column)
    if metric.kind == "binary":
        lowered = pc.utf8_lower(cells)
        ones = pc.is_in(lowered, value_set=pa.array(TRUE_WORDS))
        valid = pc.or_(ones, pc.is_in(lowered, value_set=pa.array(FALSE_WORDS)))
        if not pc.all(valid).as_py():
            row = _first_true(pc.invert(valid))
            _fail(path, rows_before, row, metric.name, column[row].as_py(),
                  "a binary metric must be 0, 1, true, false, yes, no or empty")
        return ones.to_numpy(zero_copy_only=False).astype(float)
    cells = pc.if_else(pc.equal(pc.utf8_length(cells), 0), "0", cells)
    try:
        values = pc.cast(cells, pa.float64())
    except pa.ArrowInvalid:
        row = _first_unparsable(cells)
        _fail(path, rows_before, row, metric.name, column[row].as_py(), "not a number")
    finite = pc.is_finite(values)
    if not pc.all(finite).as_py():
        row = _first_true(pc.invert(finite))
        _fail(path, rows_before, row, metric.name, column[row].as_py(), "not a finite number")
    return values.to_numpy(zero_copy_only=False)


def _first_true(mask: pa.Array) -> int:
    return int(np.flatnonzero(mask.to_numpy(zero_copy_only=False))[0])


def _first_unparsable(cells: pa.Array) -> int:
    # Only on the error path: find which cell of the block Arrow refused.
    for row, cell in enumerate(cells.to_pylist()):
        try:
            pc.cast(pa.scalar(cell), pa.float64())
        except pa.ArrowInvalid:
            return row
    return 0


def _fail(path: Path, rows_before: int, row_in_block: int, column: str, value: str, problem: str) -> NoReturn:
    row = rows_before + row_in_block + 1  # 1-based data row
    line = _line_of_row(path, row)
    where = f"line {line}" if line else f"data row {row}"
    raise CsvInputError(f"{path}: {where}, column {column!r}: {problem}, got {_shorten(value, SHOWN_VALUE_CHARS)!r}")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- locating a record on the error path (re-reads the file with the csv module) ---------------------------

def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, fields) of every non-empty record after the header; blank lines are
    skipped as pyarrow skips them."""
    limit = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)  # hostile cells may be longer than the csv module's default
    try:
        with _open_text(path) as text:
            reader = csv.reader(text)
            next(reader, None)
            previous_end = reader.line_num
            for fields in reader:
                if fields:
                    yield previous_end + 1, fields
                previous_end = reader.line_num
    finally:
        csv.field_size_limit(limit)


def _line_of_row(path: Path, row: int) -> int | None:
    try:
        for number, (line, _) in enumerate(_records(path), start=1):
            if number == row:
                return line
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return None


def _first_line_with_wrong_width(path: Path, width: int) -> int | None:
    try:
        for line, fields in _records(path):
            if len(fields) != width:
                return line
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return None
