"""Jobs, the daily schedule and the sensor that retrains on drift."""


import dagster as dg

DAILY_CRON = "0 2 * * *"

daily_pipeline_job = dg.define_asset_job(
    "daily_pipeline",
    selection=dg.AssetSelection.all(),
    description="Load the sources, build the dbt features, retrain, and report drift.",
)

retrain_job = dg.define_asset_job(
    "retrain_churn_model",
    selection=dg.AssetSelection.assets("churn_model"),
    description="Retrain the churn model on the current training set.",
)

daily_schedule = dg.ScheduleDefinition(
    name="daily_pipeline_schedule",
    job=daily_pipeline_job,
    cron_schedule=DAILY_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


def drift_share_of(event: dg.EventLogEntry) -> float | None:
    materialization = event.asset_materialization
    if materialization is None or "drift_share" not in materialization.metadata:
        return None
    return float(materialization.metadata["drift_share"].value)


def build_retrain_on_drift(threshold: float) -> dg.SensorDefinition:
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"the drift threshold is a share between 0 and 1, got {threshold}")

    @dg.asset_sensor(
        name="retrain_on_drift",
        asset_key=dg.AssetKey("feature_drift_report"),
        job=retrain_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Retrains the churn model when a drift report's drift share exceeds {threshold:.2f}.",
    )
    def retrain_on_drift(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
        share = drift_share_of(asset_event)
        if share is None:
            return dg.SkipReason("the latest feature_drift_report has no drift_share metadata")
        if share <= threshold:
            return dg.SkipReason(f"drift share {share:.2f} is within the threshold {threshold:.2f}")
        context.log.info(f"drift share {share:.2f} exceeds {threshold:.2f}: requesting retraining")
        # One drift report (one run that materialized it) triggers one retraining.
        return dg.RunRequest(
            run_key=f"feature_drift_report:{asset_event.run_id}",
            tags={"churn_platform/trigger": "drift", "churn_platform/drift_share": f"{share:.4f}"},
        )

    return retrain_on_drift
