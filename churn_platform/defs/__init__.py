"""Thin Dagster adapters over the pure core: assets, checks, resources, automation."""

from __future__ import annotations

import os
import warnings

import dagster as dg

# Single-run backfills are a beta parameter of Dagster assets; the platform relies on them on purpose.
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy`", category=dg.BetaWarning)

from churn_platform.settings import EXPERIMENT_NAME, PG_PASSWORD_ENV, REGISTERED_MODEL_NAME, Settings  # noqa: E402


def build_definitions(settings: Settings, declaration, source=None, ground_truth=None) -> dg.Definitions:
    """The platform's one Definitions object for the business ``declaration`` describes, wired to
    the locations in ``settings``.

    ``source`` (a ``SourceResource``) defaults to the sources the settings name; ``ground_truth``
    (a ``GroundTruth``) to none. The drivers' ``churn_platform.apps.location.platform_definitions``
    finds the declaration and fills both with the built-in simulation when no sources are named."""
    from churn_platform.defs.alerts import alert_on_failed_checks, alert_on_freshness, alert_on_run_failure
    from churn_platform.defs.automation import (
        build_automation_sensor,
        build_daily_pipeline,
        build_retrain_on_drift,
        retrain_job,
    )
    from churn_platform.defs.business import business_health
    from churn_platform.defs.dbt import build_dbt_assets, dbt_project, dbt_resource
    from churn_platform.defs.decisions import campaign_effect, retention_worklist, uplift_model
    from churn_platform.defs.ml import churn_model
    from churn_platform.defs.monitoring import (
        estimated_performance,
        feature_drift_report,
        model_performance,
        online_comparison,
        prediction_drift_report,
        prediction_log,
        segment_drift_report,
    )
    from churn_platform.defs.partitions import partition_bounds, usage_partitions
    from churn_platform.defs.resources import (
        BusinessResource,
        GroundTruth,
        MLflowResource,
        MonitoringPolicy,
        Notifier,
        PredictionLogStore,
        ReportStore,
        SourceResource,
    )
    from churn_platform.defs.scores import churn_scores
    from churn_platform.defs.sources import build_source_assets
    from churn_platform.defs.survival import churn_survival

    source = source or SourceResource(sources=settings.effective_sources, s3_endpoint_url=settings.s3_endpoint_url)
    project = dbt_project(declaration, settings.dbt_target)
    partitions = usage_partitions(*partition_bounds(settings, declaration, source))
    assets = [
        *build_source_assets(declaration, partitions, settings.max_quarantine_share),
        *build_dbt_assets(project, partitions, declaration),
        churn_model,
        churn_scores,
        churn_survival,
        retention_worklist,
        feature_drift_report,
        prediction_log,
        prediction_drift_report,
        model_performance,
        online_comparison,
        estimated_performance,
        segment_drift_report,
        business_health,
        # Measured only where the business records its contacts.
        *([campaign_effect, uplift_model] if "actions" in declaration.present else []),
    ]
    daily_pipeline_job, daily_schedule = build_daily_pipeline(
        partitions, [key for asset in assets for key in asset.keys]
    )
    return dg.Definitions(
        assets=assets,
        jobs=[daily_pipeline_job, retrain_job],
        schedules=[daily_schedule],
        sensors=[
            build_automation_sensor(),
            build_retrain_on_drift(
                settings.drift_threshold, settings.roc_auc_floor or declaration.policy.roc_auc_floor
            ),
            alert_on_run_failure,
            alert_on_failed_checks,
            alert_on_freshness,
        ],
        # The local warehouse is one DuckDB file with a single writer: run each job's steps
        # in one process (which is also faster than a process per step on a laptop).
        # PostgreSQL takes writers in parallel: a process per step, two at a time.
        executor=(
            dg.multiprocess_executor.configured({"max_concurrent": 2})
            if settings.is_production
            else dg.in_process_executor
        ),
        resources={
            "source": source,
            "ground_truth": ground_truth or GroundTruth(),
            "business": BusinessResource.of(declaration),
            "warehouse": warehouse_for(settings),
            "mlflow_store": MLflowResource(
                tracking_uri=settings.mlflow_tracking_uri,
                experiment_name=EXPERIMENT_NAME,
                artifact_location=settings.mlflow_artifact_location,
                registered_model_name=REGISTERED_MODEL_NAME,
            ),
            "reports": ReportStore(
                reports_dir=str(settings.reports_dir),
                publish_to=settings.s3_reports,
                s3_endpoint_url=settings.s3_endpoint_url,
            ),
            "policy": MonitoringPolicy(
                drift_threshold=settings.drift_threshold,
                drift_sample_rows=settings.drift_sample_rows,
                roc_auc_floor=settings.roc_auc_floor or declaration.policy.roc_auc_floor,
                gate_tolerance=(
                    settings.gate_tolerance
                    if settings.gate_tolerance is not None
                    else declaration.policy.gate_tolerance
                ),
                gate_metric=declaration.policy.gate_metric,
                rollout=declaration.policy.rollout,
                rollout_share=declaration.policy.rollout_share,
                rollout_min_matured=declaration.policy.rollout_min_matured,
            ),
            "prediction_logs": PredictionLogStore(path=str(settings.prediction_log_dir)),
            "notifier": Notifier(webhook_url=settings.alert_webhook_url),
            "dbt": dbt_resource(project),
        },
    )


def warehouse_for(settings: Settings):
    """The warehouse resource of the settings' dbt target: PostgreSQL or a DuckDB file."""
    from churn_platform.defs.resources import DuckDBWarehouseResource, PostgresWarehouseResource

    if settings.dbt_target == "postgres":
        pg = settings.postgres
        if pg is None:
            from churn_platform.settings import postgres_from_env

            pg = postgres_from_env()
        # The password is read from the environment when the resource is used, never stored in config.
        password = dg.EnvVar(PG_PASSWORD_ENV) if os.environ.get(PG_PASSWORD_ENV) else ""
        return PostgresWarehouseResource(
            host=pg.host, port=pg.port, user=pg.user, password=password, database=pg.database
        )
    return DuckDBWarehouseResource(path=str(settings.warehouse_path), memory_limit=settings.duckdb_memory_limit)
