"""The Ray Serve application: the registered champion over HTTP.

Two deployments:

- ``ChampionPointer`` (one replica) knows which model version every replica should serve:
  the version behind the registry alias ``champion``, resolved every ``poll_interval_s``, or
  a version pinned by an admin or by its ``user_config`` (``pinned_version``).
- ``ChurnPredictor`` (autoscaled) is the FastAPI ingress. Each replica asks the pointer
  every ``sync_interval_s`` which version to serve; when it changes it loads the new
  version in a thread while the old one keeps answering, checks its signature against the
  API's schema and then swaps it in with one assignment: no request is dropped or sees a
  half-loaded model. A version that fails to load leaves the old one serving; `/health`
  says so and the error is logged. Batching, limits and the prediction log come from the
  deployment's ``user_config`` and change live through ``reconfigure()``.

Endpoints: ``POST /v1/predict``, ``POST /v1/predict/customers``, ``GET /v1/model``,
``GET /health``, and the admin endpoints ``POST /v1/admin/reload`` and
``POST /v1/admin/model`` (bearer token). Every response carries the request id in the
``X-Request-ID`` header; prediction responses carry it and the model version in the body.
"""

import asyncio
import datetime as dt
import logging
import secrets
import time
import uuid
from typing import Any, Optional

import numpy as np
import orjson
import pandas as pd
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError
from ray import serve

from churn_platform.business.catalogue import ID_COLUMN, TIME_COLUMN, Catalogue
from churn_platform.ml.gate import ROLLOUT as ROLLOUT_ALIAS
from churn_platform.ml.gate import ROLLOUT_MODE_TAG, ROLLOUT_SHARE_TAG
from churn_platform.ml.registry import (
    SURVIVAL_MODEL_NAME,
    UPLIFT_MODEL_NAME,
    LoadedModel,
    MLflowLocation,
    alias_version,
    alias_with_tags,
    load_decision_model,
    load_version,
    resolve_alias,
)
from churn_platform.ml.scoring import explain_records, reference_values, top_driver_order
from churn_platform.ml.training import features_frame
from churn_platform.serving.config import (
    ADMIN_TOKEN_ENV,
    API_TOKEN_ENV,
    MAX_ONGOING_REQUESTS,
    Autoscaling,
    PointerOptions,
    ServingOptions,
    token_from_env,
)
from churn_platform.serving.customer_features import CustomerFeatures
from churn_platform.serving.prediction_log import PredictionLogWriter
from churn_platform.serving.rollout import CANARY, CHAMPION, SHADOW, Rollout, in_canary, in_shadow
from churn_platform.serving.schemas import (
    AdminResult,
    ChallengerInfo,
    ChallengerRequest,
    ChallengerResult,
    CustomersRequest,
    CustomersResponse,
    Health,
    ModelInfo,
    PredictResponse,
    SignatureColumns,
    SwitchRequest,
    columns_from_catalogue,
    columns_from_signature,
    predict_request_schema,
    record_model,
    record_validator,
)
from churn_platform.settings import CHAMPION_ALIAS

log = logging.getLogger("ray.serve")

DRIVERS = 3
RETRY_FAILED_LOAD_S = 30.0
ENDPOINTS = ("/v1/predict", "/v1/predict/customers", "/v1/model", "/health", "/v1/admin/reload", "/v1/admin/model")


class ServingError(HTTPException):
    """An error with its HTTP status, raised below the route (the body limit while the body is
    read, no model inside the batch): FastAPI answers it like any HTTPException."""

    def __init__(self, status: int, detail: Any):
        super().__init__(status_code=status, detail=detail)


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY, default=str),
        status_code=status,
        media_type="application/json",
    )


# --- request plumbing: request id, body size limit, metrics ------------------------------------


class _State:
    """Per-process state that the middleware and the OpenAPI document read.

    Serve ships the deployment class by value, so a module-level *variable* assigned in a
    replica would land in a copy of this module's globals; attributes of a class defined here
    (imported by reference) are the one place both sides see."""

    max_body_bytes: int = ServingOptions.model_fields["max_body_bytes"].default
    metrics: Optional["_Metrics"] = None
    record_model: Any = None
    catalogue: Any = None
    openapi: dict[str, Any] | None = None


