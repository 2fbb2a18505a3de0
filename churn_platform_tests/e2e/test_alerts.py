"""Alerts: the notifier against a local webhook, and the sensors that feed it, on a real instance."""

from __future__ import annotations

import time

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

from churn_platform.defs.alerts import alert_on_failed_checks, alert_on_freshness, alert_on_run_failure
from churn_platform.defs.resources import Notifier
from churn_platform.monitoring.alerts import Alert, deliver
from churn_platform_tests.conftest import WebhookReceiver


def fields_of(body: dict) -> dict[str, str]:
    return {f["title"]: f["value"] for f in body["attachments"][0]["fields"]}


def run_status_context(sensor_name: str, instance, result, event_type, webhook):
    """The context a run-status sensor gets for ``result``'s run, at its event of ``event_type``."""
    (event,) = [e for e in result.all_events if e.event_type == event_type]
    return dg.build_run_status_sensor_context(
        sensor_name=sensor_name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=event,
        resources={"notifier": Notifier(webhook_url=webhook.url)},
    )


def test_an_alert_is_posted_in_slack_format(webhook):
    assert deliver(Alert("promotion", "churn_model version 4 promoted", {"roc_auc": 0.84}), webhook.url)
    (body,) = webhook.received
    assert body["text"] == "[churn_platform] churn_model version 4 promoted"
    fields = fields_of(body)
    assert fields == {"kind": "promotion", "roc_auc": "0.84"}


def test_delivery_never_raises_and_says_whether_it_was_posted(caplog):
    assert deliver(Alert("run_failed", "run failed"), None) is False  # logged only
    broken = WebhookReceiver(fail=True)
    try:
        assert deliver(Alert("run_failed", "run failed"), broken.url) is False
        assert len(broken.received) == 1
    finally:
        broken.close()
    assert deliver(Alert("run_failed", "run failed"), "http://127.0.0.1:9/nowhere", timeout_s=1) is False
    assert "not delivered" in caplog.text
    with pytest.raises(ValueError, match="unknown alert kind"):
        Alert("gossip", "x")


def _freshness(new: FreshnessState, previous: FreshnessState) -> FreshnessStateChange:
    return FreshnessStateChange(
        key=dg.AssetKey("churn_model"), new_state=new, previous_state=previous, state_change_timestamp=time.time()
    )


def test_freshness_failures_alert_once(tmp_path, webhook):
    instance = dg.DagsterInstance.local_temp(str(tmp_path))
    resources = {"notifier": Notifier(webhook_url=webhook.url)}
    for new, previous in (
        (FreshnessState.WARN, FreshnessState.PASS),
        (FreshnessState.FAIL, FreshnessState.WARN),
        (FreshnessState.PASS, FreshnessState.FAIL),
    ):
        instance.report_runless_asset_event(_freshness(new, previous))
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = alert_on_freshness(context)
        cursor = context.cursor
    assert webhook.kinds() == ["freshness_warned", "freshness_failed"]
    assert "churn_model is stale (freshness WARN → FAIL)" in webhook.texts()[1]
    assert "2 freshness alert(s) sent" in result.skip_message
    # The cursor moved past those changes: evaluating again sends nothing; a new change is the only new alert.
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as again:
        assert "no asset turned stale" in alert_on_freshness(again).skip_message
    assert len(webhook.received) == 2
    instance.report_runless_asset_event(_freshness(FreshnessState.FAIL, FreshnessState.PASS))
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as third:
        alert_on_freshness(third)
    assert len(webhook.received) == 3


@dg.asset(
    check_specs=[dg.AssetCheckSpec("rows_present", asset="scored"), dg.AssetCheckSpec("ids_unique", asset="scored")]
)
def scored():
    yield dg.Output(1)
    yield dg.AssetCheckResult(check_name="rows_present", passed=True)
    yield dg.AssetCheckResult(
        check_name="ids_unique", passed=False, severity=dg.AssetCheckSeverity.WARN, metadata={"duplicates": 4}
    )


def test_failed_checks_of_a_successful_run_alert(tmp_path, webhook):
    instance = dg.DagsterInstance.local_temp(str(tmp_path))
    result = dg.materialize([scored], instance=instance)
    assert result.success
    with run_status_context(
        "alert_on_failed_checks", instance, result, dg.DagsterEventType.RUN_SUCCESS, webhook
    ) as context:
        alert_on_failed_checks(context)
    (body,) = webhook.received  # the passed check sends nothing
    assert body["text"] == "[churn_platform] check scored:ids_unique warned"
    fields = fields_of(body)
    assert fields["kind"] == "check_warned" and fields["duplicates"] == "4" and fields["run_id"] == result.run_id


def test_a_failed_run_alerts_with_its_error(tmp_path, webhook):
    @dg.asset
    def fragile():
        raise RuntimeError("the warehouse is locked")

    instance = dg.DagsterInstance.local_temp(str(tmp_path))
    result = dg.materialize([fragile], instance=instance, raise_on_error=False)
    assert not result.success
    with run_status_context(
        "alert_on_run_failure", instance, result, dg.DagsterEventType.RUN_FAILURE, webhook
    ) as context:
        alert_on_run_failure(context.for_run_failure())
    (body,) = webhook.received
    assert f"run {result.run_id[:8]}" in body["text"] and "failed" in body["text"]
    fields = fields_of(body)
    assert fields["kind"] == "run_failed" and fields["run_id"] == result.run_id


def _kinds(bodies: list[dict]) -> list[str]:
    return [fields_of(b).get("kind") for b in bodies]


@pytest.mark.slow
def test_a_cli_run_posts_the_alerts_the_daemon_would(e2e):
    """`churn-platform run` has no daemon: it sends its checks' alerts itself, beside the promotion."""
    kinds = _kinds(e2e.alerts)
    assert "promotion" in kinds, kinds
    warned = sorted(f"{fields_of(b)['check']}" for b in e2e.alerts if fields_of(b).get("kind") == "check_warned")
    expected = sorted(e2e.report["warned_checks"])
    assert warned == expected and "prediction_log:prediction_log_is_fresh" in warned, (warned, expected)


def test_a_failed_cli_run_posts_its_error(tmp_path, webhook):
    import json

    from churn_platform.simulation.businesses import declaration_path
    from churn_platform_tests.conftest import run_cli

    (tmp_path / "empty").mkdir()
    result = run_cli(
        "run",
        "--sources",
        str(tmp_path / "empty"),
        "--config",
        str(declaration_path("saas_b2b")),
        "--home",
        str(tmp_path / "home"),
        "--log-level",
        "WARNING",
        # Set partitions: the data's own dates cannot be read from an empty folder.
        env={
            "CHURN_PLATFORM_ALERT_WEBHOOK_URL": webhook.url,
            "CHURN_PLATFORM_PARTITIONS_START": "2025-01-01",
            "CHURN_PLATFORM_PARTITIONS_END": "2025-03-01",
        },
    )
    assert result.returncode == 1
    missing = "source file not found: expected crm_customers.parquet or crm_customers.csv"
    assert missing in result.stderr, result.stderr[-2000:]
    assert _kinds(webhook.received) == ["run_failed"]
    assert missing in fields_of(webhook.received[0])["error"]
    # The run report is written for a failed run too: the failed step and its error, the real one.
    report = json.loads((tmp_path / "home" / "run_report.json").read_text())
    assert report["status"] == "FAILURE"
    assert any(missing in f["error"] for f in report["failures"]), report["failures"]
    assert "failed step" in result.stdout and missing in result.stdout
