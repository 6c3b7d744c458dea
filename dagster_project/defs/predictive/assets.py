"""predictive/propensity_model: the 7-day click and conversion models, retrained on
intermediate.int_propensity_examples and registered in ops.model_registry with how they did on
held-out time against the recency-frequency baseline (docs/design/predictive.md, section 6)."""

from datetime import datetime, timezone

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from dagster_project.defs.warehouse.dbt_models import mailroom_dbt_models
from dagster_project.predictive.propensity import MODELS
from dagster_project.predictive.training import train_and_register
from dagster_project.resources import WarehouseResource

PREDICTIVE_GROUP = "predictive"


@dg.asset(
    key=["predictive", "propensity_model"],
    deps=[get_asset_key_for_model([mailroom_dbt_models], "int_propensity_examples")],
    group_name=PREDICTIVE_GROUP,
    owners=["team:data"],
    kinds={"python", "scikitlearn"},
    description="The 7-day click and conversion propensity models: gradient-boosted trees trained on weekly "
    "point-in-time examples, calibrated on the next cutoff and tested on the latest complete one against a "
    "recency-frequency baseline. A version that beats the baseline's AUC without a worse log loss becomes a "
    "candidate (the first one serves); the same examples and code never train twice.",
)
def propensity_model(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    outcomes = train_and_register(warehouse.warehouse(), warehouse.settings.data_dir / "models", now,
                                  progress=context.log.info)
    metadata = {}
    for outcome in outcomes:
        version = outcome.version
        name, model, baseline = version.model_name, version.metrics["model"], version.metrics["baseline"]
        metadata |= {
            f"{name}_version": dg.MetadataValue.int(version.version),
            f"{name}_status": dg.MetadataValue.text(version.status),
            f"{name}_auc": dg.MetadataValue.float(round(model["roc_auc"], 4)),
            f"{name}_baseline_auc": dg.MetadataValue.float(round(baseline["roc_auc"], 4)),
            f"{name}_log_loss": dg.MetadataValue.float(round(model["log_loss"], 4)),
            f"{name}_baseline_log_loss": dg.MetadataValue.float(round(baseline["log_loss"], 4)),
            f"{name}_evaluation": dg.MetadataValue.md(_evaluation(outcome.version, outcome.trained_now)),
        }
    return dg.MaterializeResult(metadata=metadata)


def _evaluation(version, trained_now: bool) -> str:
    metrics, label = version.metrics, MODELS[version.model_name][0]
    model, baseline = metrics["model"], metrics["baseline"]
    lines = [
        f"**{version.model_name} version {version.version}: {version.status}** "
        f"({'trained now' if trained_now else 'already trained on these examples'}). Label `{label}`; trained on "
        f"cutoffs {version.train_from:%Y-%m-%d} to {version.train_to:%Y-%m-%d}, calibrated on "
        f"{version.calibration_cutoff:%Y-%m-%d}, tested on {version.test_cutoff:%Y-%m-%d} "
        f"({metrics['test_rows']:,} rows, {metrics['test_positives']:,} positives).",
        "",
        "| | AUC | log loss | Brier |",
        "|---|---|---|---|",
        f"| model | {model['roc_auc']:.3f} | {model['log_loss']:.4f} | {model['brier']:.4f} |",
        f"| recency-frequency baseline | {baseline['roc_auc']:.3f} | {baseline['log_loss']:.4f} | "
        f"{baseline['brier']:.4f} |",
        "",
        "Calibration on the test cutoff (quantile bins):",
        "",
        "| bin | predicted | observed | customers |",
        "|---|---|---|---|",
        *(f"| {row['bin']} | {row['predicted']:.3f} | {row['observed']:.3f} | {row['count']:,} |"
          for row in model["calibration"]),
        "",
        "Lift by decile (1 = highest scores):",
        "",
        "| decile | rate | lift |",
        "|---|---|---|",
        *(f"| {row['decile']} | {row['rate']:.3f} | {row['lift']:.2f} |" for row in model["lift"]),
    ]
    return "\n".join(lines)