class ApiMiddleware:
    """Pure ASGI middleware: the request id for the handlers, the body size limit (413) and per-request metrics."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if 0 < len(given) <= 128 and given.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        endpoint = scope.get("path", "")
        endpoint = endpoint if endpoint in ENDPOINTS else "other"
        status_holder = {"status": 500}

        async def send_recording_status(message):
            # Serve itself returns the request id in X-Request-ID (the client's, if it sent one).
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
            await send(message)

        limit = _State.max_body_bytes
        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        try:
            if declared > limit:
                await _send_plain(
                    send_recording_status, 413, f"request body of {declared} bytes is over the limit of {limit} bytes"
                )
                return
            received = 0

            async def limited_receive():
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise ServingError(413, f"request body is over the limit of {limit} bytes")
                return message

            await self.app(scope, limited_receive, send_recording_status)
        finally:
            if _State.metrics is not None:
                _State.metrics.request(endpoint, status_holder["status"], (time.perf_counter() - started) * 1000)


async def _send_plain(send, status: int, detail: str) -> None:
    body = orjson.dumps({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _Metrics:
    """Application metrics, exported by Ray on each node's metrics port (names get a ``ray_`` prefix)."""

    def __init__(self) -> None:
        from ray.util import metrics

        self.requests = metrics.Counter(
            "churn_api_requests", description="HTTP requests by endpoint and status.", tag_keys=("endpoint", "status")
        )
        self.latency = metrics.Histogram(
            "churn_api_latency_ms",
            description="Time from request to response inside the replica.",
            boundaries=[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000],
            tag_keys=("endpoint",),
        )
        self.batch_requests = metrics.Histogram(
            "churn_batch_requests",
            description="Requests scored in one model call.",
            boundaries=[1, 2, 4, 8, 16, 32, 64, 128, 256],
        )
        self.batch_rows = metrics.Histogram(
            "churn_batch_rows",
            description="Rows scored in one model call.",
            boundaries=[1, 4, 16, 64, 256, 1024, 4096, 16384],
        )
        self.predictions = metrics.Counter(
            "churn_predictions",
            description="Rows scored, by model version and rollout arm (champion, canary: answered; shadow: logged only).",
            tag_keys=("model_version", "arm"),
        )
        self.model_latency = metrics.Histogram(
            "churn_model_latency_ms",
            description="Time of one model call (a batch), by model version and rollout arm.",
            boundaries=[0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500],
            tag_keys=("model_version", "arm"),
        )
        self.challenger_fallbacks = metrics.Counter(
            "churn_challenger_fallbacks",
            description="Canary records answered by the champion because the challenger could not score them.",
        )
        self.errors = metrics.Counter(
            "churn_api_errors", description="Responses with status 5xx, by endpoint.", tag_keys=("endpoint",)
        )
        self.model_info = metrics.Gauge(
            "churn_model_version_info",
            description="1 for the version this replica serves.",
            tag_keys=("model_name", "model_version"),
        )
        self.load_failures = metrics.Counter(
            "churn_model_load_failures", description="Model versions that failed to load (the old one kept serving)."
        )
        self.log_dropped = metrics.Counter(
            "churn_prediction_log_dropped_rows", description="Predictions the log could not keep."
        )
        self.log_buffered = metrics.Gauge(
            "churn_prediction_log_buffered_rows", description="Predictions waiting to be written."
        )
        # Counters of rare events are exported at 0 from the start, so that rate() and alert rules
        # work from the first scrape. Ray's inc() refuses 0; recording 0 creates the series.
        for endpoint in ENDPOINTS:
            self.errors._record(0.0, {"endpoint": endpoint})
        self.load_failures._record(0.0)
        self.challenger_fallbacks._record(0.0)
        self.log_dropped._record(0.0)

    def request(self, endpoint: str, status: int, latency_ms: float) -> None:
        self.requests.inc(1, {"endpoint": endpoint, "status": str(status)})
        self.latency.observe(latency_ms, {"endpoint": endpoint})
        if status >= 500:
            self.errors.inc(1, {"endpoint": endpoint})


# --- the app -------------------------------------------------------------------------------------

api = FastAPI(
    title="churn_platform prediction API",
    description=(
        "Churn probabilities from the registered champion model. The record schema is the served "
        "model's MLflow signature. Every response has an `X-Request-ID` header (yours, if you send one)."
    ),
    version="1.0.0",
)
api.add_middleware(ApiMiddleware)


_State.record_model = record_model((), Catalogue(()))
_State.catalogue = Catalogue(())


def _openapi() -> dict[str, Any]:
    if _State.openapi:
        return _State.openapi
    schema = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes)
    schema["paths"]["/v1/predict"]["post"]["requestBody"] = predict_request_schema(
        _State.record_model, _State.catalogue
    )
    bearer = {"type": "http", "scheme": "bearer"}
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = bearer
    for path in ("/v1/admin/reload", "/v1/admin/model"):
        schema["paths"][path]["post"]["security"] = [{"bearer": []}]
    _State.openapi = schema
    return schema


api.openapi = _openapi  # type: ignore[method-assign]

ERROR_RESPONSES = {
    401: {"description": "Missing or wrong bearer token."},
    413: {"description": "Too many records, or a body over the size limit."},
    409: {"description": "`horizons` or `offer` asked for before its model is registered (the reason is in `detail`)."},
    422: {"description": "Invalid input; `detail` names each field at fault."},
    503: {"description": "No model loaded yet (the reason is in `detail`)."},
}


ADMIN_VERSION_RESPONSES: dict = {
    401: ERROR_RESPONSES[401],
    403: {"description": "Admin API disabled."},
    404: {"description": "No such version."},
}
"""The errors of an admin call that names a registered version."""


def _check_token(request: Request, expected: str | None, what: str) -> None:
    if expected is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), expected.encode()):
        raise HTTPException(
            status_code=401, detail=f"{what} requires a valid bearer token", headers={"WWW-Authenticate": "Bearer"}
        )


