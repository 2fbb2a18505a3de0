"""Ray Serve for real, over HTTP, serving the champion that the end-to-end run registered.

The application runs as it does for `churn-platform serve`: the HAProxy ingress, the
pointer and predictor deployments, the prediction log and scoring by customer id from the
warehouse. The registry is the end-to-end run's; tests that move its alias put it back.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time

import duckdb
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from churn_platform.apps import serve_local as runner
from churn_platform.ml.registry import MLflowLocation, load_by_alias
from churn_platform.serving.config import ADMIN_TOKEN_ENV, API_TOKEN_ENV, PointerOptions, ServingOptions
from churn_platform.serving.prediction_log import read_prediction_log
from churn_platform.settings import CHAMPION_ALIAS, EXPERIMENT_NAME, REGISTERED_MODEL_NAME
from churn_platform_tests.business import CATALOGUE
from churn_platform_tests.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ADMIN_TOKEN = "admin-secret-for-tests"
MAX_RECORDS = 200
MAX_BODY = 256 * 1024


@pytest.fixture(scope="module")
def served(e2e, tmp_path_factory):
    e2e.settings.export()
    saved = os.environ.get(ADMIN_TOKEN_ENV)
    os.environ[ADMIN_TOKEN_ENV] = ADMIN_TOKEN  # the replicas inherit it from the local Ray cluster
    log_dir = tmp_path_factory.mktemp("prediction_log")
    options = ServingOptions(
        max_records_per_request=MAX_RECORDS,
        max_body_bytes=MAX_BODY,
        sync_interval_s=0.2,
        prediction_log_dir=str(log_dir),
        prediction_log_flush_s=0.5,
        features_uri=str(e2e.settings.warehouse_path),
    )
    metrics_port = free_port()
    url = runner.start(
        e2e.settings,
        port=free_port(),
        options=options,
        pointer=PointerOptions(poll_interval_s=0.5),
        metrics_port=metrics_port,
    )
    try:
        yield {"url": url, "log_dir": log_dir, "metrics_port": metrics_port}
    finally:
        runner.stop()
        if saved is None:
            os.environ.pop(ADMIN_TOKEN_ENV, None)
        else:
            os.environ[ADMIN_TOKEN_ENV] = saved


@pytest.fixture(scope="module")
def url(served):
    return served["url"]


@pytest.fixture(scope="module")
def champion(e2e):
    return load_by_alias(
        MLflowLocation(e2e.settings.mlflow_tracking_uri, EXPERIMENT_NAME), REGISTERED_MODEL_NAME, CHAMPION_ALIAS
    )


@pytest.fixture(scope="module")
def scoring_rows(e2e):
    with duckdb.connect(str(e2e.settings.warehouse_path), read_only=True) as con:
        return con.execute("select * from marts.scoring_features order by customer_id limit 20").df()


def records(frame):
    return json.loads(frame[list(CATALOGUE.names)].to_json(orient="records"))


def admin(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def wait_for(predicate, timeout_s: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_health_reports_the_loaded_version(url, champion):
    r = httpx.get(f"{url}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready", body
    assert body["model_name"] == REGISTERED_MODEL_NAME
    assert body["model_version"] == champion.version
    assert r.headers["x-request-id"]


def test_one_record_over_http_equals_the_registered_model_in_process(url, champion, scoring_rows):
    expected = champion.predict_proba(scoring_rows)
    for record, want in zip(records(scoring_rows)[:5], expected[:5]):
        r = httpx.post(f"{url}/v1/predict", json=record)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_version"] == champion.version
        assert len(body["predictions"]) == 1
        assert body["predictions"][0]["churn_probability"] == pytest.approx(float(want), abs=1e-9)
        assert body["request_id"] == r.headers["x-request-id"]


def test_a_list_is_scored_in_order_and_a_given_request_id_is_kept(url, champion, scoring_rows):
    expected = champion.predict_proba(scoring_rows)
    r = httpx.post(f"{url}/v1/predict", json=records(scoring_rows), headers={"x-request-id": "batch-42"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["request_id"] == "batch-42" == r.headers["x-request-id"]
    got = [p["churn_probability"] for p in body["predictions"]]
    assert got == pytest.approx([float(p) for p in expected], abs=1e-9)


def test_explain_adds_three_drivers_per_prediction(url):
    r = httpx.post(
        f"{url}/v1/predict",
        params={"explain": "true"},
        json=[CATALOGUE.example_record(), {**CATALOGUE.example_record(), "failed_payments_90d": 3}],
    )
    assert r.status_code == 200, r.text
    for prediction in r.json()["predictions"]:
        drivers = prediction["drivers"]
        assert len(drivers) == 3
        assert all(d["feature"] in CATALOGUE.names for d in drivers)
        impacts = [d["impact"] for d in drivers]
        assert impacts == sorted(impacts, reverse=True)


def test_horizons_and_an_offer_come_from_their_champions_and_an_offer_without_one_is_409(url, e2e, scoring_rows):
    """``horizons`` answers with churn_survival@champion (registered by the end-to-end run) as the
    model does in process; ``offer`` is a 409 naming the missing churn_uplift model until one is
    champion, then answers with its estimate and the action that follows from its sign."""
    import numpy as np
    from mlflow import MlflowClient

    from churn_platform.ml.registry import (
        SURVIVAL_MODEL_NAME,
        UPLIFT_MODEL_NAME,
        load_decision_model,
        register_uplift,
        set_alias,
    )
    from churn_platform.ml.uplift import fit_t_learner

    location = MLflowLocation(e2e.settings.mlflow_tracking_uri, EXPERIMENT_NAME, e2e.settings.mlflow_artifact_location)
    survival, survival_version = load_decision_model(location, SURVIVAL_MODEL_NAME, CHAMPION_ALIAS)
    assert survival is not None, "the end-to-end run registered no survival champion"
    sent = records(scoring_rows.head(5))
    r = httpx.post(f"{url}/v1/predict", params={"horizons": "true"}, json=sent)
    assert r.status_code == 200, r.text
    expected = survival.curves(scoring_rows.head(5))
    for prediction, want in zip(r.json()["predictions"], expected.itertuples(index=False)):
        h = prediction["horizons"]
        assert h["model_version"] == survival_version and prediction["offer"] is None
        assert h["churn_probability_30d"] <= h["churn_probability_60d"] <= h["churn_probability_90d"]
        assert h["churn_probability_90d"] == pytest.approx(want.churn_probability_90d, abs=1e-9)
        assert h["expected_lifetime_months"] == pytest.approx(want.expected_lifetime_months, rel=1e-9)

    r = httpx.post(f"{url}/v1/predict", params={"offer": "true"}, json=sent[0])
    assert r.status_code == 409 and UPLIFT_MODEL_NAME in r.json()["detail"], r.text

    # An uplift model (a T-learner on the end-to-end run's labelled rows, split in two random arms).
    with duckdb.connect(str(e2e.settings.warehouse_path), read_only=True) as con:
        labelled = con.execute("select * from marts.training_set order by customer_id, snapshot_date").df()
    labelled["arm"] = np.where(np.random.default_rng(3).random(len(labelled)) < 0.5, "treated", "control")
    labelled["churned"] = labelled["churned_within_horizon"].astype(bool)
    learner = fit_t_learner(labelled, CATALOGUE)
    version, _ = register_uplift(location, learner, labelled[list(CATALOGUE.names)].head(5), {}, {}, {})
    set_alias(location, UPLIFT_MODEL_NAME, CHAMPION_ALIAS, version)
    try:
        wait_for(
            lambda: httpx.get(f"{url}/v1/model").json()["decision_models"][UPLIFT_MODEL_NAME] == version,
            timeout_s=30,
            what="the uplift champion to be loaded",
        )
        r = httpx.post(
            f"{url}/v1/predict/customers",
            json={"customer_ids": scoring_rows.customer_id.astype(str).head(5).tolist(), "offer": True},
        )
        assert r.status_code == 200, r.text
        want = learner.uplift(scoring_rows.head(5))
        for result, u in zip(r.json()["results"], want):
            offer = result["offer"]
            assert offer["model_version"] == version and offer["uplift"] == pytest.approx(float(u), abs=1e-9)
            assert offer["recommended_action"] == ("contact" if u > 0 else "do_not_contact")
    finally:
        MlflowClient(tracking_uri=e2e.settings.mlflow_tracking_uri).delete_registered_model_alias(
            UPLIFT_MODEL_NAME, CHAMPION_ALIAS
        )


def test_invalid_input_is_a_422_naming_the_field(url):
    record = CATALOGUE.example_record()
    record["contract_type"] = "lifetime"
    r = httpx.post(f"{url}/v1/predict", json=record)
    assert r.status_code == 422
    assert {tuple(e["loc"]) for e in r.json()["detail"]} == {("body", "contract_type")}


def test_missing_negative_and_unknown_fields_are_each_named(url):
    record = CATALOGUE.example_record()
    del record["tenure_days"]
    record["seats"] = -3
    record["favourite_colour"] = "blue"
    r = httpx.post(f"{url}/v1/predict", json=record)
    assert r.status_code == 422
    assert {e["loc"][-1] for e in r.json()["detail"]} == {"tenure_days", "seats", "favourite_colour"}


def test_a_bad_record_in_a_list_is_named_by_its_position(url):
    bad = {**CATALOGUE.example_record(), "mrr": "lots"}
    r = httpx.post(f"{url}/v1/predict", json=[CATALOGUE.example_record(), bad])
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", 1, "mrr"]]


def test_malformed_json_and_wrong_shapes_are_4xx(url):
    r = httpx.post(f"{url}/v1/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    assert httpx.post(f"{url}/v1/predict", json=[]).status_code == 422
    assert httpx.post(f"{url}/v1/predict", json="a string").status_code == 422
    assert httpx.post(
        f"{url}/v1/predict", content=b"[1e999]", headers={"content-type": "application/json"}
    ).status_code in (400, 422)


def test_too_many_records_and_too_large_bodies_are_413(url):
    r = httpx.post(f"{url}/v1/predict", json=[CATALOGUE.example_record()] * (MAX_RECORDS + 1))
    assert r.status_code == 413 and str(MAX_RECORDS) in r.json()["detail"]
    assert httpx.post(f"{url}/v1/predict", json=[CATALOGUE.example_record()] * MAX_RECORDS).status_code == 200
    big = b'{"padding": "' + b"x" * MAX_BODY + b'"}'
    r = httpx.post(f"{url}/v1/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    # Without a Content-Length (a chunked body), the limit is enforced while the body is read.
    for path in ("/v1/predict", "/v1/predict/customers"):
        r = httpx.post(
            f"{url}{path}",
            content=iter([big[: MAX_BODY // 2], big[MAX_BODY // 2 :]]),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413, (path, r.status_code, r.text)
    ids = {"customer_ids": ["1"] * (MAX_RECORDS + 1)}
    assert httpx.post(f"{url}/v1/predict/customers", json=ids).status_code == 413


def test_customers_by_id_match_scoring_by_features_and_unknown_ids_are_reported(url, champion, scoring_rows):
    ids = [str(i) for i in scoring_rows["customer_id"].head(3)]
    r = httpx.post(
        f"{url}/v1/predict/customers", json={"customer_ids": [ids[0], "no-such-customer", *ids[1:]], "explain": True}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["unknown"] == 1
    assert [x["customer_id"] for x in body["results"]] == [ids[0], "no-such-customer", *ids[1:]]
    unknown = body["results"][1]
    assert (
        unknown["found"] is False
        and unknown["churn_probability"] is None
        and "unknown customer_id" in unknown["detail"]
    )
    expected = champion.predict_proba(scoring_rows.head(3))
    found = [x for x in body["results"] if x["found"]]
    assert [x["churn_probability"] for x in found] == pytest.approx([float(p) for p in expected], abs=1e-9)
    assert all(len(x["drivers"]) == 3 for x in found)
    assert body["features_as_of"] == str(scoring_rows["snapshot_date"].max().date())
    # The contract types customer_id as an integer: whole numbers are accepted as well as strings.
    as_numbers = httpx.post(f"{url}/v1/predict/customers", json={"customer_ids": [int(i) for i in ids]})
    assert as_numbers.status_code == 200, as_numbers.text
    assert [x["customer_id"] for x in as_numbers.json()["results"]] == ids
    assert [x["churn_probability"] for x in as_numbers.json()["results"]] == pytest.approx(
        [float(p) for p in expected], abs=1e-9
    )
    assert httpx.post(f"{url}/v1/predict/customers", json={"customer_ids": [True]}).status_code == 422


def test_model_endpoint_describes_the_served_version(url, champion):
    body = httpx.get(f"{url}/v1/model").json()
    assert body["name"] == REGISTERED_MODEL_NAME and body["version"] == champion.version
    assert body["alias"] == CHAMPION_ALIAS and body["following"] == "alias"
    assert body["features"] == list(CATALOGUE.names)
    assert 0.5 < body["metrics"]["roc_auc"] <= 1.0
    assert body["run_id"] and body["trained_at"]
    assert body["scorer"].startswith("compiled") and "agrees with the pipeline" in body["scorer"]


def test_openapi_has_an_example_for_every_operation_and_the_signature_schema(url):
    spec = httpx.get(f"{url}/openapi.json").json()
    assert {
        "/v1/predict",
        "/v1/predict/customers",
        "/v1/model",
        "/health",
        "/v1/admin/reload",
        "/v1/admin/model",
    } <= set(spec["paths"])
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    record = body["schema"]["oneOf"][0]
    assert set(record["properties"]) == {*CATALOGUE.names, "customer_id"}
    assert set(body["examples"]) == {"one", "several"}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            if "requestBody" in operation:
                content = operation["requestBody"]["content"]["application/json"]
                schema = content["schema"]
                if "$ref" in schema:
                    schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
                assert "examples" in content or "examples" in schema, (path, method)
    assert httpx.get(f"{url}/docs").status_code == 200


def test_admin_endpoints_need_the_bearer_token(url):
    assert httpx.post(f"{url}/v1/admin/reload").status_code == 401
    assert httpx.post(f"{url}/v1/admin/reload", headers=admin("wrong")).status_code == 401
    r = httpx.post(f"{url}/v1/admin/reload", headers=admin())
    assert r.status_code == 200, r.text
    assert r.json()["following"] == "alias"
    assert httpx.post(f"{url}/v1/admin/model", json={"version": "999"}, headers=admin()).status_code == 404


def test_predictions_reach_the_prediction_log(served, url, scoring_rows):
    ids = [str(i) for i in scoring_rows["customer_id"].head(2)]
    r = httpx.post(
        f"{url}/v1/predict",
        json=[{**CATALOGUE.example_record(), "customer_id": "known-7"}],
        headers={"x-request-id": "logged-1"},
    )
    r2 = httpx.post(f"{url}/v1/predict/customers", json={"customer_ids": ids}, headers={"x-request-id": "logged-2"})
    assert r.status_code == r2.status_code == 200

    def logged():
        frame = read_prediction_log(served["log_dir"])
        return frame if {"logged-1", "logged-2"} <= set(frame["request_id"]) else None

    frame = wait_for(logged, what="the prediction log")
    one = frame[frame["request_id"] == "logged-1"].iloc[0]
    assert one["customer_id"] == "known-7" and one["endpoint"] == "/v1/predict"
    assert one["churn_probability"] == pytest.approx(r.json()["predictions"][0]["churn_probability"])
    assert one["model_version"] == r.json()["model_version"]
    assert one["plan"] == CATALOGUE.example_record()["plan"] and one["seats"] == CATALOGUE.example_record()["seats"]
    assert sorted(frame[frame["request_id"] == "logged-2"]["customer_id"]) == sorted(ids)


def test_prometheus_metrics_of_serve_and_of_the_application(served, url):
    def rare_counters():
        text = httpx.get(f"http://127.0.0.1:{served['metrics_port']}/metrics", timeout=10).text
        wanted = (
            "ray_churn_api_errors_total",
            "ray_churn_model_load_failures_total",
            "ray_churn_prediction_log_dropped_rows_total",
        )
        return text if all(w in text for w in wanted) else None

    # Counters of events that may never happen are there (at 0) before they first fire.
    text = wait_for(rare_counters, timeout_s=60, what="the rare-event counters on the Ray metrics port")
    dropped = [line for line in text.splitlines() if line.startswith("ray_churn_prediction_log_dropped_rows_total")]
    assert dropped and all(float(line.rsplit(" ", 1)[1]) == 0.0 for line in dropped), dropped
    assert "ray_churn_api_errors_total{" in text and 'endpoint="/v1/predict/customers"' in text
    for _ in range(5):
        httpx.post(f"{url}/v1/predict", json=CATALOGUE.example_record())

    def scraped():
        text = httpx.get(f"http://127.0.0.1:{served['metrics_port']}/metrics", timeout=10).text
        wanted = (
            "ray_churn_api_requests",
            "ray_churn_api_latency_ms",
            "ray_churn_batch_rows",
            "ray_churn_model_version_info",
            "ray_serve_",
        )
        return text if all(w in text for w in wanted) else None

    text = wait_for(scraped, timeout_s=60, what="application and Serve metrics on the Ray metrics port")
    assert 'endpoint="/v1/predict"' in text


@pytest.fixture
def spare_versions(e2e, champion, tmp_path):
    """A second registered version with the champion's artifacts, and one whose artifacts are missing.
    The alias is put back afterwards."""
    from mlflow import MlflowClient

    MLflowLocation(e2e.settings.mlflow_tracking_uri, EXPERIMENT_NAME).activate_registry()
    client = MlflowClient()
    source = client.get_model_version(REGISTERED_MODEL_NAME, champion.version)
    same = client.create_model_version(REGISTERED_MODEL_NAME, source=source.source, run_id=source.run_id)
    broken_dir = tmp_path / "broken_model"
    broken_dir.mkdir()
    (broken_dir / "MLmodel").write_text("this is not a model\n")
    broken = client.create_model_version(REGISTERED_MODEL_NAME, source=str(broken_dir))
    try:
        yield client, str(same.version), str(broken.version)
    finally:
        client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, champion.version)


def test_hot_swap_under_concurrent_requests_drops_nothing_and_a_failed_load_keeps_serving(
    url, champion, spare_versions
):
    client, same, broken = spare_versions
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def hammer():
        with httpx.Client(timeout=30) as session:
            while not stop.is_set():
                r = session.post(f"{url}/v1/predict", json=CATALOGUE.example_record())
                results.append((r.status_code, r.json().get("model_version", "") if r.status_code == 200 else r.text))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, same)
        wait_for(
            lambda: httpx.get(f"{url}/health").json()["model_version"] == same, what=f"version {same} to be served"
        )
        time.sleep(1.0)
        client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, broken)
        health = wait_for(
            lambda: (h := httpx.get(f"{url}/health").json())["status"] == "degraded" and h,
            what="the failed load to show in /health",
        )
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    failures = [r for r in results if r[0] != 200]
    assert not failures, failures[:5]
    versions = [v for _, v in results]
    assert champion.version in versions and same in versions
    assert broken not in versions
    # The failed load is visible and the previous version still answers.
    assert health["model_version"] == same and health["target_version"] == broken
    assert (
        f"cannot load {REGISTERED_MODEL_NAME} version {broken}" in health["detail"]
        and f"still serving version {same}" in health["detail"]
    )
    assert httpx.post(f"{url}/v1/predict", json=CATALOGUE.example_record()).json()["model_version"] == same
    # An admin pin overrides the alias at once; unpinning follows the alias again.
    r = httpx.post(f"{url}/v1/admin/model", json={"version": champion.version}, headers=admin())
    assert r.status_code == 200 and r.json() == {
        "target_version": champion.version,
        "following": "pinned",
        "detail": None,
    }
    # Replicas learn the pin from the pointer at their next sync (every 0.5 s here).
    wait_for(
        lambda: httpx.get(f"{url}/v1/model").json()["following"] == "pinned", what="the replicas to follow the pin"
    )
    client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, champion.version)
    r = httpx.post(f"{url}/v1/admin/model", json={"version": None}, headers=admin())
    assert r.status_code == 200 and r.json()["following"] == "alias"
    wait_for(lambda: httpx.get(f"{url}/health").json()["status"] == "ready", what="ready again")


def test_a_challenger_in_shadow_then_canary_is_logged_and_answers_its_customers_and_changes_drop_nothing(
    served, url, champion, spare_versions
):
    """Under load: a shadow challenger scores every request and is only logged; a canary answers its
    customers (the same ones on every request) and the champion the rest; a challenger that cannot
    be loaded changes nothing; removing it puts every customer back. No request fails throughout."""
    _, same, broken = spare_versions
    ids = [f"roll-{i}" for i in range(40)]
    results: list[dict] = []
    stop = threading.Event()

    def hammer(offset: int):
        with httpx.Client(timeout=30) as session:
            for n in itertools.count():
                if stop.is_set():
                    return
                cid = ids[(n * 7 + offset) % len(ids)]
                r = session.post(f"{url}/v1/predict", json=[{**CATALOGUE.example_record(), "customer_id": cid}])
                entry = {"status": r.status_code, "customer_id": cid, "text": r.text[:300]}
                if r.status_code == 200:
                    entry.update(r.json()["predictions"][0], request_id=r.json()["request_id"])
                results.append(entry)

    def challenger(body: dict, status: int = 200) -> dict:
        r = httpx.post(f"{url}/v1/admin/challenger", json=body, headers=admin())
        assert r.status_code == status, r.text
        return r.json()

    def model_info_shows(predicate, what: str):
        return wait_for(lambda: predicate(httpx.get(f"{url}/v1/model").json().get("challenger")), what=what)

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        # Shadow: every request is also scored by the challenger; only the champion answers.
        shown = challenger({"version": same, "mode": "shadow", "share": 1.0})["challenger"]
        assert shown["version"] == same and shown["mode"] == "shadow" and shown["loaded"], shown
        shadow_from = len(results)
        time.sleep(1.5)
        shadow_results = results[shadow_from:]
        # Canary of half the customers by id.
        challenger({"version": same, "mode": "canary", "share": 0.5})
        model_info_shows(lambda c: c and c["mode"] == "canary", "every replica to run the canary")
        canary_from = len(results)
        time.sleep(2.0)
        canary_results = results[canary_from:]
        # A challenger that cannot be loaded: the canary in place keeps going, the failure is shown.
        failed = challenger({"version": broken, "mode": "canary", "share": 0.5})
        assert failed["challenger"]["loaded"] is False and f"version {broken}" in failed["detail"], failed
        time.sleep(1.0)
        # Removed: everybody is answered by the champion again.
        assert challenger({"version": None}) == {"challenger": None, "detail": None}
        model_info_shows(lambda c: c is None, "every replica to drop the challenger")
        after_from = len(results)
        time.sleep(1.0)
        after_results = results[after_from:]
    finally:
        stop.set()
        for t in threads:
            t.join()
        httpx.post(f"{url}/v1/admin/challenger", json={"version": None}, headers=admin())
    failures = [r for r in results if r["status"] != 200]
    assert not failures, failures[:5]
    assert shadow_results and all(r["arm"] == "champion" for r in shadow_results)
    # The canary: both arms answer, each customer always by the same one.
    arms_by_customer: dict[str, set] = {}
    for r in canary_results:
        arms_by_customer.setdefault(r["customer_id"], set()).add((r["arm"], r["model_version"]))
    assert all(len(a) == 1 for a in arms_by_customer.values()), arms_by_customer
    answered = {next(iter(a)) for a in arms_by_customer.values()}
    assert answered == {("champion", champion.version), ("canary", same)}, answered
    assert all(r["arm"] == "champion" and r["model_version"] == champion.version for r in after_results)
    # Unknown versions and bad shares are refused with the field named.
    assert "no version" in challenger({"version": "999", "mode": "canary"}, status=404)["detail"]
    bad = challenger({"version": same, "mode": "canary", "share": 1.5}, status=422)
    assert bad["detail"][0]["loc"][-1] == "share"

    # The log holds every score with its arm; a shadow's and the champion's under a canary are not served.
    def logged():
        frame = read_prediction_log(served["log_dir"])
        frame = frame[frame["customer_id"].isin(ids)]
        return frame if (frame["arm"] == "shadow").any() and (frame["arm"] == "canary").any() else None

    frame = wait_for(logged, what="the rollout's scores in the prediction log")
    shadow = frame[frame["arm"] == "shadow"]
    assert (shadow["model_version"] == same).all() and not shadow["served"].any()
    canary = frame[frame["arm"] == "canary"]
    assert (canary["model_version"] == same).all() and canary["served"].all()
    # A request answered by the canary has the champion's score beside it, not served.
    beside = frame[frame["request_id"].isin(canary["request_id"]) & (frame["arm"] == "champion")]
    assert len(beside) and not beside["served"].any() and (beside["model_version"] == champion.version).all()
    shadowed = {r["request_id"] for r in shadow_results}
    assert shadowed & set(shadow["request_id"])


def test_a_version_the_gate_staged_as_rollout_is_served_as_the_challenger_its_tags_describe(url, spare_versions):
    """The registry's @rollout (what the gate sets under policy.rollout) is followed unless an admin
    decided otherwise; an admin's reset hands control back to it; removing the alias ends it."""
    client, same, _ = spare_versions
    client.set_model_version_tag(REGISTERED_MODEL_NAME, same, "rollout_mode", "canary")
    client.set_model_version_tag(REGISTERED_MODEL_NAME, same, "rollout_share", "0.3")
    client.set_registered_model_alias(REGISTERED_MODEL_NAME, "rollout", same)
    try:
        r = httpx.post(f"{url}/v1/admin/challenger", json={"version": None, "reset": True}, headers=admin())
        assert r.status_code == 200, r.text
        shown = wait_for(
            lambda: (c := httpx.get(f"{url}/v1/model").json()["challenger"]) and c["loaded"] and c,
            what="the @rollout version as the challenger",
        )
        assert (shown["version"], shown["mode"], shown["share"]) == (same, "canary", 0.3)
        # An admin's rollback holds even though the alias is still there.
        r = httpx.post(f"{url}/v1/admin/challenger", json={"version": None}, headers=admin())
        assert r.status_code == 200 and r.json()["challenger"] is None
        time.sleep(1.0)
        assert httpx.get(f"{url}/v1/model").json()["challenger"] is None
        httpx.post(f"{url}/v1/admin/challenger", json={"version": None, "reset": True}, headers=admin())
        wait_for(lambda: httpx.get(f"{url}/v1/model").json()["challenger"], what="the rollout to be followed again")
    finally:
        client.delete_registered_model_alias(REGISTERED_MODEL_NAME, "rollout")
    wait_for(lambda: httpx.get(f"{url}/v1/model").json()["challenger"] is None, what="the rollout's end")


