"""The serving benchmark's baseline: the same champion behind a plain FastAPI app on uvicorn.

One process, no batching, no prediction log, no metrics: the same request parsing and
validation (the schema built from the model's signature) and the same scorer as the Ray
Serve deployment, so that the comparison measures what Ray Serve adds. Started by
`benchmarks/serving.py`:

    CHURN_PLATFORM_BENCH_TRACKING_URI=sqlite:///... uvicorn baseline_server:app --app-dir benchmarks
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import orjson
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from churn_platform.ml.registry import MLflowLocation, load_by_alias
from churn_platform.serving.app import signature_columns
from churn_platform.serving.schemas import record_validator
from churn_platform.settings import CHAMPION_ALIAS, REGISTERED_MODEL_NAME

TRACKING_URI = os.environ["CHURN_PLATFORM_BENCH_TRACKING_URI"]
location = MLflowLocation(TRACKING_URI, "")
model = load_by_alias(location, REGISTERED_MODEL_NAME, CHAMPION_ALIAS).with_compiled_scorer()
record = record_validator(signature_columns(TRACKING_URI, REGISTERED_MODEL_NAME, CHAMPION_ALIAS))
one, many = TypeAdapter(record), TypeAdapter(list[record])  # type: ignore[valid-type]

app = FastAPI()


@app.post("/v1/predict")
async def predict(request: Request) -> Response:
    try:
        data = orjson.loads(await request.body())
        records = [one.validate_python(data)] if isinstance(data, dict) else many.validate_python(data)
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    rows = records
    proba = model.score_records(rows)
    body = {
        "request_id": uuid.uuid4().hex,
        "model_name": model.name,
        "model_version": model.version,
        "predictions": [
            {"churn_probability": float(p), "customer_id": r.get("customer_id"), "drivers": None}
            for p, r in zip(np.asarray(proba), rows)
        ],
    }
    return Response(orjson.dumps(body), media_type="application/json")


@app.get("/health")
async def health() -> dict:
    return {"status": "ready", "model_version": model.version}
