"""The Prometheus exporter reads drift, model quality and freshness from a real Dagster instance."""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest

from churn_platform_tests.conftest import free_port, run_cli


def _scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=60).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


@pytest.mark.slow
def test_exporter_serves_the_pipeline_metrics_of_the_e2e_instance(e2e, monkeypatch):
    import dagster as dg

    from churn_platform.apps.cli import _exporter_sources
    from churn_platform.apps.exporter import METRIC_NAMES, serve

    monkeypatch.setenv("DAGSTER_HOME", str(e2e.settings.dagster_home))
    policies, champion_version = _exporter_sources(e2e.settings)
    port = free_port()
    server, _thread = serve(
        port, "127.0.0.1", drift_threshold=0.3, policies=policies, champion_version=champion_version
    )
    try:
        samples = _scrape(port)
    finally:
        server.shutdown()
    version = e2e.report["model"]["model_version"]
    assert samples["churn_platform_drift_share"] == pytest.approx(e2e.report["drift"]["drift_share"])
    assert samples["churn_platform_drift_threshold"] == 0.3
    assert samples[f'churn_platform_model_roc_auc{{version="{version}"}}'] == pytest.approx(
        e2e.report["model"]["roc_auc"]
    )
    assert samples[
        f'churn_platform_latest_candidate_roc_auc{{decision="promoted",version="{version}"}}'
    ] == pytest.approx(e2e.report["model"]["roc_auc"])
    assert samples['churn_platform_asset_last_materialization_timestamp_seconds{asset="churn_model"}'] > 1.7e9
    # One state per asset is 1; the exporter reports every asset of the instance. A home built by
    # `churn-platform run` has no daemon evaluations: the states come from the policies, and
    # everything was just materialized.
    with dg.DagsterInstance.from_config(str(e2e.settings.dagster_home)) as instance:
        assets = {k.to_user_string() for k in instance.get_asset_keys()}
    states = {k: v for k, v in samples.items() if k.startswith("churn_platform_asset_freshness_state")}
    for asset in assets:
        per_asset = {k: v for k, v in states.items() if f'asset="{asset}"' in k}
        assert sorted(per_asset.values()) == [0.0, 0.0, 0.0, 1.0], asset
        assert per_asset[f'churn_platform_asset_freshness_state{{asset="{asset}",state="PASS"}}'] == 1.0, asset
    # The prediction drift score needs served predictions, which the e2e run has none of.
    exported = {n.split("{")[0] for n in samples if n.startswith("churn_platform_")}
    assert set(METRIC_NAMES) - {"churn_platform_prediction_drift_score"} <= exported <= set(METRIC_NAMES)


def test_a_rejected_challenger_is_not_exported_as_the_served_model(tmp_path):
    """The champion's ROC-AUC follows the registry's alias; the latest candidate has its own metric."""
    import dagster as dg

    from churn_platform.apps.exporter import DagsterCollector

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        for version, auc, decision in (("1", 0.81, "promoted"), ("2", 0.86, "promoted"), ("3", 0.74, "rejected")):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    "churn_model", metadata={"model_version": version, "roc_auc": auc, "gate_decision": decision}
                )
            )
        collector = DagsterCollector(lambda: _borrowed(instance), champion_version=lambda: "2")
        metrics = {m.name: m.samples for m in collector.collect()}
    (champion,) = metrics["churn_platform_model_roc_auc"]
    assert champion.labels == {"version": "2"} and champion.value == 0.86
    (candidate,) = metrics["churn_platform_latest_candidate_roc_auc"]
    assert candidate.labels == {"version": "3", "decision": "rejected"} and candidate.value == 0.74


def test_freshness_state_from_the_policy():
    import dagster as dg

    from churn_platform.apps.exporter import freshness_state

    policy = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=26), warn_window=dt.timedelta(hours=24))
    now = time.time()
    assert freshness_state(policy, now - 3600, now) == "PASS"
    assert freshness_state(policy, now - 25 * 3600, now) == "WARN"
    assert freshness_state(policy, now - 27 * 3600, now) == "FAIL"
    assert freshness_state(policy, None, now) == "UNKNOWN"


def test_the_exporter_refuses_to_start_without_dagster_home(tmp_path):
    result = run_cli("exporter", "--port", str(free_port()), env={"DAGSTER_HOME": ""}, timeout=60)
    assert result.returncode == 2
    assert "DAGSTER_HOME is not set" in result.stderr and "churn-platform run" in result.stderr


class _borrowed:
    """An open instance lent to the collector without closing it."""

    def __init__(self, instance):
        self.instance = instance

    def __enter__(self):
        return self.instance

    def __exit__(self, *exc):
        return False