def test_fuzzing_the_openapi_schema_gives_no_server_error(url):
    """Schemathesis generates valid and invalid requests for every operation of /openapi.json;
    none may get a 5xx. (Schemathesis' pytest loader does not support pytest 9 yet, so the
    operations' Hypothesis strategies are driven here directly.)"""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    server_errors: list[str] = []
    calls = {"n": 0}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 7
    for operation, mode in itertools.product(operations, (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):
        if mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET":
            continue  # nothing in a GET of these endpoints can be made invalid

        @settings(
            max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
        )
        @given(case=operation.as_strategy(mode))
        def check(case):
            response = case.call(base_url=url, timeout=30)
            calls["n"] += 1
            if response.status_code >= 500:
                server_errors.append(
                    f"{case.method} {case.formatted_path} {case.body!r:.300} -> {response.status_code} {response.text[:300]}"
                )

        check()
    assert not server_errors, server_errors[:5]
    assert calls["n"] >= 10 * 10


def test_without_a_model_predict_is_503_and_health_degraded(url, e2e):
    from ray import serve

    from churn_platform.serving.app import build_app

    serve.run(
        build_app(e2e.settings.mlflow_tracking_uri, "no_such_model"),
        name="degraded",
        route_prefix="/degraded",
        blocking=False,
    )
    try:
        runner.wait_until_up(f"{url}/degraded")
        health = httpx.get(f"{url}/degraded/health")
        assert health.status_code == 503
        assert health.json()["status"] == "degraded" and "no_such_model" in health.json()["detail"]
        r = httpx.post(f"{url}/degraded/v1/predict", json=CATALOGUE.example_record())
        assert r.status_code == 503 and "no model loaded" in r.json()["detail"]
        assert httpx.get(f"{url}/degraded/v1/model").status_code == 503
    finally:
        serve.delete("degraded")


def test_predict_can_require_a_bearer_token(url, e2e):
    from ray import serve

    from churn_platform.serving.app import build_app

    # The same application with the API token in its replicas' environment.
    secured = build_app(
        e2e.settings.mlflow_tracking_uri,
        ray_actor_options={"num_cpus": 0.1, "runtime_env": {"env_vars": {API_TOKEN_ENV: "predict-secret"}}},
    )
    serve.run(secured, name="secured", route_prefix="/secured", blocking=False)
    try:
        runner.wait_until_up(f"{url}/secured")
        assert httpx.post(f"{url}/secured/v1/predict", json=CATALOGUE.example_record()).status_code == 401
        ok = httpx.post(
            f"{url}/secured/v1/predict",
            json=CATALOGUE.example_record(),
            headers={"authorization": "Bearer predict-secret"},
        )
        assert ok.status_code == 200, ok.text
        assert httpx.get(f"{url}/secured/health").status_code == 200  # health stays open for probes
    finally:
        serve.delete("secured")
