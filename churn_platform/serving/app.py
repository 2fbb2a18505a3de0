"""The Ray Serve application: the registered champion over HTTP.

`POST /predict` scores one customer's features; `GET /health` says whether a model
is loaded. The deployment resolves ``models:/<name>@champion`` to a version and
loads that version; if it cannot, it stays up and reports itself degraded.
"""

import logging
import uuid
from typing import Optional

import pandas as pd
from fastapi import Body, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from ray import serve

from churn_platform.ml.registry import LoadedModel, MLflowLocation, load_by_alias
from churn_platform.serving.schemas import CustomerFeatures, Health, Prediction

log = logging.getLogger("ray.serve")

api = FastAPI(
    title="churn_platform prediction API",
    description="Churn probabilities from the registered champion model.",
    version="0.1.0",
)


@serve.deployment(name="ChurnPredictor", ray_actor_options={"num_cpus": 0.5})
@serve.ingress(api)
class ChurnPredictor:
    def __init__(self, tracking_uri: str, model_name: str, alias: str = "champion") -> None:
        self._location = MLflowLocation(tracking_uri=tracking_uri, experiment_name="")
        self._name = model_name
        self._alias = alias
        self._model: Optional[LoadedModel] = None
        self._error: Optional[str] = None
        try:
            self._model = load_by_alias(self._location, model_name, alias)
            log.info("loaded %s version %s (@%s)", model_name, self._model.version, alias)
        except Exception as exc:  # keep serving /health; predict answers 503 with the reason
            self._error = f"cannot load models:/{model_name}@{alias}: {exc}"
            log.error(self._error)

    @api.get("/health", response_model=Health)
    def health(self):
        if self._model is None:
            body = Health(status="degraded", model_name=self._name, detail=self._error)
            return JSONResponse(status_code=503, content=body.model_dump())
        return Health(status="ready", model_name=self._name, model_version=self._model.version)

    @api.post("/predict", response_model=Prediction)
    def predict(self, features: CustomerFeatures = Body(...)) -> Prediction:  # type: ignore[valid-type]
        if self._model is None:
            raise HTTPException(status_code=503, detail=f"no model loaded: {self._error}")
        frame = pd.DataFrame([features.model_dump()])  # type: ignore[attr-defined]
        probability = float(self._model.predict_proba(frame)[0])
        return Prediction(
            churn_probability=probability,
            model_name=self._model.name,
            model_version=self._model.version,
            request_id=uuid.uuid4().hex,
        )


def build_app(tracking_uri: str, model_name: str = "churn_model", alias: str = "champion"):
    """The Serve application, for `serve.run` and for a `serve deploy` config (import path)."""
    return ChurnPredictor.bind(tracking_uri, model_name, alias)


def app_builder(args: dict[str, str]):
    """Application builder for Serve config files: `import_path: churn_platform.serving.app:app_builder`."""
    return build_app(args["tracking_uri"], args.get("model_name", "churn_model"), args.get("alias", "champion"))
