"""The `prediction_log` asset and its checks, on real Parquet logs and a real warehouse."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churn_platform.defs.monitoring import prediction_log
from churn_platform.defs.resources import DuckDBWarehouseResource, MLflowResource, PredictionLogStore
from churn_platform.monitoring.served import compare_schema, staleness
from churn_platform.serving.prediction_log import PredictionLogWriter
from churn_platform_tests.business import CATALOGUE, business_resource, write_catalogue
from churn_platform_tests.unit.test_training import make_training_set


def log_rows(n: int, logged_at: dt.datetime, **overrides) -> list[dict]:
    return [
        {
            **CATALOGUE.example_record(),
            "request_id": f"r{i}",
            "logged_at": logged_at,
            "endpoint": "/v1/predict",
            "customer_id": str(i),
            "model_name": "churn_model",
            "model_version": "2",
            "churn_probability": 0.1 + i / (10 * n),
            **overrides,
        }
        for i in range(n)
    ]


def materialize(tmp_path, log_dir) -> dg.ExecuteInProcessResult:
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    warehouse.write_table("marts", "training_set", make_training_set(rows_per_snapshot=200, seed=3))
    write_catalogue(warehouse)
    # No version 2 in this registry: the served features are checked against the current catalogue.
    registry = MLflowResource(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        experiment_name="churn_platform",
        registered_model_name="churn_model",
    )
    return dg.materialize(
        [prediction_log],
        resources={
            "warehouse": warehouse,
            "prediction_logs": PredictionLogStore(path=str(log_dir)),
            "mlflow_store": registry,
            "business": business_resource(),
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def test_a_fresh_log_is_loaded_and_passes_its_checks(tmp_path):
    writer = PredictionLogWriter(tmp_path / "log", catalogue=CATALOGUE)
    writer.append(log_rows(25, dt.datetime.now(dt.UTC)))
    writer.flush()
    result = materialize(tmp_path, tmp_path / "log")
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["rows"].value == 25 and meta["by_model_version"].value == {"2": 25}
    found = checks(result)
    assert found["prediction_log_is_fresh"].passed
    assert found["served_features_match_training"].passed
    table = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb")).read_table("monitoring", "prediction_log")
    assert sorted(table["request_id"]) == sorted(f"r{i}" for i in range(25))


def test_an_old_or_empty_log_warns_and_unseen_categories_are_listed(tmp_path):
    empty = materialize(tmp_path, tmp_path / "nothing_here")
    assert empty.success
    check = checks(empty)["prediction_log_is_fresh"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN and "no prediction" in check.description

    writer = PredictionLogWriter(tmp_path / "old", catalogue=CATALOGUE)
    writer.append(log_rows(5, dt.datetime.now(dt.UTC) - dt.timedelta(days=3), region="antarctica"))
    writer.flush()
    old = materialize(tmp_path, tmp_path / "old")
    found = checks(old)
    assert not found["prediction_log_is_fresh"].passed and "72.0 h old" in found["prediction_log_is_fresh"].description
    schema = found["served_features_match_training"]
    assert schema.passed and schema.metadata["unseen_categories"].value == {"region": {"antarctica": 5}}


def test_served_features_of_another_type_fail_the_schema_check(tmp_path):
    writer = PredictionLogWriter(tmp_path / "log", catalogue=CATALOGUE)
    writer.append(log_rows(3, dt.datetime.now(dt.UTC)))
    writer.flush()
    # A file from another API version: seats as text, and no tenure_days.
    rows = pd.DataFrame(log_rows(2, dt.datetime.now(dt.UTC))).drop(columns=["tenure_days"])
    rows["seats"] = "eight"
    folder = next((tmp_path / "log").glob("date=*"))
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), folder / "part-other-00000001.parquet")
    result = materialize(tmp_path, tmp_path / "log")
    check = checks(result)["served_features_match_training"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["type_mismatches"].value == {"seats": "logged text, trained numeric"}


def test_staleness_and_schema_helpers():
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    frame = pd.DataFrame({"logged_at": [pd.Timestamp("2026-01-01T00:00Z")]})
    assert staleness(frame, now, 26)[0] and not staleness(frame, now, 12)[0]
    training = make_training_set(rows_per_snapshot=50, seed=1)
    assert compare_schema(training.head(0), training, CATALOGUE).matches
    missing = compare_schema(training.drop(columns=["mrr"]), training, CATALOGUE)
    assert not missing.matches and missing.missing == ["mrr"]
