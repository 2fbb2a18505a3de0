"""Prometheus metrics of the pipeline, read from the Dagster instance at each scrape.

Serving exports its own metrics from the Ray nodes; this exporter adds what only the
orchestrator knows, so that one Grafana dashboard shows both:

- ``churn_platform_drift_share``: share of drifted features in the latest feature drift report
  (and ``churn_platform_drift_threshold``, above which the retrain sensor fires);
- ``churn_platform_prediction_drift_score``: the latest served-vs-holdout probability drift;
- ``churn_platform_model_roc_auc``: the champion's holdout ROC-AUC at its training;
- ``churn_platform_asset_last_materialization_timestamp_seconds{asset}``;
- ``churn_platform_asset_freshness_state{asset,state}``: 1 for each asset's current freshness
  state (PASS, WARN, FAIL, UNKNOWN), as the freshness daemon evaluated it.

``churn-platform exporter`` serves them on ``/metrics`` (port 9188 by default).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

DEFAULT_PORT = 9188
FRESHNESS_STATES = ("PASS", "WARN", "FAIL", "UNKNOWN")
METRIC_NAMES = (
    "churn_platform_drift_share",
    "churn_platform_drift_threshold",
    "churn_platform_prediction_drift_score",
    "churn_platform_model_roc_auc",
    "churn_platform_asset_last_materialization_timestamp_seconds",
    "churn_platform_asset_freshness_state",
)


def _latest_metadata(instance, key, name: str) -> float | None:
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    entry = event.asset_materialization.metadata.get(name)
    if entry is None:
        return None
    try:
        value = float(entry.value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


class DagsterCollector:
    """A prometheus_client collector over a Dagster instance (opened per scrape by ``instance_factory``)."""

    def __init__(self, instance_factory, drift_threshold: float | None = None):
        self._instance_factory = instance_factory
        self._drift_threshold = drift_threshold

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator:
        import dagster as dg
        from prometheus_client.core import GaugeMetricFamily

        with self._instance_factory() as instance:
            keys = sorted(instance.get_asset_keys(), key=lambda k: k.to_user_string())
            single = {
                "churn_platform_drift_share": ("Share of drifted features in the latest feature drift report", "feature_drift_report", "drift_share"),
                "churn_platform_prediction_drift_score": ("Drift score of served probabilities against the holdout's", "prediction_drift_report", "drift_score"),
                "churn_platform_model_roc_auc": ("Holdout ROC-AUC of the latest trained model", "churn_model", "roc_auc"),
            }
            for name, (documentation, asset, field) in single.items():
                value = _latest_metadata(instance, dg.AssetKey(asset), field)
                if value is not None:
                    yield GaugeMetricFamily(name, documentation, value=value)
            if self._drift_threshold is not None:
                yield GaugeMetricFamily("churn_platform_drift_threshold", "Drift share above which the retrain sensor fires", value=self._drift_threshold)

            last = GaugeMetricFamily(
                "churn_platform_asset_last_materialization_timestamp_seconds",
                "Unix time of each asset's latest materialization",
                labels=["asset"],
            )
            for key in keys:
                event = instance.get_latest_materialization_event(key)
                if event is not None:
                    last.add_metric([key.to_user_string()], event.timestamp)
            yield last

            freshness = GaugeMetricFamily(
                "churn_platform_asset_freshness_state",
                "1 for each asset's current freshness state (PASS, WARN, FAIL, UNKNOWN)",
                labels=["asset", "state"],
            )
            records = instance.get_freshness_state_records(keys) if keys else {}
            for key in keys:
                record = records.get(key)
                current = record.freshness_state.value if record is not None else "UNKNOWN"
                if current == "NOT_APPLICABLE":
                    continue
                for state in FRESHNESS_STATES:
                    freshness.add_metric([key.to_user_string(), state], 1.0 if state == current else 0.0)
            yield freshness


def serve(port: int = DEFAULT_PORT, host: str = "0.0.0.0", drift_threshold: float | None = None):
    """Serve the metrics of the instance at ``DAGSTER_HOME`` on ``http://host:port/metrics``."""
    import dagster as dg
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(DagsterCollector(dg.DagsterInstance.get, drift_threshold))
    return start_http_server(port, addr=host, registry=registry)
