"""The whole pipeline in the production profile, on real services (`make test-production`).

One `daily_pipeline` run is queued through the Dagster webserver, launched by the daemon and
executed against PostgreSQL (dbt-postgres and the Dagster instance), S3 (the landing zone,
reports, MLflow artifacts and step logs, on a moto server) and an `mlflow server`. The tests
check it reached the same outcome as the local profile on the same files, that the daemon
ticked the retrain sensor after it, and that Ray Serve on the Ray cluster serves the champion.
"""

from __future__ import annotations

import time

import httpx
import numpy as np
import pandas as pd
import pytest

from churn_platform_tests.conftest import PREDICTION_LOG_READERS, run_cli
from churn_platform_tests.production.conftest import DAYS, SEED, ProductionRun, environment
from churn_platform_tests.production.stack import BUCKET, free_port, s3_client

pytestmark = pytest.mark.production

COMPARED_TABLES = (
    "raw.accounts",
    "raw.events",
    "raw.invoices",
    "raw.tickets",
    "quarantine.accounts",
    "quarantine.events",
    "quarantine.invoices",
    "quarantine.tickets",
    "marts.customer_features",
    "marts.churn_labels",
    "marts.training_set",
    "marts.scoring_features",
    "business.business_metrics_monthly",
    "scores.churn_scores",
)


def _warehouse(production: ProductionRun):
    from churn_platform.defs import warehouse_for
    from churn_platform.settings import Settings

    with environment(production.stack.env):
        # Resolved as Dagster resolves it for a run (the password is an EnvVar in its config).
        return warehouse_for(Settings.from_env()).process_config_and_initialize()


@pytest.fixture(scope="module")
def local_run(production: ProductionRun):
    """The local profile (DuckDB, SQLite, in-process run) on the same files as the landing zone."""
    result = run_cli(
        "run",
        "--sources",
        str(production.local_sources),
        "--home",
        str(production.local_home),
        "--log-level",
        "WARNING",
        env={"CHURN_PLATFORM_DAYS": str(DAYS), "CHURN_PLATFORM_SEED": str(SEED)},
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    from churn_platform.defs.resources import DuckDBWarehouseResource

    return DuckDBWarehouseResource(path=str(production.local_home / "warehouse.duckdb"))


def test_the_run_was_queued_and_launched_by_the_daemon(production: ProductionRun):
    import dagster as dg

    with environment(production.stack.env), dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        run = instance.get_run_by_id(production.run_id)
        events = {e.dagster_event.event_type_value for e in instance.all_logs(production.run_id) if e.dagster_event}
    assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["churn_platform/suite"] == "production"
    # QueuedRunCoordinator: the webserver enqueued it, the daemon dequeued and launched it.
    assert {"PIPELINE_ENQUEUED", "PIPELINE_STARTING", "PIPELINE_START", "PIPELINE_SUCCESS"} <= events, events
    assert "ASSET_MATERIALIZATION" in events and "ASSET_CHECK_EVALUATION" in events


def test_same_tables_as_the_local_profile(production: ProductionRun, local_run):
    warehouse = _warehouse(production)
    for table in COMPARED_TABLES:
        schema, name = table.split(".")
        pg = warehouse.read_table(schema, name)
        local = local_run.read_table(schema, name)
        assert len(pg) == len(local) > 0 or table.startswith("quarantine."), (
            f"{table}: {len(pg)} rows in PostgreSQL, {len(local)} locally"
        )
        assert list(pg.columns) == list(local.columns), table
    # Row for row, value for value, on what the model trains on.
    keys = ["customer_id", "snapshot_date"]
    pg = warehouse.read_table("marts", "training_set").sort_values(keys).reset_index(drop=True)
    local = local_run.read_table("marts", "training_set").sort_values(keys).reset_index(drop=True)
    for column in local.columns:
        if pd.api.types.is_numeric_dtype(local[column]):
            np.testing.assert_allclose(
                pg[column].astype(float), local[column].astype(float), rtol=1e-9, atol=1e-9, err_msg=column
            )
        else:
            assert (pg[column].astype(str) == local[column].astype(str)).all(), column
    quarantined = sum(len(warehouse.read_table("quarantine", s)) for s in ("accounts", "events", "invoices", "tickets"))
    assert quarantined > 0, "the injected faults were quarantined"


def test_champion_registered_on_the_mlflow_server_with_artifacts_in_s3(production: ProductionRun, local_run):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=production.stack.mlflow_uri)
    champion = client.get_model_version_by_alias("churn_model", "champion")
    run = client.get_run(champion.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), "artifacts go through the server"
    keys = [
        o["Key"]
        for o in s3_client(production.stack.s3_endpoint)
        .list_objects_v2(Bucket=BUCKET, Prefix="mlflow/")
        .get("Contents", [])
    ]
    assert any(k.endswith("MLmodel") for k in keys), keys[:20]
    # The same data and seeds give the same model in both profiles.
    local = MlflowClient(tracking_uri=f"sqlite:///{production.local_home / 'mlflow' / 'mlflow.db'}")
    local_champion = local.get_model_version_by_alias("churn_model", "champion")
    local_data = local.get_run(local_champion.run_id).data
    metric = "best_test_roc_auc" if "best_test_roc_auc" in local_data.metrics else "test_roc_auc"
    assert run.data.tags.get("best_candidate") == local_data.tags.get("best_candidate")
    assert run.data.metrics[metric] == pytest.approx(local_data.metrics[metric], abs=1e-6)


