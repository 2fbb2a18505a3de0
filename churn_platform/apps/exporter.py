"""Prometheus metrics of the pipeline, read from the Dagster instance at each scrape.

Serving exports its own metrics from the Ray nodes; this exporter adds what only the
orchestrator knows, so that one Grafana dashboard shows both:

- ``churn_platform_drift_share``: share of drifted features in the latest feature drift report
  (and ``churn_platform_drift_threshold``, above which the retrain sensor fires);
- ``churn_platform_prediction_drift_score``: the latest served-vs-holdout probability drift;
- ``churn_platform_estimated_roc_auc``: the ROC-AUC estimated from the scores of the latest month
  whose outcomes have not matured (``estimated_performance``);
- ``churn_platform_max_segment_drift_share`` and ``churn_platform_attribution_drift``: the most
  drifted segment's drift share and the attribution drift (``segment_drift_report``);
- ``churn_platform_model_roc_auc{version}``: the holdout ROC-AUC, at its training, of the model
  version that the registry's ``champion`` alias points to (what is served);
- ``churn_platform_latest_candidate_roc_auc{version,decision}``: the same for the latest trained
  version, whether the gate promoted or rejected it;
- ``churn_platform_asset_last_materialization_timestamp_seconds{asset}``;
- ``churn_platform_asset_freshness_state{asset,state}``: 1 for each asset's current freshness
  state (PASS, WARN, FAIL, UNKNOWN). Where Dagster has evaluated the asset's freshness policy
  (a deployment with the daemon), that state; otherwise it is computed from the latest
  materialization and the policy, as Dagster would; UNKNOWN only for an asset never materialized.

``churn-platform exporter`` serves them on ``/metrics`` (127.0.0.1:9188 by default).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_PORT = 9188
DEFAULT_HOST = "127.0.0.1"
FRESHNESS_STATES = ("PASS", "WARN", "FAIL", "UNKNOWN")
METRIC_NAMES = (
    "churn_platform_drift_share",
    "churn_platform_drift_threshold",
    "churn_platform_prediction_drift_score",
    "churn_platform_estimated_roc_auc",
    "churn_platform_max_segment_drift_share",
    "churn_platform_attribution_drift",
    "churn_platform_model_roc_auc",
    "churn_platform_latest_candidate_roc_auc",
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


def _metadata(event) -> Mapping[str, Any]:
    materialization = event.asset_materialization if event is not None else None
    return {k: v.value for k, v in materialization.metadata.items()} if materialization is not None else {}


def freshness_state(policy, last_materialized: float | None, now: float) -> str:
    """A time-window freshness policy's state from the latest materialization's time: FAIL when
    older than the fail window, WARN when older than the warn window, else PASS; UNKNOWN when
    never materialized or the policy is not a time window."""
    fail = getattr(policy, "fail_window", None)
    if last_materialized is None or fail is None:
        return "UNKNOWN"
    age = dt.timedelta(seconds=now - last_materialized)
    if age > fail.to_timedelta():
        return "FAIL"
    warn = getattr(policy, "warn_window", None)
    if warn is not None and age > warn.to_timedelta():
        return "WARN"
    return "PASS"


class DagsterCollector:
    """A prometheus_client collector over a Dagster instance (opened per scrape by ``instance_factory``).

    ``policies`` are the assets' freshness policies (for assets Dagster has not evaluated);
    ``champion_version`` returns the version the registry's champion alias points to, or None."""

    def __init__(
        self,
        instance_factory,
        drift_threshold: float | None = None,
        policies: Mapping[Any, Any] | None = None,
        champion_version: Callable[[], str | None] | None = None,
    ):
        self._instance_factory = instance_factory
        self._drift_threshold = drift_threshold
        self._policies = dict(policies or {})
        self._champion_version = champion_version

    def describe(self) -> list:
        return []

    def _model_metrics(self, instance) -> Iterator:
        import dagster as dg
        from prometheus_client.core import GaugeMetricFamily

        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("churn_model")), limit=200, ascending=False
        ).records
        trained = [_metadata(r.event_log_entry) for r in records]
        if trained and trained[0].get("roc_auc") is not None:
            latest = trained[0]
            candidate = GaugeMetricFamily(
                "churn_platform_latest_candidate_roc_auc",
                "Holdout ROC-AUC of the latest trained model version, promoted or not",
                labels=["version", "decision"],
            )
            candidate.add_metric(
                [str(latest.get("model_version")), str(latest.get("gate_decision", "unknown"))],
                float(latest["roc_auc"]),
            )
            yield candidate
        if self._champion_version is None:
            return
        try:
            version = self._champion_version()
        except Exception as exc:  # the registry is down or unreachable: no champion metric this scrape
            log.warning("cannot read the champion alias from the registry: %s", exc)
            return
        match = next((m for m in trained if str(m.get("model_version")) == str(version)), None)
        if version is None or match is None or match.get("roc_auc") is None:
            return
        champion = GaugeMetricFamily(
            "churn_platform_model_roc_auc",
            "Holdout ROC-AUC, at its training, of the model version the champion alias points to (the served model)",
            labels=["version"],
        )
        champion.add_metric([str(version)], float(match["roc_auc"]))
        yield champion

    def collect(self) -> Iterator:
        import dagster as dg
        from prometheus_client.core import GaugeMetricFamily

        with self._instance_factory() as instance:
            keys = sorted(instance.get_asset_keys(), key=lambda k: k.to_user_string())
            single = {
                "churn_platform_drift_share": (
                    "Share of drifted features in the latest feature drift report",
                    "feature_drift_report",
                    "drift_share",
                ),
                "churn_platform_prediction_drift_score": (
                    "Drift score of served probabilities against the holdout's",
                    "prediction_drift_report",
                    "drift_score",
                ),
                "churn_platform_estimated_roc_auc": (
                    "ROC-AUC estimated from the scores of the latest month awaiting its outcomes",
                    "estimated_performance",
                    "estimated_roc_auc",
                ),
                "churn_platform_max_segment_drift_share": (
                    "Drift share of the most drifted segment of customers",
                    "segment_drift_report",
                    "max_segment_drift_share",
                ),
                "churn_platform_attribution_drift": (
                    "Total variation distance between the champion's attribution shares in training and now",
                    "segment_drift_report",
                    "attribution_drift",
                ),
            }
            for name, (documentation, asset, field) in single.items():
                value = _latest_metadata(instance, dg.AssetKey(asset), field)
                if value is not None:
                    yield GaugeMetricFamily(name, documentation, value=value)
            if self._drift_threshold is not None:
                yield GaugeMetricFamily(
                    "churn_platform_drift_threshold",
                    "Drift share above which the retrain sensor fires",
                    value=self._drift_threshold,
                )
            yield from self._model_metrics(instance)

            last = GaugeMetricFamily(
                "churn_platform_asset_last_materialization_timestamp_seconds",
                "Unix time of each asset's latest materialization",
                labels=["asset"],
            )
            latest_times = {}
            for key in keys:
                event = instance.get_latest_materialization_event(key)
                if event is not None:
                    latest_times[key] = event.timestamp
                    last.add_metric([key.to_user_string()], event.timestamp)
            yield last

            freshness = GaugeMetricFamily(
                "churn_platform_asset_freshness_state",
                "1 for each asset's current freshness state (PASS, WARN, FAIL, UNKNOWN): Dagster's evaluation where "
                "it has one, else computed from the latest materialization and the asset's freshness policy; "
                "UNKNOWN: never materialized",
                labels=["asset", "state"],
            )
            records = instance.get_freshness_state_records(keys) if keys else {}
            now = time.time()
            for key in keys:
                record = records.get(key)
                if record is not None:
                    current = record.freshness_state.value
                elif key in self._policies:
                    current = freshness_state(self._policies[key], latest_times.get(key), now)
                else:
                    current = "NOT_APPLICABLE"
                if current == "NOT_APPLICABLE":
                    continue
                for state in FRESHNESS_STATES:
                    freshness.add_metric([key.to_user_string(), state], 1.0 if state == current else 0.0)
            yield freshness


