"""Materialize the whole asset graph on a real Dagster instance kept under the home folder.

The run report is read back from the instance's event log (the same metadata the
Dagster UI shows), not from values passed around in memory.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from pathlib import Path
from typing import Any

from churn_platform.settings import Settings

TABLE_KEYS = (
    "marts.customer_features",
    "marts.churn_labels",
    "marts.training_set",
    "marts.scoring_features",
    "scores.churn_scores",
    "business.business_metrics_monthly",
)


class PipelineFailed(RuntimeError):
    """The run failed; ``report`` holds what is known up to the failure (None when the run never started)."""

    def __init__(self, message: str, report: RunReport | None = None):
        super().__init__(message)
        self.report = report


@dataclasses.dataclass
class RunReport:
    """What a run did, read back from the Dagster instance. On a failed run (``status`` FAILURE)
    every field holds what is known up to the failure, and ``failures`` names each failed step
    with its error."""

    dagster_run_id: str
    status: str
    seconds: float
    sources: dict[str, int]
    contracts: dict[str, dict[str, Any]]
    tables: dict[str, int]
    model: dict[str, Any]
    drift: dict[str, Any]
    checks: dict[str, int]
    failed_checks: list[str]
    warned_checks: list[str]
    home: str
    business: dict[str, Any] = dataclasses.field(default_factory=dict)
    business_name: str = ""
    failures: list[dict[str, str]] = dataclasses.field(default_factory=list)
    worklist: dict[str, Any] = dataclasses.field(default_factory=dict)
    campaigns: dict[str, Any] = dataclasses.field(default_factory=dict)
    uplift: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True, default=str)


def prepare(settings: Settings) -> None:
    """Create the home folders and export the settings (the dbt manifest of the declared business is
    parsed when the definitions load, if it is not there yet)."""
    settings.ensure_dirs()
    settings.export()


WAREHOUSE_SELECTION = "group:sources or (kind:dbt and not group:monitoring)"
"""The assets a warehouse's tables come from: the sources and the dbt models (no training, scoring or reports)."""


def _execute_over_all_days(
    settings: Settings, defs, instance, keys, tags: dict, log_level: str, asset_config: dict | None = None
):
    """One run of ``daily_pipeline`` over every usage partition (a single-run backfill) for the
    assets ``keys``, named in the run so that declarative automation knows what it built;
    ``asset_config`` gives configurable assets their config (by asset name)."""
    from churn_platform.defs.partitions import all_partitions_range

    job = defs.resolve_job_def("daily_pipeline")
    first_day, last_day = all_partitions_range(job.partitions_def)
    return job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        asset_selection=sorted(keys, key=lambda k: k.to_user_string()),
        run_config={
            "loggers": {"console": {"config": {"log_level": log_level}}},
            **({"ops": {name: {"config": c} for name, c in asset_config.items()}} if asset_config else {}),
        },
        tags={
            **tags,
            "dagster/asset_partition_range_start": first_day,
            "dagster/asset_partition_range_end": last_day,
        },
    )


def materialize_selection(
    settings: Settings,
    selection: str,
    trigger: str,
    log_level: str = "WARNING",
    asset_config: dict | None = None,
) -> str:
    """Materialize the assets of ``selection`` (Dagster's selection syntax) over every usage
    partition in the home's instance; returns the Dagster run id, or raises ``PipelineFailed``."""
    import dagster as dg

    from churn_platform.apps.location import platform_definitions

    prepare(settings)
    defs = platform_definitions(settings)
    with warnings.catch_warnings():  # the selection syntax's parser uses beta parameters of its own
        warnings.simplefilter("ignore", dg.BetaWarning)
        keys = dg.AssetSelection.from_string(selection).resolve(defs.resolve_asset_graph())
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        result = _execute_over_all_days(
            settings, defs, instance, keys, {"churn_platform/trigger": trigger}, log_level, asset_config
        )
    if not result.success:
        raise PipelineFailed(
            f"Dagster run {result.run_id} failed:\n  " + "\n  ".join(f"{s}: {e}" for s, e in _failures(result))
        )
    return result.run_id


def build_warehouse(settings: Settings, log_level: str = "WARNING") -> str:
    """Load the sources and build the dbt models, nothing else (what the dbt docs' catalog needs).
    Returns the Dagster run id."""
    return materialize_selection(settings, WAREHOUSE_SELECTION, "docs", log_level)


def _alert(settings: Settings, instance, result) -> None:
    """What the daemon's alert sensors would send for this run, sent now: an in-process run has no
    daemon watching it. (The freshness alerts still need the daemon: a run that just materialized
    its assets leaves nothing stale.)"""
    from churn_platform.defs.alerts import alert_failed_checks
    from churn_platform.defs.resources import Notifier

    notifier = Notifier(webhook_url=settings.alert_webhook_url)
    if not result.success:
        run = instance.get_run_by_id(result.run_id)
        notifier.notify(
            "run_failed",
            f"run {result.run_id[:8]} of {run.job_name if run else 'daily_pipeline'} failed",
            {
                "run_id": result.run_id,
                "job": run.job_name if run else "daily_pipeline",
                "error": "; ".join(f"{s}: {e}" for s, e in _failures(result))[:2000],
            },
        )
    alert_failed_checks(instance, result.run_id, notifier)


def _failures(result) -> list[tuple[str, str]]:
    """Each failed step with the error that caused it (not Dagster's wrapper around it)."""
    failures = []
    for e in result.all_events:
        if not e.is_step_failure or e.event_specific_data is None:
            continue
        error = e.event_specific_data.error  # type: ignore[union-attr]
        while (
            error is not None
            and error.cause is not None
            and (
                "DagsterExecutionStepExecutionError" in error.cls_name
                or "Error occurred while executing" in error.message
            )
        ):
            error = error.cause
        failures.append((str(e.step_key), error.message.strip() if error is not None else "failed"))
    return failures or [("(run)", "no step failure recorded; see the Dagster run's log")]


