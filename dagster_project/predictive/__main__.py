"""python -m dagster_project.predictive train|score|rollout [--threads N]

The propensity models of the warehouse the MAILROOM_* environment names, as the predictive assets do:
  train    train on intermediate.int_propensity_examples (build dbt first) and register each version in
           ops.model_registry; one line per model: its version, status and test AUC against the baseline's
  score    score every customer at the latest cutoff with the serving version (and a canary on trial)
           into ops.propensity_scores
  rollout  promote or roll back a canary on marts.propensity_online_metrics, start the newest candidate's
           trial; one line per model and decision
Exit code 2 when the data cannot train or score (the message says why).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from dagster_project.predictive.propensity import THREADS
from dagster_project.predictive.rollout import run_rollout
from dagster_project.predictive.scoring import score_latest_cutoff
from dagster_project.predictive.training import train_and_register
from dagster_project.settings import load_settings
from dagster_project.warehouse import Warehouse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dagster_project.predictive", description=__doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train and register the propensity models")
    train.add_argument("--threads", type=int, default=THREADS, help=f"threads for training (default {THREADS})")
    score = commands.add_parser("score", help="score every customer with the serving (and canary) versions")
    score.add_argument("--threads", type=int, default=THREADS, help=f"threads for scoring (default {THREADS})")
    commands.add_parser("rollout", help="promote or roll back canaries, start the newest candidate's trial")
    args = parser.parse_args(argv)
    settings = load_settings()
    warehouse, now = Warehouse(settings), datetime.now(timezone.utc).replace(tzinfo=None)
    try:
        if args.command == "score":
            score_latest_cutoff(warehouse, now, threads=args.threads)
            return 0
        if args.command == "rollout":
            for outcome in run_rollout(warehouse, now):
                print(f"{outcome.model_name}: serving {outcome.serving}, canary {outcome.canary}"
                      + (f"; {outcome.verdict.action}: {outcome.verdict.reason}" if outcome.verdict else ""))
                for decision in outcome.decisions:
                    print(f"{outcome.model_name}: version {decision.version} {decision.kind} ({decision.rule})")
            return 0
        outcomes = train_and_register(warehouse, settings.data_dir / "models", now, threads=args.threads)
    except ValueError as error:
        print(f"cannot {args.command}: {error}", file=sys.stderr)
        return 2
    for outcome in outcomes:
        version, metrics = outcome.version, outcome.version.metrics
        print(f"{version.model_name}: version {version.version} {version.status} "
              f"({'trained now' if outcome.trained_now else 'already trained on these examples'}); "
              f"test AUC {metrics['model']['roc_auc']:.3f}, baseline {metrics['baseline']['roc_auc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
