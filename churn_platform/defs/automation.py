"""Jobs, the daily schedule, declarative automation and the sensor that retrains on drift or on
decayed performance."""

import datetime as dt
import json
from collections.abc import Sequence

import dagster as dg

from churn_platform import policy

BUILDS_DOWNSTREAM_TAG = "churn_platform/builds_downstream"
"""On a run that builds everything downstream of what it updates (the daily pipeline's runs of the
whole graph, `churn-platform run`): automation does not follow that run's updates."""
BUILDS_DOWNSTREAM = {BUILDS_DOWNSTREAM_TAG: "true"}
AUTOMATION_SENSOR = "follow_upstream"
"""The sensor that evaluates the assets' automation conditions (pause it to stop automation)."""
PREDICTION_LOG = dg.AssetKey("prediction_log")
"""Reloaded hourly: its readers count it as updated only when what was served changed."""
PREDICTION_LOG_CRON = "0 * * * *"


def follow_parents(
    *,
    every_partition: bool = False,
    not_on_updates_of: Sequence[dg.AssetKey] = (),
    on_data_changes_of: Sequence[dg.AssetKey] = (),
) -> dg.AutomationCondition:
    """``AutomationCondition.eager()``, with three refinements the graph needs:

    - ``every_partition``: any partition whose parent partition was updated is rebuilt, not only
      the latest day (a corrected day of usage is landed again; eager alone would ignore it);
    - ``not_on_updates_of``: parents whose updates are no reason to rebuild (a source that only
      the model's dbt tests read); they still block while missing or in progress;
    - ``on_data_changes_of``: parents that count as updated only when their data version changed
      (the hourly prediction log, which is reloaded whether or not anything new was served).

    Nothing follows a source whose blocking quarantine check failed.

    A parent's update is no reason to build the asset when the run that made it built the asset
    too: ``eager()`` sees that for an unpartitioned parent (the run's asset selection), but of a
    partitioned parent it sees only the latest partition. So the updates of runs tagged
    ``BUILDS_DOWNSTREAM`` (the daily pipeline over the whole graph, `churn-platform run`) are
    ignored outright, partition by partition, as Dagster documents with
    ``all_new_updates_have_run_tags``; the daily pipeline's runs start nothing more."""
    condition = dg.AutomationCondition.eager()
    parts = []
    if every_partition:
        condition = condition.without(dg.AutomationCondition.in_latest_time_window())
        parts.append("every partition")
    not_by_the_same_run = (
        ~dg.AutomationCondition.executed_with_root_target()
        & ~dg.AutomationCondition.all_new_updates_have_run_tags(tag_values=BUILDS_DOWNSTREAM)
    )
    updated = dg.AutomationCondition.any_deps_match(
        (dg.AutomationCondition.newly_updated() & not_by_the_same_run).with_label("newly_updated_by_another_run")
        | dg.AutomationCondition.will_be_requested()
    )
    ignored = [*not_on_updates_of, *on_data_changes_of]
    if ignored:
        updated = updated.ignore(dg.AssetSelection.assets(*ignored))
    if on_data_changes_of:
        changed = dg.AutomationCondition.any_deps_match(
            dg.AutomationCondition.data_version_changed() & not_by_the_same_run
        ).allow(dg.AssetSelection.assets(*on_data_changes_of))
        updated = updated | changed
        parts.append("data changes of " + ", ".join(k.to_user_string() for k in on_data_changes_of))
    if not_on_updates_of:
        parts.append("not on updates of " + ", ".join(k.to_user_string() for k in not_on_updates_of))
    condition = condition.replace("any_deps_updated", updated.with_label("any_deps_updated"))
    # A source whose blocking quarantine check failed stops here, as it stops the run that loaded
    # it. (Only the sources' checks: a model's dbt tests run in the run that builds it, after the
    # condition has been evaluated.)
    condition = condition & dg.AutomationCondition.all_deps_blocking_checks_passed().allow(
        dg.AssetSelection.groups("sources")
    )
    return condition.with_label("eager" + (f" ({'; '.join(parts)})" if parts else ""))


def on_cadence(cron: str = PREDICTION_LOG_CRON, timezone: str = "UTC") -> dg.AutomationCondition:
    """Requested once per tick of ``cron`` whatever its parents did (``on_cron`` would also wait
    for every parent to update after the tick), once its parents exist and are not being built."""
    return (
        dg.AutomationCondition.cron_tick_passed(cron, timezone).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"on_cadence({cron}, {timezone})")