def run_pipeline(settings: Settings, log_level: str = "INFO", asset_config: dict | None = None) -> RunReport:
    """Run the whole graph (``asset_config``: config of configurable assets, by name); the report of
    a failed run travels with ``PipelineFailed``."""
    import dagster as dg

    from churn_platform.apps.location import find_declaration, platform_definitions
    from churn_platform.defs.automation import BUILDS_DOWNSTREAM

    prepare(settings)
    declaration = find_declaration(settings)
    defs = platform_definitions(settings)
    started = time.monotonic()
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        result = _execute_over_all_days(
            settings,
            defs,
            instance,
            defs.resolve_asset_graph().get_all_asset_keys(),
            {**BUILDS_DOWNSTREAM, "churn_platform/trigger": "cli"},
            log_level,
            asset_config,
        )
        seconds = time.monotonic() - started
        _alert(settings, instance, result)
        report = _report(settings, instance, result, declaration, seconds)
    if not result.success:
        raise PipelineFailed(
            f"Dagster run {result.run_id} failed:\n  "
            + "\n  ".join(f"{f['step']}: {f['error']}" for f in report.failures),
            report,
        )
    return report


def _report(settings: Settings, instance, result, declaration, seconds: float) -> RunReport:
    """The run's report from the instance: only this run's materializations count, so a failed run
    reports what it did up to the failure (and nothing of earlier runs)."""
    import dagster as dg

    from churn_platform.defs.ml import MODEL_METRICS

    run = result.run_id
    checks = result.get_asset_check_evaluations()
    failed_checks = sorted(
        f"{c.asset_key.to_user_string()}:{c.check_name}"
        for c in checks
        if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR
    )
    warned_checks = sorted(
        f"{c.asset_key.to_user_string()}:{c.check_name}"
        for c in checks
        if not c.passed and c.severity == dg.AssetCheckSeverity.WARN
    )
    sources = declaration.present

    def meta(key: str, name: str, default: Any = None) -> Any:
        return _meta(instance, key, name, default, run_id=run)

    return RunReport(
        dagster_run_id=run,
        status="SUCCESS" if result.success else "FAILURE",
        seconds=round(seconds, 1),
        business_name=declaration.business,
        sources={k: int(meta(k, "received_rows", 0)) for k in sources},
        contracts={
            k: {
                "received": int(meta(k, "received_rows", 0)),
                "accepted": int(meta(k, "accepted_rows", 0)),
                "quarantined": int(meta(k, "quarantined_rows", 0)),
                "quarantine_share": float(meta(k, "quarantine_share", 0.0)),
                "reasons": meta(k, "quarantine_reasons", {}),
                "rules": meta(k, "quarantine_rules", {}),
            }
            for k in sources
            if meta(k, "received_rows") is not None
        },
        tables=_count_tables(settings, TABLE_KEYS),
        model={
            k: meta("churn_model", k)
            for k in (
                "registered_model",
                "model_version",
                "alias",
                "candidate",
                *MODEL_METRICS,
                "calibration",
                "mlflow_run_id",
                "test_snapshot",
                "oracle_roc_auc",
                "model_over_oracle",
                "gate_decision",
                "gate_reason",
                "champion_version",
                "champion_roc_auc_same_holdout",
            )
        },
        drift={
            k: meta("feature_drift_report", k)
            for k in ("drift_share", "drifted_columns", "total_columns", "report_path", "skipped_columns")
        },
        checks={
            "passed": sum(c.passed for c in checks),
            "warned": len(warned_checks),
            "failed": len(failed_checks),
        },
        failed_checks=failed_checks,
        warned_checks=warned_checks,
        home=str(settings.home),
        business={
            k: meta("business_health", k)
            for k in ("latest_complete_month", "churn_rate", "mrr_churn_rate", "net_revenue_retention", "chart_path")
        },
        failures=[] if result.success else [{"step": s, "error": e} for s, e in _failures(result)],
        worklist={
            k: meta("retention_worklist", k)
            for k in (
                "campaign",
                "targeted_by",
                "treated",
                "control",
                "spend",
                "expected_benefit_treated",
                "export_csv",
            )
        },
        campaigns={k: meta("campaign_effect", k) for k in ("campaigns", "measured_campaigns", "contacts")},
        uplift={
            k: meta("uplift_model", k)
            for k in (
                "status",
                "reason",
                "model_version",
                "alias",
                "candidate",
                "qini",
                "risk_qini",
                "oracle_qini",
                "qini_over_oracle",
                "held_out",
            )
        },
    )


def _meta(instance, key: str, name: str, default: Any = None, run_id: str | None = None) -> Any:
    """Metadata ``name`` of asset ``key``'s latest materialization (by run ``run_id``, when given);
    ``default`` when there is none."""
    import dagster as dg

    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    if event is None or event.asset_materialization is None or (run_id is not None and event.run_id != run_id):
        return default
    entry = event.asset_materialization.metadata.get(name)
    if entry is None:
        return default
    return entry.value


def _count_tables(settings: Settings, tables: tuple[str, ...]) -> dict[str, int]:
    """Rows of each table that exists (a failed run may not have built them all)."""
    from churn_platform.defs import warehouse_for

    warehouse = warehouse_for(settings).process_config_and_initialize()
    counts = {}
    for t in tables:
        try:
            counts[t.split(".")[-1]] = int(warehouse.query(f"select count(*) as n from {t}")["n"].iloc[0])
        except Exception:
            continue
    return counts


def write_report(report: RunReport, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.to_json() + "\n")
