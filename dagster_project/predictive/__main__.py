"""python -m dagster_project.predictive train [--threads N]

Trains the propensity models on intermediate.int_propensity_examples (build dbt first) of the warehouse
the MAILROOM_* environment names, and registers each version in ops.model_registry, as the
predictive/propensity_model asset does. Prints one line per model: its version, status and test AUC
against the baseline's. Exit code 2 when the examples cannot train a model (the message says why).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from dagster_project.predictive.propensity import THREADS
from dagster_project.predictive.training import train_and_register
from dagster_project.settings import load_settings
from dagster_project.warehouse import Warehouse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dagster_project.predictive", description=__doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train and register the propensity models")
    train.add_argument("--threads", type=int, default=THREADS, help=f"threads for training (default {THREADS})")
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        outcomes = train_and_register(Warehouse(settings), settings.data_dir / "models",
                                      datetime.now(timezone.utc).replace(tzinfo=None), threads=args.threads)
    except ValueError as error:
        print(f"cannot train: {error}", file=sys.stderr)
        return 2
    for outcome in outcomes:
        version, metrics = outcome.version, outcome.version.metrics
        print(f"{version.model_name}: version {version.version} {version.status} "
              f"({'trained now' if outcome.trained_now else 'already trained on these examples'}); "
              f"test AUC {metrics['model']['roc_auc']:.3f}, baseline {metrics['baseline']['roc_auc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
