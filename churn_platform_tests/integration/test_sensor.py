"""The retrain-on-drift sensor against a real Dagster instance."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from churn_platform.defs.automation import DRIFT_REPORT_KEY, ESTIMATE_KEY, PERFORMANCE_KEY, build_retrain_on_drift


@pytest.fixture
def instance(tmp_path):
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
        yield inst


def report_drift(instance: dg.DagsterInstance, share: float) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(DRIFT_REPORT_KEY, metadata={"drift_share": share}))


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None):
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_no_report_yet_skips(instance):
    result = tick(build_retrain_on_drift(0.3), instance, None)
    assert result.run_requests == []
    assert "no new feature_drift_report" in result.skip_message


def test_drift_over_the_threshold_requests_one_retraining_once(instance):
    sensor = build_retrain_on_drift(0.3)
    report_drift(instance, 0.55)
    first = tick(sensor, instance, None)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.run_key.startswith("feature_drift_report:")
    assert request.tags["churn_platform/trigger"] == "drift"
    # The same report seen again (the cursor moved past it) triggers nothing.
    second = tick(sensor, instance, first.cursor)
    assert second.run_requests == []
    # A new drifted report triggers a new retraining with a new run key.
    report_drift(instance, 0.6)
    third = tick(sensor, instance, second.cursor or first.cursor)
    assert len(third.run_requests) == 1
    assert third.run_requests[0].run_key != request.run_key


def test_drift_within_the_threshold_skips_and_moves_the_cursor(instance):
    sensor = build_retrain_on_drift(0.3)
    report_drift(instance, 0.1)
    result = tick(sensor, instance, None)
    assert result.run_requests == []
    assert "within 0.30" in result.skip_message
    assert result.cursor is not None


def test_several_drifted_reports_between_ticks_give_one_retraining(instance):
    sensor = build_retrain_on_drift(0.3)
    for share in (0.4, 0.5, 0.7):
        report_drift(instance, share)
    result = tick(sensor, instance, None)
    assert len(result.run_requests) == 1
    assert result.run_requests[0].tags["churn_platform/drift_share"] == "0.7000"


def report_performance(instance: dg.DagsterInstance, roc_auc: float) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(PERFORMANCE_KEY, metadata={"roc_auc": roc_auc}))


def test_decayed_performance_requests_one_retraining_once(instance):
    sensor = build_retrain_on_drift(0.3, performance_floor=0.7)
    report_performance(instance, 0.74)
    healthy = tick(sensor, instance, None)
    assert healthy.run_requests == [] and "ROC-AUC 0.740 at or above 0.70" in healthy.skip_message
    report_performance(instance, 0.62)
    decayed = tick(sensor, instance, healthy.cursor)
    (request,) = decayed.run_requests
    assert request.run_key.startswith("model_performance:")
    assert request.tags["churn_platform/trigger"] == "performance"
    assert request.tags["churn_platform/matured_roc_auc"] == "0.6200"
    assert tick(sensor, instance, decayed.cursor).run_requests == []


def test_drift_and_decay_together_give_one_retraining_naming_both(instance):
    sensor = build_retrain_on_drift(0.3, performance_floor=0.7)
    report_drift(instance, 0.5)
    report_performance(instance, 0.6)
    (request,) = tick(sensor, instance, None).run_requests
    assert request.tags["churn_platform/trigger"] == "drift+performance"
    assert "feature_drift_report:" in request.run_key and "model_performance:" in request.run_key


def test_a_cursor_of_the_earlier_format_is_still_read(instance):
    sensor = build_retrain_on_drift(0.3)
    report_drift(instance, 0.9)
    first = tick(sensor, instance, None)
    old_style = str(json.loads(first.cursor)["feature_drift_report"])
    assert tick(sensor, instance, old_style).run_requests == []


def report_estimate(instance: dg.DagsterInstance, roc_auc: float, month: str = "2025-11", version: str = "3") -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            ESTIMATE_KEY, metadata={"estimated_roc_auc": roc_auc, "month": month, "model_version": version}
        )
    )


def test_an_estimate_below_the_floor_requests_one_retraining_per_month_and_version(instance):
    sensor = build_retrain_on_drift(0.3, performance_floor=0.7)
    report_estimate(instance, 0.78)
    healthy = tick(sensor, instance, None)
    assert healthy.run_requests == [] and "none below 0.70" in healthy.skip_message
    report_estimate(instance, 0.64)
    (request,) = tick(sensor, instance, healthy.cursor).run_requests
    assert request.run_key == "estimated_performance:2025-11:v3"
    assert request.tags["churn_platform/trigger"] == "estimate"
    assert request.tags["churn_platform/estimated_roc_auc"] == "0.6400"
    assert "outcomes not matured yet" in request.tags["churn_platform/reason"]
    # The same month and version estimated low again has the same run key: Dagster starts it once.
    report_estimate(instance, 0.63)
    (again,) = tick(sensor, instance, None).run_requests
    assert again.run_key == request.run_key