@serve.deployment(name="ChampionPointer", num_replicas=1, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
class ChampionPointer:
    """The version that every ChurnPredictor replica should serve."""

    def __init__(self, tracking_uri: str, model_name: str, alias: str = "champion") -> None:
        self._location = MLflowLocation(tracking_uri=tracking_uri, experiment_name="")
        self._name, self._alias = model_name, alias
        self._options = PointerOptions()
        self._admin_pin: str | None = None
        # An admin's challenger (or its removal) until the next deployment config; None: the config's.
        self._admin_challenger: tuple[Rollout | None] | None = None
        self._resolved: str | None = None
        self._rollout: Rollout | None = None  # the registry's @rollout version, from its tags
        self._error: str | None = None
        self._checked = float("-inf")
        self._lock = asyncio.Lock()

    async def reconfigure(self, config: dict) -> None:
        self._options = PointerOptions.model_validate(config or {})
        self._admin_pin = None  # a new deployment config replaces an admin's pin and challenger
        self._admin_challenger = None

    async def _resolve(self) -> None:
        async with self._lock:
            try:
                self._resolved = await asyncio.to_thread(resolve_alias, self._location, self._name, self._alias)
                self._error = None
            except Exception as exc:
                self._error = f"cannot resolve models:/{self._name}@{self._alias}: {type(exc).__name__}: {exc}"[:500]
            if self._options.follow_rollout:
                self._rollout = await asyncio.to_thread(self._registry_rollout)
            self._checked = time.monotonic()

    def _registry_rollout(self) -> Rollout | None:
        try:
            found = alias_with_tags(self._location, self._name, ROLLOUT_ALIAS)
            if found is None:
                return None
            version, tags = found
            return Rollout(
                version=version,
                mode=tags.get(ROLLOUT_MODE_TAG, "shadow"),
                share=float(tags.get(ROLLOUT_SHARE_TAG, 0.5)),
            )
        except Exception as exc:  # an unreadable rollout is no rollout; the champion is unaffected
            log.warning("cannot read models:/%s@%s: %s", self._name, ROLLOUT_ALIAS, exc)
            return None

    def _challenger(self) -> dict | None:
        """An admin's challenger (or removal), else the deployment config's, else the registry's @rollout."""
        if self._admin_challenger is not None:
            rollout = self._admin_challenger[0]
        else:
            rollout = self._options.challenger or (self._rollout if self._options.follow_rollout else None)
        return rollout.model_dump() if rollout is not None else None

    async def target(self) -> dict:
        pinned = self._admin_pin or self._options.pinned_version
        if pinned:
            return {"version": pinned, "following": "pinned", "error": None, "challenger": self._challenger()}
        if time.monotonic() - self._checked >= self._options.poll_interval_s:
            await self._resolve()
        return {"version": self._resolved, "following": "alias", "error": self._error, "challenger": self._challenger()}

    async def _exists(self, version: str) -> str | None:
        """None when the registered model has ``version``, else why not."""
        from mlflow import MlflowClient

        def exists() -> None:
            self._location.activate_registry()
            MlflowClient().get_model_version(self._name, version)

        try:
            await asyncio.to_thread(exists)
        except Exception as exc:
            return f"{self._name} has no version {version!r}: {type(exc).__name__}"
        return None

    async def set_challenger(self, rollout: dict | None, reset: bool = False) -> dict:
        """Serve ``rollout``'s version beside the champion (None: remove the challenger), until the next
        deployment config; with ``reset``, drop the admin's setting and follow the config and registry."""
        if reset:
            self._admin_challenger = None
            await self._resolve()
            return {"ok": True, **(await self.target())}
        parsed = Rollout.model_validate(rollout) if rollout is not None else None
        if parsed is not None:
            missing = await self._exists(parsed.version)
            if missing:
                return {"ok": False, "detail": missing}
        self._admin_challenger = (parsed,)
        return {"ok": True, **(await self.target())}

    async def refresh(self) -> dict:
        await self._resolve()
        return await self.target()

    async def pin(self, version: str | None) -> dict:
        if version is not None:
            missing = await self._exists(version)
            if missing:
                return {"ok": False, "detail": missing}
        self._admin_pin = version
        if version is None:
            await self._resolve()
        return {"ok": True, **(await self.target())}


class DecisionModels:
    """The survival and uplift models beside the churn model: their ``champion`` versions, resolved at
    most every ``RESOLVE_EVERY_S`` seconds and loaded when they change. A model that fails to load
    leaves the one before it answering; a model that does not exist yet makes a request for its
    fields a 409 that says so."""

    RESOLVE_EVERY_S = 5.0

    def __init__(self, location: MLflowLocation) -> None:
        self._location = location
        self._models: dict[str, tuple[str, Any] | None] = {SURVIVAL_MODEL_NAME: None, UPLIFT_MODEL_NAME: None}
        self._errors: dict[str, str] = {}
        self._resolved_at = 0.0

    def due(self) -> bool:
        return time.monotonic() - self._resolved_at >= self.RESOLVE_EVERY_S

    def sync(self) -> None:
        self._resolved_at = time.monotonic()
        for name, current in self._models.items():
            try:
                version = alias_version(self._location.tracking_uri, name, CHAMPION_ALIAS)
                if version is None:  # the alias was removed: its fields are no longer answered
                    self._models[name] = None
                    continue
                if current is not None and current[0] == version:
                    continue
                model, _ = load_decision_model(self._location, name, None, version=version)
                self._models[name] = (version, model)  # one assignment: a request sees the old or the new
                self._errors.pop(name, None)
                log.info("%s version %s loaded", name, version)
            except Exception as exc:
                self._errors[name] = f"cannot load {name}@{CHAMPION_ALIAS}: {type(exc).__name__}: {exc}"[:300]
                log.warning(self._errors[name])

    def versions(self) -> dict[str, str | None]:
        return {name: (m[0] if m else None) for name, m in self._models.items()}

    def _require(self, name: str, field: str):
        loaded = self._models[name]
        if loaded is None:
            why = self._errors.get(name) or f"no {name}@{CHAMPION_ALIAS} is registered yet"
            raise HTTPException(status_code=409, detail=f"`{field}` needs the {name} model: {why}")
        return loaded

    def answer(self, records: list[dict], horizons: bool, offer: bool) -> list[dict]:
        """Each record's ``horizons`` and ``offer`` fields, when asked for."""
        out: list[dict] = [{"horizons": None, "offer": None} for _ in records]
        if not (horizons or offer):
            return out
        frame = pd.DataFrame(records)
        if horizons:
            version, model = self._require(SURVIVAL_MODEL_NAME, "horizons")
            curves = model.curves(frame)
            for i, row in enumerate(curves.itertuples(index=False)):
                out[i]["horizons"] = {
                    "churn_probability_30d": float(row.churn_probability_30d),
                    "churn_probability_60d": float(row.churn_probability_60d),
                    "churn_probability_90d": float(row.churn_probability_90d),
                    "expected_lifetime_months": float(row.expected_lifetime_months),
                    "model_version": version,
                }
        if offer:
            version, model = self._require(UPLIFT_MODEL_NAME, "offer")
            for i, u in enumerate(model.uplift(frame)):
                out[i]["offer"] = {
                    "uplift": float(u),
                    "recommended_action": "contact" if u > 0 else "do_not_contact",
                    "model_version": version,
                }
        return out


@serve.deployment(
    name="ChurnPredictor",
    max_ongoing_requests=MAX_ONGOING_REQUESTS,
    ray_actor_options={"num_cpus": 0.5},
    autoscaling_config=Autoscaling().model_dump(),
    graceful_shutdown_timeout_s=10,
)
@serve.ingress(api)
class ChurnPredictor:
    def __init__(
        self,
        pointer,
        tracking_uri: str,
        model_name: str,
        alias: str = "champion",
        columns: list | None = None,
        features: list | None = None,
    ) -> None:
        self._pointer = pointer
        self._location = MLflowLocation(tracking_uri=tracking_uri, experiment_name="")
        self._name, self._alias = model_name, alias
        # The schema the application was deployed with: the champion's features then (its catalogue).
        self._catalogue = Catalogue.from_records(features or [])
        self._columns: SignatureColumns = (
            tuple(tuple(c) for c in columns) if columns else columns_from_catalogue(self._catalogue)  # type: ignore[assignment]
        )
        self._feature_columns = [name for name, _, _ in self._columns]
        record = record_model(self._columns, self._catalogue)
        _State.record_model, _State.catalogue, _State.openapi = record, self._catalogue, None
        validator = record_validator(self._columns, self._catalogue)
        self._one = TypeAdapter(validator)
        self._many = TypeAdapter(list[validator])  # type: ignore[valid-type]
        self._options = ServingOptions()
        self._admin_token = token_from_env(ADMIN_TOKEN_ENV)
        self._api_token = token_from_env(API_TOKEN_ENV)
        _State.metrics = self._metrics = _Metrics()
        self._model: LoadedModel | None = None
        self._loaded_at: dt.datetime | None = None
        self._target: str | None = None
        self._following = "alias"
        self._error: str | None = None
        self._failed: tuple[str | None, float] = (None, 0.0)
        self._features = CustomerFeatures(None)
        self._reference: dict[str, object] = dict(self._catalogue.example_record())
        self._log: PredictionLogWriter | None = None
        self._background: asyncio.Task | None = None
        self._swap_lock = asyncio.Lock()
        # The challenger and its rollout, assigned together: (model, rollout, loaded_at) or None.
        self._live_challenger: tuple[LoadedModel, Rollout, dt.datetime] | None = None
        self._challenger_wanted: Rollout | None = None
        self._challenger_error: str | None = None
        self._challenger_failed: tuple[str | None, float] = (None, 0.0)
        self._challenger_lock = asyncio.Lock()
        self._shadow_tasks: set[asyncio.Task] = set()
        self._decision_models = DecisionModels(self._location)
        self._decision_models.sync()
        # Start with the alias's version, so that a new replica answers at once; the pointer may
        # name another (pinned) version, which the first sync then loads.
        try:
            version = resolve_alias(self._location, model_name, alias)
            self._install(self._load(version))
        except Exception as exc:
            self._error = f"cannot load models:/{model_name}@{alias}: {type(exc).__name__}: {exc}"[:500]
            log.error(self._error)

    # -- model lifecycle ------------------------------------------------------------------------

    def _load(self, version: str, alias: str | None = None) -> LoadedModel:
        model = load_version(self._location, self._name, version, alias or self._alias).with_compiled_scorer()
        log.info("%s version %s: %s", self._name, version, model.scorer_note)
        if model.signature is not None:
            served = columns_from_signature(model.signature)
            if not self._columns:
                raise ValueError(
                    f"this API was deployed before any model was registered and has no schema; redeploy it to serve "
                    f"version {version}"
                )
            if [(n, k) for n, k, _ in served] != [(n, k) for n, k, _ in self._columns]:
                raise ValueError(
                    f"version {version}'s signature {[(n, k) for n, k, _ in served]} differs from this API's schema; "
                    "redeploy the application to serve a model with other features"
                )
        return model

    def _install(self, model: LoadedModel) -> None:
        previous = self._model
        self._model = model  # one assignment: a request uses the old or the new model, never a mix
        self._loaded_at = dt.datetime.now(dt.UTC)
        self._error = None
        if self._log is not None and model.catalogue is not None:
            self._log.use_catalogue(model.catalogue)
        if previous is not None:
            self._metrics.model_info.set(0, {"model_name": previous.name, "model_version": previous.version})
        self._metrics.model_info.set(1, {"model_name": model.name, "model_version": model.version})
        log.info("serving %s version %s (was %s)", model.name, model.version, previous.version if previous else "none")

    async def _sync_once(self) -> None:
        target = await self._pointer.target.remote()
        await self._apply(target)
        if self._decision_models.due():
            await asyncio.to_thread(self._decision_models.sync)
        if self._features.uri and await asyncio.to_thread(self._features.refresh):
            self._reference = self._typical()
        if self._log is not None:
            self._metrics.log_buffered.set(self._log.buffered)
        if self._model is not None:  # a gauge is exported from its latest value: keep it current
            self._metrics.model_info.set(1, {"model_name": self._model.name, "model_version": self._model.version})

    async def _apply(self, target: dict) -> None:
        await self._apply_champion(target)
        await self._apply_challenger(target.get("challenger"))

    async def _apply_challenger(self, spec: dict | None) -> None:
        """Load, keep or drop the challenger the pointer names. A challenger that fails to load leaves
        the previous one (if any) in place and is retried later; the champion is never affected."""
        async with self._challenger_lock:
            wanted = Rollout.model_validate(spec) if spec else None
            self._challenger_wanted = wanted
            live = self._live_challenger
            if wanted is None:
                if live is not None:
                    log.info("challenger version %s removed", live[0].version)
                self._live_challenger, self._challenger_error = None, None
                return
            if live is not None and live[0].version == wanted.version:
                if live[1] != wanted:
                    self._live_challenger = (live[0], wanted, live[2])
                    log.info("challenger version %s: now %s of %.0f%%", wanted.version, wanted.mode, wanted.share * 100)
                self._challenger_error = None
                return
            failed_version, retry_at = self._challenger_failed
            if failed_version == wanted.version and time.monotonic() < retry_at:
                return
            try:
                model = await asyncio.to_thread(self._load, wanted.version, "challenger")
            except Exception as exc:
                self._challenger_failed = (wanted.version, time.monotonic() + RETRY_FAILED_LOAD_S)
                still = f"; still comparing version {live[0].version}" if live else ""
                self._challenger_error = (
                    f"cannot load challenger version {wanted.version}: {type(exc).__name__}: {exc}"[:500] + still
                )
                self._metrics.load_failures.inc()
                log.error(self._challenger_error)
                return
            self._live_challenger = (model, wanted, dt.datetime.now(dt.UTC))
            self._challenger_error = None
            log.info(
                "challenger version %s loaded: %s of %.0f%% (champion %s)",
                wanted.version,
                wanted.mode,
                wanted.share * 100,
                self._model.version if self._model else "none",
            )

    async def _apply_champion(self, target: dict) -> None:
        async with self._swap_lock:
            version, self._following = target.get("version"), target.get("following", "alias")
            self._target = version
            if version is None:
                if self._model is None:
                    self._error = target.get("error") or "no version to serve"
                return
            if self._model is not None and self._model.version == version:
                self._error = None
                return
            failed_version, retry_at = self._failed
            if failed_version == version and time.monotonic() < retry_at:
                return
            try:
                model = await asyncio.to_thread(self._load, version)
            except Exception as exc:
                self._failed = (version, time.monotonic() + RETRY_FAILED_LOAD_S)
                still = f"; still serving version {self._model.version}" if self._model else ""
                self._error = f"cannot load {self._name} version {version}: {type(exc).__name__}: {exc}"[:500] + still
                self._metrics.load_failures.inc()
                log.error(self._error)
                return
            self._install(model)

    async def _sync_forever(self) -> None:
        while True:
            try:
                await self._sync_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the pointer restarting, for example: try again next round
                log.warning("model sync failed: %s", exc)
            await asyncio.sleep(self._options.sync_interval_s)

    def _ensure_background(self) -> None:
        if self._background is None or self._background.done():
            self._background = asyncio.get_running_loop().create_task(self._sync_forever())
        if self._log is not None:
            self._log.start()

    async def reconfigure(self, config: dict) -> None:
        options = ServingOptions.model_validate(config or {})
        self._options = options
        _State.max_body_bytes = options.max_body_bytes
        for batched in (self._score, self._score_challenger):
            batched.set_max_batch_size(options.max_batch_size)
            batched.set_batch_wait_timeout_s(options.batch_wait_timeout_s)
        if options.prediction_log_dir and (self._log is None or str(self._log.directory) != options.prediction_log_dir):
            if self._log is not None:
                await asyncio.to_thread(self._log.close)
            self._log = PredictionLogWriter(
                options.prediction_log_dir,
                options.prediction_log_flush_s,
                options.prediction_log_max_buffer,
                catalogue=self._model.catalogue if self._model is not None else self._catalogue,
            )
        elif not options.prediction_log_dir and self._log is not None:
            await asyncio.to_thread(self._log.close)
            self._log = None
        if options.features_uri != self._features.uri:
            self._features = CustomerFeatures(options.features_uri)
            if await asyncio.to_thread(self._features.refresh):
                self._reference = self._typical()
        self._ensure_background()

    def _typical(self) -> dict[str, object]:
        """The typical customer of the latest scoring features, by the served model's catalogue."""
        catalogue = self._model.catalogue if self._model is not None and self._model.catalogue else self._catalogue
        return reference_values(self._features.frame, catalogue)

    def __del__(self) -> None:
        # Serve calls this on a graceful shutdown: write what is still buffered.
        log_writer = getattr(self, "_log", None)
        if log_writer is not None:
            try:
                log_writer.flush()
            except Exception:
                pass

    # -- scoring --------------------------------------------------------------------------------

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def _score(self, batches: list[list[dict]]) -> list[tuple[np.ndarray, LoadedModel]]:
        model = self._model
        if model is None:
            raise ServingError(503, f"no model loaded: {self._error}")
        return self._score_batches(model, CHAMPION, batches)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def _score_challenger(self, batches: list[list[dict]]) -> list[tuple[np.ndarray, LoadedModel]]:
        live = self._live_challenger
        if live is None:
            raise RuntimeError("the challenger was removed")
        return self._score_batches(live[0], live[1].mode, batches)

    def _score_batches(self, model: LoadedModel, arm: str, batches: list[list[dict]]):
        sizes = [len(b) for b in batches]
        rows = batches[0] if len(batches) == 1 else [r for b in batches for r in b]
        started = time.perf_counter()
        proba = model.score_records(rows)
        self._metrics.model_latency.observe(
            (time.perf_counter() - started) * 1000, {"model_version": model.version, "arm": arm}
        )
        self._metrics.batch_requests.observe(len(batches))
        self._metrics.batch_rows.observe(len(rows))
        return [(part, model) for part in np.split(proba, np.cumsum(sizes)[:-1])]

    async def _predict(self, x: list[dict]) -> tuple[np.ndarray, LoadedModel]:
        if self._model is None:
            raise HTTPException(status_code=503, detail=f"no model loaded: {self._error}")
        proba, model = await self._score(x)
        if not np.all(np.isfinite(proba)):
            raise HTTPException(status_code=422, detail="these features give no finite probability")
        return proba, model

    async def _answer(
        self, request_id: str, endpoint: str, records: list[dict], ids: list, explain: bool, as_of=None
    ) -> tuple[np.ndarray, LoadedModel, list[str], list[str], list | None]:
        """Score ``records`` as the rollout says: each record's probability, the champion, the version
        and arm that answered each, and the drivers (with ``explain``). Every score is logged, with
        its arm and whether it was returned; a shadow challenger scores after the answer."""
        proba, model = await self._predict(records)
        n = len(records)
        versions, arms = [model.version] * n, [CHAMPION] * n
        live = self._live_challenger
        canary = np.zeros(n, dtype=bool)
        challenger_proba, challenger = None, None
        if live is not None and live[1].mode == CANARY and live[1].share > 0:
            canary = in_canary(ids, live[1].share)
            if canary.any():
                picked = [records[i] for i in np.flatnonzero(canary)]
                try:
                    challenger_proba, challenger = await self._score_challenger(picked)
                    if not np.all(np.isfinite(challenger_proba)):
                        raise ValueError("no finite probability")
                except Exception as exc:  # the champion's answer stands: a rollout never fails a request
                    log.warning("canary version could not score %d records, the champion answers: %s", len(picked), exc)
                    self._metrics.challenger_fallbacks.inc(len(picked))
                    canary[:] = False
                    challenger_proba, challenger = None, None
        drivers = self._drivers(model, records) if explain else None
        served = proba.copy()
        where = np.flatnonzero(canary)
        if challenger_proba is not None and challenger is not None:
            served[where] = challenger_proba
            picked = [records[i] for i in where]
            for i in where:
                versions[i], arms[i] = challenger.version, CANARY
            if drivers is not None:
                for i, d in zip(where, self._drivers(challenger, picked)):
                    drivers[i] = d
            self._count(challenger.version, CANARY, len(where))
            picked_as_of = [as_of[i] for i in where] if as_of is not None else None
            self._log_predictions(
                request_id,
                endpoint,
                picked,
                [ids[i] for i in where],
                challenger_proba,
                challenger,
                picked_as_of,
                CANARY,
            )
        self._count(model.version, CHAMPION, n - len(where))
        self._log_predictions(request_id, endpoint, records, ids, proba, model, as_of, CHAMPION, ~canary)
        if live is not None and live[1].mode == SHADOW and in_shadow(request_id, live[1].share):
            task = asyncio.get_running_loop().create_task(self._shadow(request_id, endpoint, records, ids, as_of))
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)
        return served, model, versions, arms, drivers

    async def _shadow(self, request_id: str, endpoint: str, records: list[dict], ids: list, as_of) -> None:
        try:
            proba, challenger = await self._score_challenger(records)
        except Exception as exc:  # a shadow never affects anything but its own log rows
            log.warning("shadow scoring failed: %s", exc)
            return
        self._count(challenger.version, SHADOW, len(records))
        self._log_predictions(request_id, endpoint, records, ids, proba, challenger, as_of, SHADOW, None)

    def _count(self, version: str, arm: str, rows: int) -> None:
        if rows:
            self._metrics.predictions.inc(rows, {"model_version": version, "arm": arm})

    def _drivers(self, model: LoadedModel, records: list[dict]) -> list[list[dict]]:
        # Through the compiled scorer: the model's own contributions (TreeSHAP, linear terms) or occlusion.
        _, impact = explain_records(model.model, records, self._reference, model.scorer, model.catalogue)
        order = top_driver_order(impact, DRIVERS)
        names = model.features.names
        return [
            [{"feature": names[j], "impact": round(float(impact[i, j]), 6)} for j in order[i]]
            for i in range(len(records))
        ]

    def _log_predictions(
        self,
        request_id: str,
        endpoint: str,
        records: list[dict],
        ids,
        proba: np.ndarray,
        model: LoadedModel,
        as_of=None,
        arm: str = CHAMPION,
        served=None,
    ) -> None:
        """Log one model's scores of ``records``: ``served`` marks which were returned (None: all were
        for the champion and a canary, none for a shadow)."""
        if self._log is None:
            return
        try:
            now = dt.datetime.now(dt.UTC)
            meta = {
                "request_id": request_id,
                "logged_at": now,
                "endpoint": endpoint,
                "model_name": model.name,
                "model_version": model.version,
                "arm": arm,
            }
            days = as_of if as_of is not None else [now.date()] * len(records)
            returned = served if served is not None else [arm != SHADOW] * len(records)
            rows = [
                {**r, **meta, "customer_id": cid, "as_of": day, "churn_probability": float(p), "served": bool(s)}
                for r, cid, day, p, s in zip(records, ids, days, proba, returned)
            ]
            dropped = self._log.append(rows)
            if dropped:
                self._metrics.log_dropped.inc(dropped)
        except Exception as exc:  # logging never fails a request
            log.warning("prediction log append failed: %s", exc)

    def _parse_records(self, body: bytes) -> list[dict]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise HTTPException(status_code=400, detail=f"the body is not valid JSON: {exc}") from None
        single = isinstance(data, dict)
        if not single and not isinstance(data, list):
            raise HTTPException(
                status_code=422,
                detail=[{"loc": ["body"], "msg": "expected a record or a list of records", "type": "type_error"}],
            )
        if not single:
            if len(data) == 0:
                raise HTTPException(
                    status_code=422,
                    detail=[{"loc": ["body"], "msg": "the list of records is empty", "type": "too_short"}],
                )
            if len(data) > self._options.max_records_per_request:
                raise HTTPException(
                    status_code=413,
                    detail=f"{len(data)} records in one request; the limit is {self._options.max_records_per_request}",
                )
        try:
            records = [self._one.validate_python(data)] if single else self._many.validate_python(data)
        except ValidationError as exc:
            errors = [
                {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_context=False, include_input=False)
            ]
            raise HTTPException(status_code=422, detail=errors) from None
        return records

    # -- endpoints ------------------------------------------------------------------------------

    @api.post(
        "/v1/predict", response_model=PredictResponse, responses=ERROR_RESPONSES, summary="Score one customer or a list"
    )
    async def predict(
        self,
        request: Request,
        explain: bool = Query(False, description="Add each prediction's top three drivers."),
        horizons: bool = Query(
            False,
            description="Add the churn probability at 30, 60 and 90 days and the expected lifetime (`churn_survival@champion`).",
        ),
        offer: bool = Query(
            False,
            description="Add a retention offer's expected effect and the recommended action (`churn_uplift@champion`).",
        ),
    ) -> Response:
        """Score the records in the body (one object, or a list of up to `max_records_per_request`).

        A record may carry `customer_id`, which is only recorded in the prediction log."""
        self._ensure_background()
        _check_token(request, self._api_token, "prediction")
        if self._model is None:
            # Before validating: without a model the API may not even know its record schema yet.
            raise HTTPException(status_code=503, detail=f"no model loaded: {self._error}")
        records = self._parse_records(await request.body())
        request_id = request.state.request_id
        ids = [None if r.get("customer_id") is None else str(r["customer_id"]) for r in records]
        proba, model, versions, arms, drivers = await self._answer(request_id, "/v1/predict", records, ids, explain)
        extras = self._decision_models.answer(records, horizons, offer)
        predictions = [
            {
                "churn_probability": float(p),
                "customer_id": cid,
                "drivers": drivers[i] if drivers else None,
                **extras[i],
                "model_version": versions[i],
                "arm": arms[i],
            }
            for i, (p, cid) in enumerate(zip(proba, ids))
        ]
        return _json(
            {
                "request_id": request_id,
                "model_name": model.name,
                "model_version": model.version,
                "predictions": predictions,
            }
        )

    @api.post(
        "/v1/predict/customers",
        response_model=CustomersResponse,
        responses=ERROR_RESPONSES,
        summary="Score customers by id",
    )
    async def predict_customers(self, request: Request, body: CustomersRequest) -> Response:
        """Score customers from the latest `scoring_features`. An unknown id gets `found: false` with a
        reason; the other ids are still scored."""
        self._ensure_background()
        _check_token(request, self._api_token, "prediction")
        if len(body.customer_ids) > self._options.max_records_per_request:
            raise HTTPException(
                status_code=413,
                detail=f"{len(body.customer_ids)} customer ids in one request; the limit is {self._options.max_records_per_request}",
            )
        if self._model is None:
            raise HTTPException(status_code=503, detail=f"no model loaded: {self._error}")
        try:
            rows, found = self._features.lookup(body.customer_ids)
        except LookupError as exc:
            raise HTTPException(status_code=503, detail=f"customer features unavailable: {exc}") from None
        request_id = request.state.request_id
        model, proba, drivers, extras, versions, arms = self._model, np.empty(0), None, [], [], []
        if len(rows):
            records = features_frame(rows, self._model.features, fill_missing=True).to_dict("records")
            as_of = [pd.Timestamp(d).date() for d in rows[TIME_COLUMN]]
            proba, model, versions, arms, drivers = await self._answer(
                request_id,
                "/v1/predict/customers",
                records,
                [str(c) for c in rows[ID_COLUMN].tolist()],
                body.explain,
                as_of,
            )
            extras = self._decision_models.answer(records, body.horizons, body.offer)
        results, k = [], 0
        for cid, ok in zip(body.customer_ids, found):
            if ok:
                results.append(
                    {
                        "customer_id": cid,
                        "found": True,
                        "churn_probability": float(proba[k]),
                        "snapshot_date": pd.Timestamp(rows[TIME_COLUMN].iloc[k]).date(),
                        "drivers": drivers[k] if drivers else None,
                        **extras[k],
                        "model_version": versions[k],
                        "arm": arms[k],
                        "detail": None,
                    }
                )
                k += 1
            else:
                results.append(
                    {
                        "customer_id": cid,
                        "found": False,
                        "churn_probability": None,
                        "snapshot_date": None,
                        "drivers": None,
                        "detail": "unknown customer_id: not an active customer in the latest scoring_features",
                    }
                )
        return _json(
            {
                "request_id": request_id,
                "model_name": model.name,
                "model_version": model.version,
                "features_as_of": self._features.as_of,
                "results": results,
                "unknown": found.count(False),
            }
        )

    @api.get(
        "/v1/model", response_model=ModelInfo, responses={503: ERROR_RESPONSES[503]}, summary="The model being served"
    )
    async def model_info(self) -> ModelInfo:
        self._ensure_background()
        model = self._model
        if model is None:
            raise HTTPException(status_code=503, detail=f"no model loaded: {self._error}")
        return ModelInfo(
            name=model.name,
            version=model.version,
            alias=self._alias,
            following=self._following,  # type: ignore[arg-type]
            run_id=model.run_id,
            trained_at=model.created_at,
            loaded_at=self._loaded_at or dt.datetime.now(dt.UTC),
            metrics={k: v for k, v in model.metrics.items() if np.isfinite(v)},
            features=self._feature_columns,
            scorer=model.scorer_note or None,
            decision_models=self._decision_models.versions(),
            challenger=self._challenger_info(),
        )

    def _challenger_info(self) -> ChallengerInfo | None:
        live, wanted = self._live_challenger, self._challenger_wanted
        shown = wanted or (live[1] if live else None)
        if shown is None:
            return None
        loaded = live is not None and live[0].version == shown.version
        return ChallengerInfo(
            version=shown.version,
            mode=shown.mode,
            share=shown.share,
            loaded=loaded,
            loaded_at=live[2] if loaded else None,
            detail=None if loaded else (self._challenger_error or "loading"),
        )

    @api.get(
        "/health",
        response_model=Health,
        responses={503: {"description": "No model loaded.", "model": Health}},
        summary="Ready or degraded",
    )
    async def health(self) -> Response:
        self._ensure_background()
        model = self._model
        problems = [p for p in (self._error, self._features.error if self._features.uri else None) if p]
        body = Health(
            status="ready" if model is not None and not problems else "degraded",
            model_name=self._name,
            model_version=model.version if model else None,
            target_version=self._target,
            detail="; ".join(problems) or None,
        )
        return _json(body.model_dump(), status=200 if model is not None else 503)

    @api.post(
        "/v1/admin/reload",
        response_model=AdminResult,
        responses={401: ERROR_RESPONSES[401], 403: {"description": "Admin API disabled."}},
        summary="Resolve the alias now and load its version",
    )
    async def admin_reload(self, request: Request) -> AdminResult:
        self._require_admin(request)
        target = await self._pointer.refresh.remote()
        await self._apply(target)
        return AdminResult(
            target_version=target.get("version"), following=target.get("following", "alias"), detail=self._error
        )

    @api.post(
        "/v1/admin/model",
        response_model=AdminResult,
        responses=ADMIN_VERSION_RESPONSES,
        summary="Pin a registered version (null follows the alias again)",
    )
    async def admin_switch(self, request: Request, body: SwitchRequest) -> AdminResult:
        self._require_admin(request)
        result = await self._pointer.pin.remote(body.version)
        if not result.get("ok"):
            raise HTTPException(status_code=404, detail=result.get("detail"))
        await self._apply(result)
        return AdminResult(
            target_version=result.get("version"), following=result.get("following", "alias"), detail=self._error
        )

    @api.post(
        "/v1/admin/challenger",
        response_model=ChallengerResult,
        responses=ADMIN_VERSION_RESPONSES,
        summary="Serve a challenger beside the champion, in shadow or canary (null version removes it)",
    )
    async def admin_challenger(self, request: Request, body: ChallengerRequest) -> ChallengerResult:
        """Every replica follows within its sync interval; this one at once. A challenger that cannot be
        loaded is reported in `detail` and `/v1/model`, and never affects the champion's answers."""
        self._require_admin(request)
        rollout = None if body.version is None else body.model_dump(exclude={"reset"})
        result = await self._pointer.set_challenger.remote(rollout, body.reset)
        if not result.get("ok"):
            raise HTTPException(status_code=404, detail=result.get("detail"))
        await self._apply(result)
        return ChallengerResult(challenger=self._challenger_info(), detail=self._challenger_error)

    def _require_admin(self, request: Request) -> None:
        if self._admin_token is None:
            raise HTTPException(
                status_code=403, detail=f"the admin API is disabled: set {ADMIN_TOKEN_ENV} in the replicas' environment"
            )
        _check_token(request, self._admin_token, "the admin API")


