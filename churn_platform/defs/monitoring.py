"""Monitoring assets: feature drift between training data and the latest features."""


import dagster as dg

from churn_platform.defs.policies import freshness_for
from churn_platform.defs.resources import ReportStore, WarehouseResource
from churn_platform.monitoring.drift import feature_drift


@dg.asset(
    group_name="monitoring",
    deps=[dg.AssetKey("training_set"), dg.AssetKey("scoring_features")],
    kinds={"evidently"},
    freshness_policy=freshness_for("monitoring"),
    automation_condition=dg.AutomationCondition.eager(),
    description=(
        "Evidently data-drift report of the latest `scoring_features` against the `training_set` "
        "features; the drift share drives the `retrain_on_drift` sensor."
    ),
)
def feature_drift_report(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, reports: ReportStore
) -> dg.MaterializeResult:
    reference = warehouse.read_table("marts", "training_set")
    current = warehouse.read_table("marts", "scoring_features")
    result = feature_drift(reference, current, reports.path_for("feature_drift_report.html"))
    context.log.info(
        f"drift share {result.drift_share:.2f} ({result.drifted_columns}/{result.total_columns} features drifted)"
    )
    scores = "\n".join(
        f"| {col} | {result.column_methods.get(col, '')} | {score:.4g} |"
        for col, score in sorted(result.column_scores.items())
    )
    return dg.MaterializeResult(
        metadata={
            "drift_share": result.drift_share,
            "drifted_columns": result.drifted_columns,
            "total_columns": result.total_columns,
            "reference_rows": result.reference_rows,
            "current_rows": result.current_rows,
            "report_path": dg.MetadataValue.path(str(result.html_path)),
            "column_drift": dg.MetadataValue.md("| feature | method | score |\n|---|---|---|\n" + scores),
        }
    )
