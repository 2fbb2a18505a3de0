"""The model asset: train candidates, log them to MLflow, register the best."""


import dagster as dg

from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import MLflowResource, WarehouseResource
from churn_platform.features import LABEL_COLUMN
from churn_platform.ml.registry import log_and_register
from churn_platform.ml.training import select_best, train_candidates
from churn_platform.settings import CHAMPION_ALIAS


class TrainingConfig(dg.Config):
    seed: int = 7


@dg.asset(
    group_name="ml",
    deps=[dg.AssetKey("training_set")],
    kinds={"lightgbm", "scikitlearn", "mlflow"},
    freshness_policy=freshness_for("ml"),
    automation_condition=dg.AutomationCondition.eager(),
    description=(
        "Churn model candidates (LightGBM, logistic regression) trained on the time-based split of "
        "`training_set`; the best on validation is registered in MLflow and aliased `champion`."
    ),
)
def churn_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    warehouse: WarehouseResource,
    mlflow_store: MLflowResource,
) -> dg.MaterializeResult:
    data = warehouse.read_table("marts", "training_set")
    context.log.info(f"training on {len(data):,} labelled rows ({data[LABEL_COLUMN].mean():.1%} churned)")
    split, results = train_candidates(data, seed=config.seed)
    for r in results:
        context.log.info(
            f"{r.name}: validation ROC-AUC {r.validation_metrics['roc_auc']:.4f}, test ROC-AUC {r.test_metrics['roc_auc']:.4f}"
        )
    best = select_best(results)
    registered = log_and_register(
        mlflow_store.location,
        split,
        results,
        best,
        registered_model_name=mlflow_store.registered_model_name,
        alias=CHAMPION_ALIAS,
        extra_tags={"dagster_run_id": context.run_id},
    )
    context.log.info(f"registered {registered.name} version {registered.version} as @{registered.alias}")
    rows = "\n".join(
        f"| {r.name} | {r.validation_metrics['roc_auc']:.4f} | {r.test_metrics['roc_auc']:.4f} | "
        f"{r.test_metrics['pr_auc']:.4f} | {r.test_metrics['brier']:.4f} | {'**selected**' if r is best else ''} |"
        for r in results
    )
    table = "| candidate | validation ROC-AUC | test ROC-AUC | test PR-AUC | test Brier | |\n|---|---|---|---|---|---|\n" + rows
    return dg.MaterializeResult(
        metadata={
            "registered_model": registered.name,
            "model_version": registered.version,
            "alias": registered.alias,
            "model_uri": registered.model_uri,
            "candidate": registered.candidate,
            "roc_auc": registered.metrics["roc_auc"],
            "pr_auc": registered.metrics["pr_auc"],
            "brier": registered.metrics["brier"],
            "top_decile_lift": registered.metrics["top_decile_lift"],
            "mlflow_run_id": registered.run_id,
            "mlflow_tracking_uri": mlflow_store.tracking_uri,
            "candidates": dg.MetadataValue.md(table),
            **{k: v for k, v in split.describe().items()},
        }
    )