def build_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """Evaluates every asset's automation condition every 30 s, running by default. Requests of
    several partitions become one backfill, run as a single run where the asset's backfill
    policy says so."""
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        run_tags={"churn_platform/trigger": "automation"},
        description=(
            "Declarative automation: when a parent asset is updated (a new day of usage, a reloaded "
            "source), the assets downstream of it are materialized once; prediction_log is reloaded "
            "hourly. Stop this sensor to pause automation."
        ),
    )


def build_daily_pipeline(partitions: dg.DailyPartitionsDefinition, asset_keys: Sequence[dg.AssetKey]) -> tuple:
    """The daily pipeline job and its schedule. The job runs for a day partition (or a range
    of them): the usage of those days is loaded and built, everything else is rebuilt whole.
    The schedule runs it at 02:00 UTC for the day that just ended.

    Its runs name every asset they build (``asset_keys``): declarative automation recognises a
    parent updated by a run that also built the child only through the run's asset selection,
    and a run of the whole job without one would make it rebuild what the run just built."""
    job = dg.define_asset_job(
        "daily_pipeline",
        selection=dg.AssetSelection.all(),
        partitions_def=partitions,
        description="Load the sources (usage for the run's days), build the dbt features, retrain, and report drift.",
    )
    keys = sorted(asset_keys, key=lambda k: k.to_user_string())

    @dg.schedule(
        job=job,
        name="daily_pipeline_schedule",
        cron_schedule="0 2 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every day at 02:00 UTC, the daily pipeline for the day before.",
    )
    def daily_pipeline_schedule(context: dg.ScheduleEvaluationContext):
        day = (context.scheduled_execution_time - dt.timedelta(days=1)).strftime("%Y-%m-%d")
        if not partitions.has_partition_key(day):
            return dg.SkipReason(
                f"{day} is not a usage partition ({partitions.start.date()} to {partitions.end.date() if partitions.end else 'open'})"
            )
        return dg.RunRequest(
            partition_key=day, asset_selection=keys, tags={"churn_platform/trigger": "schedule", **BUILDS_DOWNSTREAM}
        )

    return job, daily_pipeline_schedule


RETRAIN_ASSETS = (dg.AssetKey("churn_model"), dg.AssetKey("churn_scores"))
retrain_job = dg.define_asset_job(
    "retrain_churn_model",
    selection=dg.AssetSelection.assets(*RETRAIN_ASSETS),
    description="Retrain the churn model on the current training set and rescore the customers.",
)


def _metadata_value(event: dg.EventLogEntry, name: str) -> float | None:
    materialization = event.asset_materialization
    if materialization is None or name not in materialization.metadata:
        return None
    value = materialization.metadata[name].value
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _metadata_text(event: dg.EventLogEntry, name: str) -> str | None:
    materialization = event.asset_materialization
    if materialization is None or name not in materialization.metadata:
        return None
    return str(materialization.metadata[name].value)


def drift_share_of(event: dg.EventLogEntry) -> float | None:
    return _metadata_value(event, "drift_share")


DRIFT_REPORT_KEY = dg.AssetKey("feature_drift_report")
PERFORMANCE_KEY = dg.AssetKey("model_performance")
ESTIMATE_KEY = dg.AssetKey("estimated_performance")


def _read_cursor(raw: str | None) -> dict[str, int]:
    if not raw:
        return {}
    if raw.isdigit():  # the cursor of earlier versions: the drift report's storage id alone
        return {"feature_drift_report": int(raw)}
    return {k: int(v) for k, v in json.loads(raw).items()}