def test_reports_and_step_logs_are_published_to_s3(production: ProductionRun):
    client = s3_client(production.stack.s3_endpoint)
    reports = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="reports/").get("Contents", [])]
    assert "reports/feature_drift_report.html" in reports
    assert "reports/business_health.png" in reports
    logs = client.list_objects_v2(Bucket=BUCKET, Prefix="dagster/compute-logs/").get("KeyCount", 0)
    assert logs > 0, "the S3 compute log manager uploaded the steps' logs"


def test_the_daemon_ticks_the_retrain_sensor_after_the_run(production: ProductionRun):
    """The daemon evaluates `retrain_on_drift` (every 60 s) and sees the run's new drift report."""
    import dagster as dg
    from dagster._core.scheduler.instigation import TickStatus

    deadline = time.monotonic() + 180
    ticks = []
    with environment(production.stack.env), dg.DagsterInstance.get() as instance:
        while time.monotonic() < deadline:
            states = [s for s in instance.all_instigator_state() if s.name == "retrain_on_drift"]
            assert states, "the daemon knows the sensor"
            ticks = instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id, limit=20)
            after = [t for t in ticks if t.timestamp > production.finished_at and t.status != TickStatus.STARTED]
            if after:
                break
            time.sleep(5)
    assert after, f"no completed tick after the run; ticks: {[(t.timestamp, t.status) for t in ticks]}"
    tick = after[0]
    assert tick.status in (TickStatus.SKIPPED, TickStatus.SUCCESS), tick.error
    # The tick read the drift report the run materialized (its cursor moved past it).
    assert "feature_drift_report" in (tick.cursor or "")


def test_ray_serve_on_the_cluster_serves_the_champion(production: ProductionRun):
    from mlflow import MlflowClient

    from churn_platform.apps import serve_local as runner
    from churn_platform.settings import Settings
    from churn_platform_tests.business import CATALOGUE

    champion = MlflowClient(tracking_uri=production.stack.mlflow_uri).get_model_version_by_alias(
        "churn_model", "champion"
    )
    warehouse = _warehouse(production)
    row = warehouse.query("select * from marts.scoring_features order by customer_id limit 1")
    customer_id = str(int(row["customer_id"].iloc[0]))
    with environment(production.stack.env):
        settings = Settings.from_env()
        assert settings.ray_address and settings.features_uri.startswith("postgresql://")
        with runner.serving(settings, port=free_port()) as url:
            by_id = httpx.post(
                f"{url}/v1/predict/customers", json={"customer_ids": [customer_id, "no-such-customer"]}, timeout=60
            )
            record = {k: (None if pd.isna(v) else v) for k, v in row[list(CATALOGUE.names)].iloc[0].items()}
            record = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
            by_features = httpx.post(f"{url}/v1/predict", json=record, timeout=60)
            model = httpx.get(f"{url}/v1/model", timeout=30).json()
    assert by_id.status_code == 200, by_id.text
    results = by_id.json()["results"]
    assert results[0]["found"] and not results[1]["found"]
    assert by_features.status_code == 200, by_features.text
    body = by_features.json()
    assert str(body["model_version"]) == str(champion.version) == str(model["version"])
    assert body["predictions"][0]["churn_probability"] == pytest.approx(results[0]["churn_probability"], abs=1e-9)
    production.served.extend([(by_id.json()["request_id"], customer_id), (body["request_id"], None)])


