"""The closed loop for real: a drifted source, the pipeline, the sensor evaluated against the
Dagster instance, the retraining run, the promotion gate, and Ray Serve swapping to the new version."""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest
from mlflow import MlflowClient

from churn_platform.apps import serve_local as runner
from churn_platform.apps.loop import run_closed_loop
from churn_platform.apps.pipeline import run_pipeline
from churn_platform.serving.config import PointerOptions
from churn_platform.settings import Settings
from churn_platform.simulation.generator import GeneratorConfig, generate_to_dir
from churn_platform_tests.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_drift_triggers_one_retraining_whose_promoted_version_is_served(tmp_path, monkeypatch):
    sources = tmp_path / "sources"
    generate_to_dir(GeneratorConfig(customers=1_500, days=365, seed=11, drift_scenario="usage_shift"), sources)
    settings = Settings(home=tmp_path / "home", sources=str(sources), drift_threshold=0.2)
    for key in [k for k in os.environ if k.startswith("CHURN_PLATFORM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    report = run_pipeline(settings, log_level="WARNING")
    assert report.drift["drift_share"] > 0.2 and report.model["alias"] == "champion"

    url = runner.start(
        settings, port=free_port(), pointer=PointerOptions(poll_interval_s=0.5), metrics_port=free_port()
    )
    try:
        loop = run_closed_loop(settings, url, say=lambda _: None)
    finally:
        runner.stop()
    steps = {s.name: s.detail for s in loop.steps}
    assert loop.outcome == "promoted and served", json.dumps(loop.as_dict(), default=str)
    assert steps["sensor"]["run_requests"] == 1 and steps["sensor"]["served_version"] == "1"
    assert steps["retraining"]["success"] and steps["retraining"]["model_version"] == "2"
    assert steps["retraining"]["alias"] == "champion"
    assert steps["hot_swap"]["served_version"] == "2" == steps["hot_swap"]["predicted_by"]
    assert steps["sensor_again"]["run_requests"] == 0  # one drift report, one retraining

    client = MlflowClient(settings.mlflow_tracking_uri)
    assert str(client.get_model_version_by_alias("churn_model", "champion").version) == "2"
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        (run,) = [r for r in instance.get_runs() if r.job_name == "retrain_churn_model"]
        assert run.tags["churn_platform/trigger"] == "drift"
        assert run.tags["dagster/run_key"].startswith("feature_drift_report:")
