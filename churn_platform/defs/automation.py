"""Jobs, the daily schedule and the sensor that retrains on drift."""


import dagster as dg




def build_daily_pipeline(partitions: dg.DailyPartitionsDefinition) -> tuple:
    """The daily pipeline job and its schedule. The job runs for a day partition (or a range
    of them): the usage of those days is loaded and built, everything else is rebuilt whole.
    The schedule runs it at 02:00 UTC for the day that just ended."""
    job = dg.define_asset_job(
        "daily_pipeline",
        selection=dg.AssetSelection.all(),
        partitions_def=partitions,
        description="Load the sources (usage for the run's days), build the dbt features, retrain, and report drift.",
    )
    schedule = dg.build_schedule_from_partitioned_job(
        job,
        name="daily_pipeline_schedule",
        hour_of_day=2,
        minute_of_hour=0,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every day at 02:00 UTC, the daily pipeline for the day before.",
    )
    return job, schedule


retrain_job = dg.define_asset_job(
    "retrain_churn_model",
    selection=dg.AssetSelection.assets("churn_model", "churn_scores"),
    description="Retrain the churn model on the current training set and rescore the customers.",
)


def drift_share_of(event: dg.EventLogEntry) -> float | None:
    materialization = event.asset_materialization
    if materialization is None or "drift_share" not in materialization.metadata:
        return None
    return float(materialization.metadata["drift_share"].value)


DRIFT_REPORT_KEY = dg.AssetKey("feature_drift_report")


def build_retrain_on_drift(threshold: float) -> dg.SensorDefinition:
    """A sensor that reads new drift reports after its cursor (a storage id) and asks for one
    retraining when the latest report over the threshold is new; the run key is that
    report's storage id, so a report never triggers twice."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"the drift threshold is a share between 0 and 1, got {threshold}")

    @dg.sensor(
        name="retrain_on_drift",
        job=retrain_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Retrains the churn model when a drift report's drift share exceeds {threshold:.2f}.",
    )
    def retrain_on_drift(context: dg.SensorEvaluationContext):
        after = int(context.cursor) if context.cursor else None
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=DRIFT_REPORT_KEY, after_storage_id=after), limit=1000, ascending=True
        ).records
        if not records:
            return dg.SkipReason("no new feature_drift_report since the last evaluation")
        context.update_cursor(str(records[-1].storage_id))
        over = [(r, share) for r in records if (share := drift_share_of(r.event_log_entry)) is not None and share > threshold]
        if not over:
            shares = ", ".join(
                "none" if (v := drift_share_of(r.event_log_entry)) is None else f"{v:.2f}" for r in records
            )
            return dg.SkipReason(f"{len(records)} new drift report(s), drift share(s) {shares} within {threshold:.2f}")
        record, share = over[-1]
        context.log.info(f"drift share {share:.2f} exceeds {threshold:.2f}: requesting retraining")
        return dg.RunRequest(
            run_key=f"feature_drift_report:{record.storage_id}",
            tags={"churn_platform/trigger": "drift", "churn_platform/drift_share": f"{share:.4f}"},
        )

    return retrain_on_drift
