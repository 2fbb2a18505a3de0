"""The closed loop, end to end: drift detected → retraining → promotion gate → served.

`run_closed_loop` drives the real pieces against one platform home: the Dagster instance
the pipeline ran in, the `retrain_on_drift` sensor evaluated against that instance, the
`retrain_churn_model` job executed in it with the sensor's run request, the MLflow registry
where the gate moves the alias, and the Ray Serve deployment that hot-swaps to the promoted
version. Each step is timed and recorded; the sensor is then evaluated again to show that
one drift report triggers one retraining.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import httpx

from churn_platform.settings import CHAMPION_ALIAS, Settings


def api_example(url: str) -> dict[str, Any]:
    """The API's own example record of /v1/predict (its OpenAPI document, from the served model's catalogue)."""
    document = httpx.get(f"{url}/openapi.json", timeout=10).json()
    body = document["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    return body["examples"]["one"]["value"]


@dataclasses.dataclass
class LoopStep:
    name: str
    seconds: float
    detail: dict[str, Any]


@dataclasses.dataclass
class LoopReport:
    steps: list[LoopStep] = dataclasses.field(default_factory=list)
    outcome: str = "not run"

    def add(self, name: str, started: float, **detail: Any) -> LoopStep:
        step = LoopStep(name, round(time.monotonic() - started, 2), detail)
        self.steps.append(step)
        return step

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "steps": [dataclasses.asdict(s) for s in self.steps]}


def _served_version(url: str) -> str | None:
    try:
        return httpx.get(f"{url}/health", timeout=5).json().get("model_version")
    except httpx.HTTPError:
        return None


def run_closed_loop(
    settings: Settings,
    url: str,
    swap_timeout_s: float = 60.0,
    say: Callable[[str], None] = print,
) -> LoopReport:
    """One turn of the loop on a home whose pipeline has run and whose champion ``url`` serves."""
    import dagster as dg

    from churn_platform.apps.location import platform_definitions
    from churn_platform.defs.ml import GATE_CHECK

    report = LoopReport()
    defs = platform_definitions(settings)
    sensor = defs.resolve_sensor_def("retrain_on_drift")
    job = defs.resolve_job_def("retrain_churn_model")
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        started = time.monotonic()
        before = _served_version(url)
        drift = instance.get_latest_materialization_event(dg.AssetKey("feature_drift_report"))
        share = drift.asset_materialization.metadata["drift_share"].value if drift else None
        with dg.build_sensor_context(instance=instance, definitions=defs) as context:
            tick = sensor.evaluate_tick(context)
        report.add(
            "sensor",
            started,
            drift_share=share,
            threshold=settings.drift_threshold,
            run_requests=len(tick.run_requests),
            skip=tick.skip_message,
            served_version=before,
        )
        if not tick.run_requests:
            report.outcome = f"no retraining: {tick.skip_message}"
            say(f"  sensor: {tick.skip_message}")
            return report
        request = tick.run_requests[0]
        say(
            f"  sensor: drift share {share:.2f} > {settings.drift_threshold:.2f} → retraining requested (run key {request.run_key})"
        )

        started = time.monotonic()
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            asset_selection=list(request.asset_selection or []) or None,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            tags={**request.tags, "dagster/run_key": request.run_key or ""},
        )
        meta = {}
        for event in result.get_asset_materialization_events():
            if event.asset_key == dg.AssetKey("churn_model"):
                meta = {k: v.value for k, v in event.materialization.metadata.items()}
        gate = [c for c in result.get_asset_check_evaluations() if c.check_name == GATE_CHECK]
        step = report.add(
            "retraining",
            started,
            run_id=result.run_id,
            success=result.success,
            model_version=meta.get("model_version"),
            alias=meta.get("alias"),
            candidate=meta.get("candidate"),
            roc_auc=meta.get("roc_auc"),
            gate=gate[0].description if gate else None,
            champion_version_before=meta.get("champion_version"),
        )
        say(
            f"  retraining run {result.run_id[:8]}: version {meta.get('model_version')} ({meta.get('candidate')}), "
            f"gate: {step.detail['gate']}"
        )
        if not result.success and meta.get("alias") != "challenger":
            report.outcome = "retraining failed"
            return report

        started = time.monotonic()
        new_version = str(meta.get("model_version"))
        if meta.get("alias") == CHAMPION_ALIAS:
            deadline = time.monotonic() + swap_timeout_s
            while _served_version(url) != new_version and time.monotonic() < deadline:
                time.sleep(0.2)
            served = _served_version(url)
            probe = httpx.post(f"{url}/v1/predict", json=api_example(url), timeout=10).json()
            report.add("hot_swap", started, served_version=served, predicted_by=probe.get("model_version"))
            say(
                f"  serving: version {served} answers (was {before}), {report.steps[-1].seconds:.1f} s after the retraining run ended"
            )
            report.outcome = (
                "promoted and served" if served == new_version else f"promoted, but serving still answers with {served}"
            )
        else:
            report.add(
                "hot_swap",
                started,
                served_version=_served_version(url),
                skipped="not promoted: the champion keeps serving",
            )
            report.outcome = f"retrained; version {new_version} kept as {meta.get('alias')}"

        started = time.monotonic()
        with dg.build_sensor_context(instance=instance, definitions=defs, cursor=tick.cursor) as context:
            again = sensor.evaluate_tick(context)
        report.add("sensor_again", started, run_requests=len(again.run_requests), skip=again.skip_message)
        say(f"  sensor again: {len(again.run_requests)} run request(s) ({again.skip_message})")
    return report
