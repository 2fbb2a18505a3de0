"""Ray Serve for real, over HTTP, serving the champion that the end-to-end run registered."""

from __future__ import annotations

import json
import socket

import duckdb
import httpx
import pytest

from churn_platform.features import FEATURE_NAMES, example_record
from churn_platform.ml.registry import MLflowLocation, load_by_alias
from churn_platform.serving import runner
from churn_platform.settings import CHAMPION_ALIAS, EXPERIMENT_NAME, REGISTERED_MODEL_NAME

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(e2e):
    e2e.settings.export()
    url = runner.start(e2e.settings, port=free_port())
    try:
        yield url
    finally:
        runner.stop()


@pytest.fixture(scope="module")
def scoring_rows(e2e):
    with duckdb.connect(str(e2e.settings.warehouse_path), read_only=True) as con:
        return con.execute("select * from marts.scoring_features order by customer_id limit 20").df()


def records(frame):
    return json.loads(frame[list(FEATURE_NAMES)].to_json(orient="records"))


def test_health_reports_the_loaded_version(served, e2e):
    r = httpx.get(f"{served}/health")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ready",
        "model_name": REGISTERED_MODEL_NAME,
        "model_version": str(e2e.report["model"]["model_version"]),
        "detail": None,
    }


def test_prediction_over_http_equals_the_registered_model_in_process(served, e2e, scoring_rows):
    model = load_by_alias(MLflowLocation(e2e.settings.mlflow_tracking_uri, EXPERIMENT_NAME), REGISTERED_MODEL_NAME, CHAMPION_ALIAS)
    expected = model.predict_proba(scoring_rows)
    for record, want in zip(records(scoring_rows)[:5], expected[:5]):
        r = httpx.post(f"{served}/predict", json=record)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_version"] == model.version
        assert body["churn_probability"] == pytest.approx(float(want), abs=1e-9)
        assert len(body["request_id"]) == 32


def test_invalid_input_is_a_422_naming_the_field(served):
    record = example_record()
    record["contract_type"] = "lifetime"
    r = httpx.post(f"{served}/predict", json=record)
    assert r.status_code == 422
    fields = {tuple(e["loc"]) for e in r.json()["detail"]}
    assert fields == {("body", "contract_type")}


def test_missing_negative_and_unknown_fields_are_each_named(served):
    record = example_record()
    del record["tenure_days"]
    record["seats"] = -3
    record["favourite_colour"] = "blue"
    r = httpx.post(f"{served}/predict", json=record)
    assert r.status_code == 422
    fields = {e["loc"][-1] for e in r.json()["detail"]}
    assert fields == {"tenure_days", "seats", "favourite_colour"}


def test_malformed_json_is_a_4xx_not_a_crash(served):
    r = httpx.post(f"{served}/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500


def test_openapi_documents_predict_with_every_feature(served):
    spec = httpx.get(f"{served}/openapi.json").json()
    assert "/predict" in spec["paths"] and "/health" in spec["paths"]
    props = spec["components"]["schemas"]["CustomerFeatures"]["properties"]
    assert set(props) == set(FEATURE_NAMES)


def test_a_missing_model_leaves_the_app_up_but_degraded(served, e2e):
    from ray import serve

    from churn_platform.serving.app import build_app

    serve.run(
        build_app(e2e.settings.mlflow_tracking_uri, "no_such_model"),
        name="degraded",
        route_prefix="/degraded",
        blocking=False,
    )
    try:
        runner.wait_until_up(f"{served}/degraded")
        health = httpx.get(f"{served}/degraded/health")
        assert health.status_code == 503
        assert health.json()["status"] == "degraded"
        assert "no_such_model" in health.json()["detail"]
        r = httpx.post(f"{served}/degraded/predict", json=example_record())
        assert r.status_code == 503
        assert "no model loaded" in r.json()["detail"]
    finally:
        serve.delete("degraded")