def build_retrain_on_drift(threshold: float, performance_floor: float = policy.ROC_AUC_FLOOR) -> dg.SensorDefinition:
    """A sensor that reads new drift reports, matured-performance results and performance estimates
    after its cursor (a storage id per asset) and asks for one retraining when the latest new drift
    report is over ``threshold``, or the latest new performance result or estimate (of a month whose
    outcomes have not matured) is below ``performance_floor``. The run key names the events that
    triggered it, so an event never triggers twice."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"the drift threshold is a share between 0 and 1, got {threshold}")
    if not 0.0 <= performance_floor <= 1.0:
        raise ValueError(f"the performance floor is a ROC-AUC between 0 and 1, got {performance_floor}")

    @dg.sensor(
        name="retrain_on_drift",
        job=retrain_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Retrains the churn model when a drift report's drift share exceeds {threshold:.2f}, "
            f"or when matured predictions' ROC-AUC, or the ROC-AUC estimated before they mature, falls below "
            f"{performance_floor:.2f}."
        ),
    )
    def retrain_on_drift(context: dg.SensorEvaluationContext):
        cursor = _read_cursor(context.cursor)
        new = {}
        for key in (DRIFT_REPORT_KEY, PERFORMANCE_KEY, ESTIMATE_KEY):
            name = key.to_user_string()
            new[name] = context.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, after_storage_id=cursor.get(name)), limit=1000, ascending=True
            ).records
            if new[name]:
                cursor[name] = new[name][-1].storage_id
        if not any(new.values()):
            return dg.SkipReason(
                "no new feature_drift_report, model_performance or estimated_performance since the last evaluation"
            )
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        drifted = [
            (r, v)
            for r in new["feature_drift_report"]
            if (v := drift_share_of(r.event_log_entry)) is not None and v > threshold
        ]
        decayed = [
            (r, v)
            for r in new["model_performance"]
            if (v := _metadata_value(r.event_log_entry, "roc_auc")) is not None and v < performance_floor
        ]
        estimated = [
            (r, v)
            for r in new["estimated_performance"]
            if (v := _metadata_value(r.event_log_entry, "estimated_roc_auc")) is not None and v < performance_floor
        ]
        if not drifted and not decayed and not estimated:
            shares = ", ".join(
                "none" if (v := drift_share_of(r.event_log_entry)) is None else f"{v:.2f}"
                for r in new["feature_drift_report"]
            )
            aucs = ", ".join(
                "none" if (v := _metadata_value(r.event_log_entry, "roc_auc")) is None else f"{v:.3f}"
                for r in new["model_performance"]
            )
            parts = []
            if new["feature_drift_report"]:
                parts.append(
                    f"{len(new['feature_drift_report'])} new drift report(s), drift share(s) {shares} within {threshold:.2f}"
                )
            if new["model_performance"]:
                parts.append(
                    f"{len(new['model_performance'])} new performance result(s), ROC-AUC {aucs} at or above {performance_floor:.2f}"
                )
            if new["estimated_performance"]:
                parts.append(
                    f"{len(new['estimated_performance'])} new performance estimate(s), none below {performance_floor:.2f}"
                )
            return dg.SkipReason("; ".join(parts))
        keys, tags, reasons = [], {}, []
        if drifted:
            record, share = drifted[-1]
            keys.append(f"feature_drift_report:{record.storage_id}")
            tags["churn_platform/drift_share"] = f"{share:.4f}"
            reasons.append(f"drift share {share:.2f} exceeds {threshold:.2f}")
        if decayed:
            record, auc = decayed[-1]
            keys.append(f"model_performance:{record.storage_id}")
            tags["churn_platform/matured_roc_auc"] = f"{auc:.4f}"
            reasons.append(f"matured ROC-AUC {auc:.3f} is below {performance_floor:.2f}")
        if estimated:
            record, auc = estimated[-1]
            # One retraining per month and model version estimated low: a new estimate of the same
            # scores (every run re-estimates) asks for nothing more.
            month = _metadata_text(record.event_log_entry, "month")
            version = _metadata_text(record.event_log_entry, "model_version")
            keys.append(
                f"estimated_performance:{month}:v{version}" if month else f"estimated_performance:{record.storage_id}"
            )
            tags["churn_platform/estimated_roc_auc"] = f"{auc:.4f}"
            reasons.append(f"estimated ROC-AUC {auc:.3f} is below {performance_floor:.2f} (outcomes not matured yet)")
        trigger = "+".join(
            k.split(":")[0]
            .replace("feature_drift_report", "drift")
            .replace("model_performance", "performance")
            .replace("estimated_performance", "estimate")
            for k in keys
        )
        context.log.info("; ".join(reasons) + ": requesting retraining")
        return dg.RunRequest(
            run_key="+".join(keys),
            asset_selection=list(RETRAIN_ASSETS),
            tags={"churn_platform/trigger": trigger, "churn_platform/reason": "; ".join(reasons), **tags},
        )

    return retrain_on_drift
