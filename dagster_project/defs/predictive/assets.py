"""The propensity models' assets (docs/design/predictive.md, section 6), in the order a refresh runs them:

    predictive/propensity_model  retrain on intermediate.int_propensity_examples; register the version in
                                 ops.model_registry with how it did on held-out time against the baseline
    ops/propensity_scores        score every customer at the latest cutoff with the serving version (and a
                                 canary on trial); dbt reads them into marts.customer_propensity
    predictive/model_rollout     promote or roll back the canary on marts.propensity_online_metrics, start
                                 the newest candidate's trial (from the next scoring on)
"""

from datetime import datetime, timezone

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from dagster_project.defs.kinds import warehouse_kind
from dagster_project.defs.warehouse.dbt_models import mailroom_dbt_models
from dagster_project.predictive.propensity import MODELS
from dagster_project.predictive.rollout import run_rollout
from dagster_project.predictive.scoring import CANARY_SHARE, score_latest_cutoff
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


@dg.asset(
    key=["ops", "propensity_scores"],
    deps=[propensity_model, get_asset_key_for_model([mailroom_dbt_models], "int_propensity_examples")],
    group_name=PREDICTIVE_GROUP,
    owners=["team:data"],
    kinds={"python", "table", warehouse_kind()},
    description="ops.propensity_scores: every customer's 7-day click and conversion probability at the latest "
    f"cutoff, from each model's serving version and, while one is on trial, its canary (which serves "
    f"{CANARY_SHARE:.0%} of customers). dbt turns them into marts.customer_propensity.",
)
def propensity_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    report = score_latest_cutoff(warehouse.warehouse(), now, progress=context.log.info)
    for name, why in report.unscored_models.items():
        context.log.warning(f"{name} scored nobody: {why}")
    rows = [f"| {name} | {version} | {status} | {served:,} | {written:,} |"
            for name, versions in report.versions.items() for version, status, served, written in versions]
    rows += [f"| {name} | - | - | 0 | 0 ({why}) |" for name, why in report.unscored_models.items()]
    return dg.MaterializeResult(metadata={
        "scored_at_cutoff": dg.MetadataValue.text(f"{report.cutoff_at:%Y-%m-%d %H:%M} UTC" if report.cutoff_at
                                                  else "no examples"),
        "customers_scored": dg.MetadataValue.int(report.customers),
        "versions": dg.MetadataValue.md("\n".join(["| model | version | status | customers served | rows written |",
                                                    "|---|---|---|---|---|", *rows])),
        "deleted_old_rows": dg.MetadataValue.int(report.deleted_old_rows),
    })


@dg.asset(
    key=["predictive", "model_rollout"],
    deps=[propensity_model, get_asset_key_for_model([mailroom_dbt_models], "propensity_online_metrics")],
    group_name=PREDICTIVE_GROUP,
    owners=["team:data"],
    kinds={"python"},
    description="Promotes a canary propensity model that is not worse online than the serving version after two "
    "closed weekly windows, rolls one back that is more than 5% worse (AUC on the customers each served), and "
    "starts the newest candidate's trial; every decision in ops.model_decisions with its numbers.",
)
def model_rollout(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    metadata = {}
    for outcome in run_rollout(warehouse.warehouse(), now):
        name = outcome.model_name
        for decision in outcome.decisions:
            log = context.log.warning if decision.kind == "rollback" else context.log.info
            log(f"{name} version {decision.version}: {decision.kind} ({decision.rule}): {decision.reason}")
        metadata |= {
            f"{name}_serving_version": dg.MetadataValue.text(str(outcome.serving or "none")),
            f"{name}_canary_version": dg.MetadataValue.text(str(outcome.canary or "none")),
            f"{name}_rollout": dg.MetadataValue.md(_rollout_summary(outcome)),
        }
    return dg.MaterializeResult(metadata=metadata)


def _rollout_summary(outcome) -> str:
    lines = [f"**{outcome.model_name}**: serving version {outcome.serving or 'none'}, canary "
             f"{outcome.canary or 'none'}."]
    if outcome.verdict:
        lines += ["", f"Trial: **{outcome.verdict.action}**: {outcome.verdict.reason}.", "",
                  "| version | population | closed windows | customers | positives | online AUC |",
                  "|---|---|---|---|---|---|"]
        for label, key in (("canary", "canary"), ("serving", "serving"), ("canary", "paired_canary"),
                           ("serving", "paired_serving")):
            arm = outcome.evidence[key]
            auc = "-" if arm["auc"] is None else f"{arm['auc']:.3f}"
            population = "all scored" if key.startswith("paired") else "its own customers"
            lines.append(f"| {label} {arm['version']} | {population} | {arm['windows']} | {arm['customers']:,} | "
                         f"{arm['positives']:,} | {auc} |")
    lines += ["", *(f"- version {d.version}: **{d.kind}** ({d.rule}): {d.reason}" for d in outcome.decisions)]
    return "\n".join(lines)
