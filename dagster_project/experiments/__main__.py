"""python -m dagster_project.experiments decide CAMPAIGN RUN_KEY VARIANT --reason TEXT
python -m dagster_project.experiments readout FILE.csv --variant-column COL --control NAME
    --metric NAME:binary [--metric NAME:continuous ...] [--weights A=50,B=50] [--alpha 0.05]
    [--sequential [--sequential-tuning 5000]] [--correction holm|bh|none] [--yates]
    [--srm-threshold 0.001] [--format table|json|csv]

Reads one row per unit (a .csv or .csv.gz of any size, streamed) and compares every arm with the
control on every metric: units, rate or mean, difference and relative lift with intervals, p-value,
multiplicity-adjusted p-value, Bayesian chance to win, and a sample-ratio-mismatch check that blocks
decisions when the split is off. Exit code 2 on unusable input, with a message saying where.

Example:
    python -m dagster_project.experiments readout units.csv --variant-column variant --control control \\
        --metric clicked:binary --metric revenue:continuous --weights control=50,treatment=50
"""

from __future__ import annotations

import argparse
import json
import sys

from dagster_project.experiments.csv_source import CsvInputError, read_arm_totals
from dagster_project.experiments.readout import CORRECTIONS, ReadoutOptions, compute_readout
from dagster_project.experiments.totals import MetricSpec

READOUT_HELP = """Compare every arm of FILE with the control on every metric.

FILE has a header line and one row per unit; other columns are ignored. Cells: a binary metric is
0/1, true/false or yes/no (any case; empty = 0), a continuous metric a number (empty = 0). A bad cell
or a missing column stops the readout with exit code 2 and a message naming the line and column.

A comparison is significant when its adjusted p-value is below --alpha; with --sequential the
p-values and intervals stay valid however often the readout is repeated. A sample ratio mismatch
(the arms' units do not fit --weights) blocks every decision."""


def _metric(text: str) -> MetricSpec:
    try:
        return MetricSpec.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _weights(text: str) -> dict[str, float]:
    """'A=50,B=50' -> {'A': 50.0, 'B': 50.0}; the number follows the last '=' of each item."""
    weights = {}
    for item in text.split(","):
        name, equals, number = item.rpartition("=")
        try:
            weights[name.strip()] = float(number)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not ARM=NUMBER") from None
        if not equals or not name.strip():
            raise argparse.ArgumentTypeError(f"{item!r} is not ARM=NUMBER")
    return weights


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dagster_project.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    readout = commands.add_parser("readout", help="compare every arm with the control on every metric",
                                  description=READOUT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    readout.add_argument("file", metavar="FILE", help="CSV with a header line, one row per unit (.csv or .csv.gz)")
    readout.add_argument("--variant-column", required=True, metavar="COL", help="the column naming each unit's arm")
    readout.add_argument("--control", required=True, metavar="NAME", help="the arm the others are compared with")
    readout.add_argument("--metric", required=True, action="append", type=_metric, metavar="NAME:KIND",
                         help="a metric column and its kind, binary (0/1/true/false/yes/no) or continuous "
                              "(a number); repeat for more metrics")
    readout.add_argument("--weights", type=_weights, metavar="A=N,B=N",
                         help="intended traffic share of every arm, relative (default: equal)")
    readout.add_argument("--alpha", type=_probability, default=0.05, help="significance level (default 0.05)")
    readout.add_argument("--sequential", action="store_true",
                         help="always-valid confidence sequences: safe to look at every day")
    readout.add_argument("--sequential-tuning", type=_positive, default=5000.0, metavar="UNITS",
                         help="sample size (control + variant units) where the sequential interval is "
                              "tightest; about the expected size of the experiment (default 5000)")
    readout.add_argument("--correction", choices=CORRECTIONS, default="holm",
                         help="multiple-comparison correction over all variants x metrics (default holm)")
    readout.add_argument("--yates", action="store_true", help="Yates' correction for the chi-square p-value")
    readout.add_argument("--srm-threshold", type=_probability, default=0.001,
                         help="sample-ratio-mismatch p-value below which decisions are blocked (default 0.001)")
    readout.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output (default table)")
    decide = commands.add_parser(
        "decide", help="record an operator's winner for a campaign run whose remainder waits",
        description="Record the variant the waiting remainder of a campaign run gets (rule 'manual', kept in "
                    "ops.experiment_decisions with the reason). The next run of job <campaign>_rollout renders "
                    "and sends it. For when a sample ratio mismatch blocks the decision and has been explained, "
                    "or a test is ended on purpose.")
    decide.add_argument("campaign", metavar="CAMPAIGN", help="campaign id (meta.campaign.id)")
    decide.add_argument("run_key", metavar="RUN_KEY", help="the run (its day, YYYY-MM-DD)")
    decide.add_argument("variant", metavar="VARIANT", help="the variant the remainder gets")
    decide.add_argument("--reason", required=True, help="why; kept with the decision")
    return parser


def decide(args) -> int:
    """The warehouse and campaigns of this environment (MAILROOM_* settings, the prepared dbt manifest)."""
    from datetime import datetime, timezone

    from dagster_project.experiments.rollout import decide_manually
    from dagster_project.personalization.campaigns import campaigns_from_manifest
    from dagster_project.settings import load_settings, project_root
    from dagster_project.warehouse import Warehouse

    manifest = project_root() / "dbt" / "target" / "manifest.json"
    if not manifest.exists():
        print(f"error: {manifest} is missing; run `make prepare` first", file=sys.stderr)
        return 2
    campaigns = {c.campaign_id: c for c in campaigns_from_manifest(json.loads(manifest.read_text()))}
    if args.campaign not in campaigns:
        print(f"error: no campaign {args.campaign!r}; campaigns: {', '.join(campaigns)}", file=sys.stderr)
        return 2
    try:
        decision = decide_manually(Warehouse(load_settings()), campaigns[args.campaign], args.run_key, args.variant,
                                   args.reason, datetime.now(timezone.utc).replace(tzinfo=None))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{decision.campaign_id} run {decision.run_key}: the remainder gets {decision.variant_id} (manual). The next "
          f"run of job {decision.campaign_id}_rollout renders and sends it.")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "decide":
        return decide(args)
    try:
        options = ReadoutOptions(alpha=args.alpha, sequential=args.sequential,
                                 sequential_tuning=args.sequential_tuning, correction=args.correction,
                                 weights=args.weights, yates=args.yates, srm_threshold=args.srm_threshold)
        arms, rows = read_arm_totals(args.file, args.variant_column, args.metric)
        readout = compute_readout(arms, args.control, args.metric, options)
    except (CsvInputError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(readout.to_dict(), indent=2, ensure_ascii=False))
    elif args.format == "csv":
        sys.stdout.write(readout.to_csv())
    else:
        print(f"{args.file}: {rows:,} rows, {len(arms)} arms")
        sys.stdout.write(readout.to_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