def test_served_predictions_reach_monitoring(production: ProductionRun):
    """What Serve logged is loaded by a `prediction_log` run through the daemon into PostgreSQL,
    and its checks (the served features against the training set) pass."""
    import dagster as dg

    from churn_platform.apps.launch import launch_daily_pipeline, wait_for_run
    from churn_platform.settings import Settings

    assert production.served, "the serving test ran first and was answered"
    run_id = launch_daily_pipeline(
        Settings(home=production.stack.root / "scratch", days=DAYS),
        production.stack.webserver_url,
        tags={"dagster/max_retries": "0"},
        assets=["prediction_log"],
    )
    result = wait_for_run(production.stack.webserver_url, run_id, timeout_s=600)
    assert result.status == "SUCCESS", result
    production.prediction_log_run = run_id
    logged = _warehouse(production).read_table("monitoring", "prediction_log")
    by_request = logged.set_index("request_id")
    for request_id, customer_id in production.served:
        assert request_id in by_request.index, (request_id, list(by_request.index)[:5])
        if customer_id is not None:
            assert str(by_request.loc[request_id, "customer_id"]) == customer_id
    with environment(production.stack.env), dg.DagsterInstance.get() as instance:
        checks = {
            e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data.passed  # type: ignore[union-attr]
            for e in instance.all_logs(run_id)
            if e.dagster_event is not None and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
        }
    assert checks.get("served_features_match_training") is True, checks


def test_the_daemon_automates_what_follows_new_predictions(production: ProductionRun):
    """The daemon evaluates the `follow_upstream` automation sensor. After the daily run, which built
    everything, it launched nothing; after the `prediction_log` run loaded new served predictions, it
    launches one run of the assets that read the log, which succeeds."""
    import dagster as dg
    from dagster._core.scheduler.instigation import TickStatus

    from churn_platform.defs.automation import AUTOMATION_SENSOR

    assert production.prediction_log_run, "the monitoring test ran first"
    readers = set(PREDICTION_LOG_READERS)
    deadline = time.monotonic() + 300
    with environment(production.stack.env), dg.DagsterInstance.get() as instance:
        loaded = instance.get_run_record_by_id(production.prediction_log_run)
        assert loaded is not None
        while True:
            records = instance.get_run_records(filters=dg.RunsFilter(tags={"churn_platform/trigger": "automation"}))
            runs = [r.dagster_run for r in records]
            selections = {r.run_id: {k.to_user_string() for k in r.asset_selection or ()} for r in runs}
            following = [r for r in runs if selections[r.run_id] == readers]
            if following and all(
                r.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE) for r in following
            ):
                break
            assert time.monotonic() < deadline, (
                f"no finished automation run of {sorted(readers)}; automation runs: {selections}"
            )
            time.sleep(5)
        retrains = instance.get_runs(filters=dg.RunsFilter(job_name="retrain_churn_model"))
        states = [s for s in instance.all_instigator_state() if s.name == AUTOMATION_SENSOR]
        assert states, "the daemon knows the automation sensor"
        ticks = instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id, limit=200)
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in following), [(r.run_id, r.status) for r in following]
    # Each change is followed once: the new predictions (and a retraining, if the drift sensor
    # asked for one) start one run of the log's readers; the hourly cadence reloads the log alone.
    assert len(following) <= 1 + len(retrains), selections
    others = [sel for sel in selections.values() if sel != readers]
    assert all(sel == {"prediction_log"} for sel in others), selections
    # Before the new predictions were loaded, automation started nothing but the hourly reload.
    before = [
        r
        for r in records
        if r.create_timestamp < loaded.create_timestamp and selections[r.dagster_run.run_id] != {"prediction_log"}
    ]
    assert not before, [(r.dagster_run.run_id, selections[r.dagster_run.run_id]) for r in before]
    ticked = [
        t
        for t in ticks
        if t.timestamp > production.finished_at and t.status in (TickStatus.SKIPPED, TickStatus.SUCCESS)
    ]
    assert ticked, (
        f"no completed tick of {AUTOMATION_SENSOR} after the daily run: {[(t.timestamp, t.status) for t in ticks]}"
    )
    assert any(set(t.run_ids) & {r.run_id for r in following} for t in ticks), "the runs came from the sensor's ticks"
