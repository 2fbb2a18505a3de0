"""The retrain-on-drift sensor against a real Dagster instance."""

from __future__ import annotations

import dagster as dg
import pytest

from churn_platform.defs.automation import DRIFT_REPORT_KEY, build_retrain_on_drift


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
