"""python -m dagster_project.sample_data --customers N --seed S --out DIR [--as-of YYYY-MM-DD]
[--events-per-file K] [--gzip]

Writes deterministic sample landing files (cdp/, crm/, consent/, catalog/, esp/) and the latent truth
(truth/) into DIR. The same arguments always give byte-identical files."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

from dagster_project.sample_data.generator import generate


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dagster_project.sample_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=_positive, required=True, help="number of synthetic customers")
    parser.add_argument("--seed", type=int, required=True, help="random seed")
    parser.add_argument("--out", type=Path, required=True, help="output (landing) directory")
    parser.add_argument("--as-of", type=date.fromisoformat, default=None,
                        help="activity covers the 180 days before this date (default: today, UTC)")
    parser.add_argument("--events-per-file", type=_positive, default=250_000,
                        help="lines per cdp/ and esp/ shard (default 250000)")
    parser.add_argument("--gzip", action="store_true", help="write cdp/ and esp/ shards as .jsonl.gz")
    args = parser.parse_args(argv)
    as_of = args.as_of or datetime.now(timezone.utc).date()

    started = time.perf_counter()
    summary = generate(out_dir=args.out, customers=args.customers, seed=args.seed, as_of=as_of,
                       events_per_file=args.events_per_file, gzip=args.gzip)
    seconds = time.perf_counter() - started
    print(
        f"{summary['customers']:,} customers as of {summary['as_of']} (seed {summary['seed']}) -> {args.out}: "
        f"{summary['cdp_events']:,} CDP events in {summary['cdp_files']} file(s), "
        f"{summary['crm_rows']:,} CRM rows, {summary['consent_events']:,} consent events, "
        f"{summary['catalog_rows']:,} catalog rows, {summary['esp_events']:,} ESP events in "
        f"{summary['esp_files']} file(s), {summary['dirty_rows']:,} dirty rows; {seconds:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
