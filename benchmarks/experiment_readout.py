"""The experiment readout CLI on a large CSV: rows per second and peak memory of the streaming read.

    python -m benchmarks.experiment_readout [--rows 10000000] [--gzip] [--seed 7]

Writes a CSV of `--rows` units (3 arms, a binary and a continuous metric, plus a free-text column the
reader has to skip) into a temporary directory, block by block, then runs
`python -m dagster_project.experiments readout` on it in its own process and prints JSON: wall
seconds and peak resident memory of that process, next to the same CLI on a 3-row file (the cost of
starting Python and importing numpy, scipy and pyarrow), so the memory the stream itself adds shows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from benchmarks.machine import describe

ROOT = Path(__file__).resolve().parents[1]
ARMS = [("control", 0.100, 20.0), ("variant_a", 0.103, 20.0), ("variant_b", 0.100, 20.6)]
CHUNK_ROWS = 1_000_000


def write_units_csv(path: Path, rows: int, seed: int) -> None:
    """Stream `rows` synthetic units to `path` (.csv or .csv.gz) one chunk at a time."""
    rng = np.random.default_rng(seed)
    names = pa.array([name for name, _, _ in ARMS])
    rates = np.array([rate for _, rate, _ in ARMS])
    spend = np.array([mean for _, _, mean in ARMS])
    schema = pa.schema([("arm", pa.string()), ("note", pa.string()), ("clicked", pa.int8()), ("revenue", pa.float64())])
    sink = pa.CompressedOutputStream(str(path), "gzip") if path.name.endswith(".gz") else pa.OSFile(str(path), "wb")
    with sink, pacsv.CSVWriter(sink, schema) as writer:
        for start in range(0, rows, CHUNK_ROWS):
            size = min(CHUNK_ROWS, rows - start)
            arm = rng.integers(0, len(ARMS), size)
            clicked = rng.random(size) < rates[arm]
            revenue = np.where(clicked, np.round(rng.gamma(2.0, spend[arm] / 2), 2), 0.0)
            note = pa.array(np.where(rng.random(size) < 0.001, "free text, with a comma", ""))
            writer.write_batch(pa.record_batch([names.take(pa.array(arm)), note, pa.array(clicked.astype(np.int8)),
                                                pa.array(revenue)], schema=schema))


def run_readout(path: Path) -> dict:
    """Run the CLI on `path` in its own process; wall seconds, peak RSS (MiB) and its JSON readout."""
    command = [sys.executable, "-m", "dagster_project.experiments", "readout", str(path), "--variant-column", "arm",
               "--control", "control", "--metric", "clicked:binary", "--metric", "revenue:continuous",
               "--format", "json"]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        stderr = process.stderr.read().decode(errors="replace")
        out.seek(0)
        stdout = out.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"readout failed: {' '.join(command)}\n{stderr[-4000:]}")
    return {"seconds": round(seconds, 2), "peak_memory_mib": round(usage.ru_maxrss / 1024, 1),
            "readout": json.loads(stdout)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="units in the CSV (default 10,000,000)")
    parser.add_argument("--gzip", action="store_true", help="write and read a .csv.gz")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--record", action="store_true", help="keep the figures for BENCHMARKS.md")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="experiment-readout-") as directory:
        tiny = Path(directory) / "tiny.csv"
        tiny.write_text("arm,note,clicked,revenue\ncontrol,,1,2.5\nvariant_a,,0,\nvariant_b,,1,3\n")
        baseline = run_readout(tiny)

        path = Path(directory) / ("units.csv.gz" if args.gzip else "units.csv")
        started = time.perf_counter()
        write_units_csv(path, args.rows, args.seed)
        generate_seconds = time.perf_counter() - started
        size_mib = path.stat().st_size / 2**20
        measured = run_readout(path)

    units = sum(arm["units"] for arm in measured["readout"]["arms"])
    if units != args.rows:
        raise SystemExit(f"the readout counted {units:,} units in a file of {args.rows:,} rows")
    figures = {
        "rows": args.rows,
        "file": path.name,
        "file_mib": round(size_mib, 1),
        "generate_seconds": round(generate_seconds, 2),
        "readout_seconds": measured["seconds"],
        "rows_per_second": round(args.rows / measured["seconds"]),
        "seconds_beyond_startup": round(measured["seconds"] - baseline["seconds"], 2),
        "readout_peak_memory_mib": measured["peak_memory_mib"],
        "cli_on_3_rows": {"seconds": baseline["seconds"], "peak_memory_mib": baseline["peak_memory_mib"]},
        "machine": describe(),
    }
    print(json.dumps(figures, indent=2))
    if args.record:  # for BENCHMARKS.md: benchmarks/results/experiments-csv.json
        from datetime import datetime, timezone

        from benchmarks.run import RESULTS

        RESULTS.mkdir(parents=True, exist_ok=True)
        source = "CSV streamed (.csv.gz)" if args.gzip else "CSV streamed"
        (RESULTS / f"experiments-csv{'-gz' if args.gzip else ''}.json").write_text(json.dumps({
            "rows": args.rows, "warehouse": source, "machine": figures["machine"],
            "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "readout": {"seconds": measured["seconds"], "peak_memory_mib": measured["peak_memory_mib"]},
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
