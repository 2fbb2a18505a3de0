"""Sensors that turn failures into alerts: failed runs, failed or warning checks, freshness.

Check evaluations are read from the runs that produced them (a run-status sensor sees each
finished run once); freshness changes from the event log, after a storage-id cursor."""

import dagster as dg

from churn_platform.defs.resources import Notifier


def check_alerts(evaluation, run_id: str) -> list[tuple[str, str, dict]]:
    """The alert a check evaluation calls for: none when it passed."""
    if evaluation.passed:
        return []
    severity = evaluation.severity
    kind = "check_failed" if severity == dg.AssetCheckSeverity.ERROR else "check_warned"
    name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
    details = {"check": name, "severity": severity.value, "run_id": run_id}
    if evaluation.description:
        details["description"] = evaluation.description
    details.update({k: v.value for k, v in list(evaluation.metadata.items())[:6]})
    return [(kind, f"check {name} {'failed' if kind == 'check_failed' else 'warned'}", details)]


def alert_failed_checks(instance: dg.DagsterInstance, run_id: str, notifier: Notifier, logger=None) -> int:
    """One alert per failed or warning check evaluation of the run; returns how many."""
    sent = 0
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        for kind, title, details in check_alerts(entry.dagster_event.event_specific_data, run_id):
            notifier.notify(kind, title, details, logger=logger)
            sent += 1
    return sent


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends an alert for every failed run, and one for each check that failed in it.",
)
def alert_on_run_failure(context: dg.RunFailureSensorContext, notifier: Notifier) -> None:
    run = context.dagster_run
    notifier.notify(
        "run_failed",
        f"run {run.run_id[:8]} of {run.job_name} failed",
        {
            "run_id": run.run_id,
            "job": run.job_name,
            "error": context.failure_event.message or "",
            "tags": dict(run.tags),
        },
        logger=context.log,
    )
    alert_failed_checks(context.instance, run.run_id, notifier, context.log)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="alert_on_failed_checks",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends an alert for each asset check that failed or warned in a run that succeeded.",
)
def alert_on_failed_checks(context: dg.RunStatusSensorContext, notifier: Notifier) -> None:
    alert_failed_checks(context.instance, context.dagster_run.run_id, notifier, context.log)


def freshness_alerts(record) -> list[tuple[str, str, dict]]:
    """The alert a freshness change calls for: when an asset's freshness becomes WARN or FAIL."""
    change = record.event_log_entry.dagster_event.asset_freshness_state_change_data
    state = str(getattr(change.new_state, "value", change.new_state)).upper()
    if state not in ("FAIL", "WARN"):
        return []
    kind = "freshness_failed" if state == "FAIL" else "freshness_warned"
    previous = str(getattr(change.previous_state, "value", change.previous_state)).upper()
    asset = change.key.to_user_string()
    return [
        (
            kind,
            f"asset {asset} is {'stale' if state == 'FAIL' else 'nearly stale'} (freshness {previous} → {state})",
            {"asset": asset},
        )
    ]


@dg.sensor(
    name="alert_on_freshness",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends an alert when an asset's freshness policy turns WARN or FAIL.",
)
def alert_on_freshness(context: dg.SensorEvaluationContext, notifier: Notifier):
    # The cursor is the storage id of the last freshness change looked at: each change alerts once.
    after = int(context.cursor) if context.cursor else None
    records = context.instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.FRESHNESS_STATE_CHANGE, after_cursor=after),
        limit=1000,
        ascending=True,
    )
    sent = 0
    for record in records:
        for kind, title, details in freshness_alerts(record):
            notifier.notify(kind, title, details, logger=context.log)
            sent += 1
    if records:
        context.update_cursor(str(records[-1].storage_id))
    return dg.SkipReason(
        f"{sent} freshness alert(s) sent" if sent else "no asset turned stale since the last evaluation"
    )
