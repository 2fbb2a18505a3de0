"""The Prometheus exporter reads drift, model quality and freshness from a real Dagster instance."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.slow


def test_exporter_serves_the_pipeline_metrics_of_the_e2e_instance(e2e, monkeypatch):
    import socket

    import dagster as dg

    from churn_platform.monitoring.exporter import METRIC_NAMES, serve

    monkeypatch.setenv("DAGSTER_HOME", str(e2e.settings.dagster_home))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = serve(port, "127.0.0.1", drift_threshold=0.3)
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    finally:
        server.shutdown()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples["churn_platform_drift_share"] == pytest.approx(e2e.report["drift"]["drift_share"])
    assert samples["churn_platform_drift_threshold"] == 0.3
    assert samples["churn_platform_model_roc_auc"] == pytest.approx(e2e.report["model"]["roc_auc"])
    assert samples['churn_platform_asset_last_materialization_timestamp_seconds{asset="churn_model"}'] > 1.7e9
    # One state per asset is 1; the exporter reports every asset of the instance.
    with dg.DagsterInstance.from_config(str(e2e.settings.dagster_home)) as instance:
        assets = {k.to_user_string() for k in instance.get_asset_keys()}
    states = {k: v for k, v in samples.items() if k.startswith("churn_platform_asset_freshness_state")}
    for asset in assets:
        per_asset = [v for k, v in states.items() if f'asset="{asset}"' in k]
        assert sorted(per_asset) == [0.0, 0.0, 0.0, 1.0], asset
    # The prediction drift score needs served predictions, which the e2e run has none of.
    exported = {n.split("{")[0] for n in samples if n.startswith("churn_platform_")}
    assert set(METRIC_NAMES) - {"churn_platform_prediction_drift_score"} <= exported <= set(METRIC_NAMES)