class ExporterConfigError(RuntimeError):
    """The exporter cannot start; the message says what to set."""


def instance_home() -> str:
    """The Dagster instance folder the exporter reads: ``DAGSTER_HOME``, which must be set."""
    import os
    from pathlib import Path

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ExporterConfigError(
            "DAGSTER_HOME is not set: the exporter reads the Dagster instance in that folder. Set it to the "
            "instance of your deployment, or to <home>/dagster for a home built by `churn-platform run` "
            "(for the demo: DAGSTER_HOME=$PWD/.churn_home/demo/dagster)"
        )
    path = Path(home).resolve()
    if not path.is_dir():
        raise ExporterConfigError(f"DAGSTER_HOME={home} is not a folder: point it at a Dagster instance's folder")
    return str(path)


def serve(
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    drift_threshold: float | None = None,
    policies: Mapping[Any, Any] | None = None,
    champion_version: Callable[[], str | None] | None = None,
):
    """Serve the metrics of the instance at ``DAGSTER_HOME`` on ``http://host:port/metrics``."""
    import dagster as dg
    from prometheus_client import CollectorRegistry, start_http_server

    instance_home()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DagsterCollector(dg.DagsterInstance.get, drift_threshold, policies, champion_version))
    return start_http_server(port, addr=host, registry=registry)