def serving_schema(tracking_uri: str, model_name: str, alias: str) -> tuple[SignatureColumns, Catalogue]:
    """The API's record columns and their catalogue: the champion's signature and the catalogue it was
    trained on; none before a model is registered (then /v1/predict answers 503 until a redeploy)."""
    from mlflow.models import get_model_info

    from churn_platform.ml.registry import load_catalogue

    location = MLflowLocation(tracking_uri=tracking_uri, experiment_name="")
    try:
        version = resolve_alias(location, model_name, alias)
        info = get_model_info(f"models:/{model_name}/{version}")
        from mlflow import MlflowClient

        run_id = MlflowClient().get_model_version(model_name, version).run_id
        catalogue = load_catalogue(run_id, None) if run_id else Catalogue(())
        if info.signature is not None:
            return columns_from_signature(info.signature), catalogue
        return columns_from_catalogue(catalogue), catalogue
    except Exception as exc:
        log.warning(
            "no model at models:/%s@%s (%s): the API has no record schema until a redeploy", model_name, alias, exc
        )
    return (), Catalogue(())


def build_app(
    tracking_uri: str,
    model_name: str = "churn_model",
    alias: str = "champion",
    options: ServingOptions | None = None,
    pointer: PointerOptions | None = None,
    autoscaling: Autoscaling | None = None,
    ray_actor_options: dict | None = None,
):
    """The Serve application (for `serve.run`): the pointer and the autoscaled predictor."""
    signature, catalogue = serving_schema(tracking_uri, model_name, alias)
    columns = [list(c) for c in signature]
    pointer_app = ChampionPointer.options(user_config=(pointer or PointerOptions()).model_dump()).bind(
        tracking_uri, model_name, alias
    )
    predictor = ChurnPredictor.options(
        user_config=(options or ServingOptions()).model_dump(),
        autoscaling_config=(autoscaling or Autoscaling()).model_dump(),
        **({"ray_actor_options": ray_actor_options} if ray_actor_options else {}),
    )
    return predictor.bind(pointer_app, tracking_uri, model_name, alias, columns, catalogue.as_records())


def app_builder(args: dict[str, str]):
    """Application builder for Serve config files: `import_path: churn_platform.serving.app:app_builder`.

    The config's per-deployment ``user_config`` and ``autoscaling_config`` override what is set here."""
    return build_app(args["tracking_uri"], args.get("model_name", "churn_model"), args.get("alias", "champion"))
