"""MLflow tracking and model registry: log candidates, register the best, move aliases."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path

import pandas as pd

from churn_platform.features import FEATURE_NAMES
from churn_platform.ml.training import CandidateResult, TimeSplit, features_frame

log = logging.getLogger(__name__)

# Models are stored with skops, not pickle. These are the types beyond skops'
# defaults that the candidates contain; each was reviewed, and a new one fails
# loudly at log time rather than silently loading arbitrary code.
SKOPS_TRUSTED_TYPES = [
    "numpy.dtype",
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
]


@dataclasses.dataclass(frozen=True)
class MLflowLocation:
    tracking_uri: str
    experiment_name: str
    artifact_location: str | None = None

    def activate(self) -> str:
        """Point the MLflow client at this store; create the experiment if needed. Returns its id."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        experiment = mlflow.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            if self.artifact_location and self.artifact_location.startswith("file:"):
                Path(self.artifact_location.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
            experiment_id = mlflow.create_experiment(self.experiment_name, artifact_location=self.artifact_location)
        else:
            experiment_id = experiment.experiment_id
        mlflow.set_experiment(experiment_id=experiment_id)
        return experiment_id


@dataclasses.dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    alias: str
    run_id: str
    parent_run_id: str
    candidate: str
    model_uri: str
    metrics: dict[str, float]


def log_and_register(
    location: MLflowLocation,
    split: TimeSplit,
    results: list[CandidateResult],
    best: CandidateResult,
    registered_model_name: str,
    alias: str,
    extra_tags: dict[str, str] | None = None,
) -> RegisteredModel:
    """Log each candidate as a nested run, register the best as a new version, point ``alias`` at it."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    location.activate()
    example = features_frame(split.test.head(5))
    trained_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    best_info = None
    best_run_id = ""
    with mlflow.start_run(run_name=f"training-{trained_at}") as parent:
        mlflow.log_params({f"split_{k}": v for k, v in split.describe().items()})
        mlflow.set_tags({"churn_platform.kind": "training", **(extra_tags or {})})
        for result in results:
            with mlflow.start_run(run_name=result.name, nested=True) as child:
                mlflow.log_params({"candidate": result.name, **result.params})
                mlflow.log_metrics({f"validation_{k}": v for k, v in result.validation_metrics.items()})
                mlflow.log_metrics({f"test_{k}": v for k, v in result.test_metrics.items()})
                proba = result.model.predict_proba(example)[:, 1]
                info = mlflow.sklearn.log_model(
                    result.model,
                    name="model",
                    signature=infer_signature(example, proba),
                    input_example=example,
                    pyfunc_predict_fn="predict_proba",
                    serialization_format="skops",
                    skops_trusted_types=SKOPS_TRUSTED_TYPES,
                )
                if result is best:
                    best_info, best_run_id = info, child.info.run_id
        mlflow.log_metrics({f"best_test_{k}": v for k, v in best.test_metrics.items()})
        mlflow.set_tag("best_candidate", best.name)
    assert best_info is not None

    client = MlflowClient()
    try:
        client.get_registered_model(registered_model_name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(
            registered_model_name,
            description="Probability that a customer cancels within the label horizon after a snapshot.",
        )
    version = client.create_model_version(
        name=registered_model_name,
        source=best_info.model_uri,
        run_id=best_run_id,
        model_id=best_info.model_id,
        tags={
            "candidate": best.name,
            "trained_at": trained_at,
            "test_roc_auc": f"{best.test_metrics['roc_auc']:.4f}",
            "features": ",".join(FEATURE_NAMES),
        },
        description=f"{best.name}, test ROC-AUC {best.test_metrics['roc_auc']:.4f}",
    )
    _wait_until_ready(client, registered_model_name, version.version)
    client.set_registered_model_alias(registered_model_name, alias, version.version)
    log.info("registered %s version %s as @%s", registered_model_name, version.version, alias)
    return RegisteredModel(
        name=registered_model_name,
        version=str(version.version),
        alias=alias,
        run_id=best_run_id,
        parent_run_id=parent.info.run_id,
        candidate=best.name,
        model_uri=f"models:/{registered_model_name}/{version.version}",
        metrics=dict(best.test_metrics),
    )


def _wait_until_ready(client, name: str, version: str, timeout_s: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        mv = client.get_model_version(name, version)
        if mv.status == "READY":
            return
        if mv.status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
            raise RuntimeError(f"model version {name}/{version} did not become ready: {mv.status} {mv.status_message}")
        time.sleep(0.2)


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    alias: str
    model: object  # a fitted sklearn Pipeline
    tags: dict[str, str]

    def predict_proba(self, frame: pd.DataFrame):
        return self.model.predict_proba(features_frame(frame))[:, 1]


def load_by_alias(location: MLflowLocation, name: str, alias: str) -> LoadedModel:
    """Resolve ``models:/name@alias`` to a version and load that exact version."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(location.tracking_uri)
    mlflow.set_registry_uri(location.tracking_uri)
    client = MlflowClient()
    mv = client.get_model_version_by_alias(name, alias)
    model = mlflow.sklearn.load_model(f"models:/{name}/{mv.version}")
    return LoadedModel(name=name, version=str(mv.version), alias=alias, model=model, tags=dict(mv.tags or {}))
