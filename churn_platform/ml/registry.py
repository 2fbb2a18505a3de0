"""MLflow tracking and model registry: log candidates, register the best, move aliases."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
from pathlib import Path

import pandas as pd

from churn_platform.business.catalogue import LABEL_COLUMN, Catalogue
from churn_platform.ml.training import CandidateResult, TimeSplit, features_frame

CATALOGUE_ARTIFACT = "feature_catalogue.json"


def _quiet_downloads() -> None:
    """MLflow draws a progress bar for every artifact it downloads, a small JSON file included."""
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


"""The feature catalogue a version was trained on, logged in its run: what the API, drift and the
prediction log of that version follow."""

log = logging.getLogger(__name__)

# Models are stored with skops, not pickle. These are the types beyond skops'
# defaults that the candidates contain; each was reviewed, and a new one fails
# loudly at log time rather than silently loading arbitrary code.
SKOPS_TRUSTED_TYPES = [
    "numpy.dtype",
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    # The random forest's trees. skops warns that a crafted file could hold out-of-range node
    # indices; these files are written by this platform into its own registry and read back
    # from it, never taken from elsewhere.
    "sklearn.tree._tree.Tree",
    # Platt calibration around the frozen selected candidate.
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.frozen._frozen.FrozenEstimator",
]


def model_requirements() -> list[str]:
    """The serving environment of a logged model, pinned to what trained it. Given explicitly,
    MLflow need not load each model in a child process to infer them (seconds per model)."""
    from importlib.metadata import version

    packages = ("scikit-learn", "lightgbm", "skops", "numpy", "pandas", "scipy")
    return [f"{name}=={version(name)}" for name in packages]


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

    def activate_registry(self) -> None:
        """Point the MLflow client at this store, for reading the registry only (no experiment)."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)


@dataclasses.dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    alias: str | None
    run_id: str
    parent_run_id: str
    candidate: str
    model_uri: str
    metrics: dict[str, float]


def log_and_register(
    location: MLflowLocation,
    split: TimeSplit,
    results: list[CandidateResult],
    selected: CandidateResult,
    catalogue: Catalogue,
    registered_model_name: str,
    extra_tags: dict[str, str] | None = None,
) -> RegisteredModel:
    """Log each candidate as a nested run under one parent run, log the selected (calibrated)
    model as one more nested run, and register it as a new version, with no alias yet: the
    promotion gate decides the alias (``apply_decision``)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    location.activate()
    # A vocabulary learned from the data gives the API's example its most frequent value.
    catalogue = catalogue.with_examples_from(split.train)
    example = features_frame(split.test.head(5), catalogue)
    trained_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    requirements = model_requirements()

    from churn_platform.ml import plots

    x_test, y_test = features_frame(split.test, catalogue), split.test[LABEL_COLUMN].astype(int)

    def log_plots(result: CandidateResult) -> None:
        figures = plots.evaluation_figures(y_test, result.model.predict_proba(x_test)[:, 1], result.name, result.model)
        for path, figure in figures.items():
            mlflow.log_figure(figure, path)
        plots.close(figures)

    def log_model(result: CandidateResult):
        proba = result.model.predict_proba(example)[:, 1]
        return mlflow.sklearn.log_model(
            result.model,
            name="model",
            signature=infer_signature(example, proba),
            input_example=example,
            pyfunc_predict_fn="predict_proba",
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pip_requirements=requirements,
        )

    with mlflow.start_run(run_name=f"training-{trained_at}") as parent:
        mlflow.log_params({f"split_{k}": v for k, v in split.describe().items()})
        mlflow.set_tags({"churn_platform.kind": "training", **(extra_tags or {})})
        for result in results:
            with mlflow.start_run(run_name=result.name, nested=True):
                mlflow.log_params({"candidate": result.name, **result.params})
                mlflow.log_metrics({f"validation_{k}": v for k, v in result.validation_metrics.items()})
                mlflow.log_metrics({f"test_{k}": v for k, v in result.test_metrics.items()})
                log_plots(result)
                log_model(result)
        with mlflow.start_run(run_name=f"{selected.name} (selected, calibrated)", nested=True) as child:
            mlflow.log_params({"candidate": selected.name, **selected.params})
            mlflow.log_metrics({f"validation_{k}": v for k, v in selected.validation_metrics.items()})
            mlflow.log_metrics({f"test_{k}": v for k, v in selected.test_metrics.items()})
            mlflow.set_tag("churn_platform.kind", "selected")
            mlflow.log_dict({"features": catalogue.as_records()}, CATALOGUE_ARTIFACT)
            log_plots(selected)
            selected_info, selected_run_id = log_model(selected), child.info.run_id
        mlflow.log_metrics({f"best_test_{k}": v for k, v in selected.test_metrics.items()})
        mlflow.set_tag("best_candidate", selected.name)

    client = MlflowClient()
    _ensure_registered(
        client, registered_model_name, "Probability that a customer cancels within the label horizon after a snapshot."
    )
    version = client.create_model_version(
        name=registered_model_name,
        source=selected_info.model_uri,
        run_id=selected_run_id,
        model_id=selected_info.model_id,
        tags={
            "candidate": selected.name,
            "trained_at": trained_at,
            "test_roc_auc": f"{selected.test_metrics['roc_auc']:.4f}",
            "features": str(len(catalogue)),
            "holdout_snapshot": split.describe()["test_snapshot"],
        },
        description=f"{selected.name} (calibrated), test ROC-AUC {selected.test_metrics['roc_auc']:.4f}",
    )
    _wait_until_ready(client, registered_model_name, version.version)
    log.info("registered %s version %s", registered_model_name, version.version)
    return RegisteredModel(
        name=registered_model_name,
        version=str(version.version),
        alias=None,
        run_id=selected_run_id,
        parent_run_id=parent.info.run_id,
        candidate=selected.name,
        model_uri=f"models:/{registered_model_name}/{version.version}",
        metrics=dict(selected.test_metrics),
    )


def score_alias_on(
    location: MLflowLocation, name: str, alias: str, frame: pd.DataFrame, labels
) -> tuple[str | None, float | None, str]:
    """The version behind ``alias`` and its ROC-AUC on ``frame``; (None, None, why) when there is no
    such version, or (version, None, why) when it cannot score these rows."""
    version, scored, note = alias_metrics_on(location, name, alias, frame, labels)
    return version, scored.get("roc_auc"), note


def alias_metrics_on(
    location: MLflowLocation, name: str, alias: str, frame: pd.DataFrame, labels, economics=None
) -> tuple[str | None, dict[str, float], str]:
    """The version behind ``alias`` and its ROC-AUC (and, with ``economics``, EMPC) on ``frame``;
    (None, {}, why) when there is no such version, or (version, {}, why) when it cannot score these rows."""
    import mlflow
    from mlflow import MlflowClient
    from sklearn.metrics import roc_auc_score

    location.activate()
    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return None, {}, f"no version has alias {alias}"
    try:
        champion = load_version(location, name, str(mv.version), alias)
        proba = champion.predict_proba(frame)
        scored = {"roc_auc": float(roc_auc_score(labels, proba))}
        if economics is not None:
            scored["empc"] = economics.empc(labels, proba)[0]
        return str(mv.version), scored, ""
    except Exception as exc:  # a champion that cannot score the holdout is reported, not fatal
        return str(mv.version), {}, f"{type(exc).__name__}: {exc}"[:300]


def apply_decision(location: MLflowLocation, name: str, decision) -> None:
    """Point the decided alias at the version and record the decision as version tags."""
    from mlflow import MlflowClient

    location.activate()
    client = MlflowClient()
    for key, value in decision.tags().items():
        client.set_model_version_tag(name, decision.candidate_version, key, value)
    client.set_registered_model_alias(name, decision.alias, decision.candidate_version)
    log.info("%s version %s is now @%s: %s", name, decision.candidate_version, decision.alias, decision.reason)


def _ensure_registered(client, name: str, description: str) -> None:
    """Create the registered model ``name`` unless it exists."""
    import mlflow

    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, description=description)


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
    run_id: str | None = None
    created_at: dt.datetime | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    signature: object | None = None  # mlflow.models.ModelSignature
    scorer: object | None = None  # a verified churn_platform.ml.fast_predict.CompiledScorer, for serving
    scorer_note: str = ""
    catalogue: Catalogue | None = None  # what it was trained on (its run's feature_catalogue.json)

    @property
    def features(self) -> Catalogue:
        if self.catalogue is None:
            raise ValueError(f"{self.name} version {self.version} has no feature catalogue")
        return self.catalogue

    def predict_proba(self, frame: pd.DataFrame):
        return self.model.predict_proba(features_frame(frame, self.features, fill_missing=True))[:, 1]

    def with_compiled_scorer(self) -> LoadedModel:
        """This model with its verified compiled scorer (or none, and the reason, in ``scorer_note``)."""
        from churn_platform.ml.fast_predict import compile_scorer

        scorer, note = compile_scorer(self.model, self.features)
        return dataclasses.replace(self, scorer=scorer, scorer_note=note)

    def score_records(self, records: list[dict]):
        """Probabilities for feature records (dicts): the compiled scorer when there is one."""
        if self.scorer is not None:
            return self.scorer.score_records(records)  # type: ignore[attr-defined]
        return self.predict_proba(pd.DataFrame.from_records(records, columns=list(self.features.names)))


HEADLINE_METRICS = ("roc_auc", "pr_auc", "brier", "log_loss", "top_decile_lift", "ece", "model_over_oracle")


def load_by_alias(location: MLflowLocation, name: str, alias: str) -> LoadedModel:
    """Resolve ``models:/name@alias`` to a version and load that exact version."""
    return load_version(location, name, resolve_alias(location, name, alias), alias)


def resolve_alias(location: MLflowLocation, name: str, alias: str) -> str:
    from mlflow import MlflowClient

    location.activate_registry()
    return str(MlflowClient().get_model_version_by_alias(name, alias).version)


def alias_version(tracking_uri: str, name: str, alias: str) -> str | None:
    """The version ``name@alias`` points to, or None when there is no such model or alias. A local
    store that does not exist yet is not created by asking."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).exists():
        return None
    try:
        return str(
            MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            .get_model_version_by_alias(name, alias)
            .version
        )
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
            return None
        raise


def alias_with_tags(location: MLflowLocation, name: str, alias: str) -> tuple[str, dict[str, str]] | None:
    """The version ``name@alias`` points to and its tags, or None when there is no such alias."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    location.activate_registry()
    try:
        version = MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
            return None
        raise
    return str(version.version), dict(version.tags or {})


def load_catalogue(run_id: str | None, model) -> Catalogue:
    """The feature catalogue a version was trained on: its run's artifact; for a model logged without
    one, its input columns as the fitted model names them (numeric or categorical by its encoders)."""
    import mlflow

    if run_id:
        _quiet_downloads()
        with contextlib.suppress(Exception):
            return Catalogue.from_records(
                mlflow.artifacts.load_dict(f"runs:/{run_id}/{CATALOGUE_ARTIFACT}")["features"]
            )
    from churn_platform.ml.training import catalogue_of_model

    return catalogue_of_model(model)


def version_catalogue(location: MLflowLocation, name: str, version: str) -> Catalogue | None:
    """The feature catalogue a registered version was trained on, without loading the model (None
    when the version or its catalogue cannot be found)."""
    import mlflow
    from mlflow import MlflowClient

    location.activate_registry()
    _quiet_downloads()
    try:
        run_id = MlflowClient().get_model_version(name, str(version)).run_id
        return Catalogue.from_records(mlflow.artifacts.load_dict(f"runs:/{run_id}/{CATALOGUE_ARTIFACT}")["features"])
    except Exception:
        return None


def load_version(location: MLflowLocation, name: str, version: str, alias: str = "") -> LoadedModel:
    """Load one registered version with its signature, run id, creation time and headline test metrics."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import get_model_info

    location.activate_registry()
    client = MlflowClient()
    mv = client.get_model_version(name, str(version))
    uri = f"models:/{name}/{mv.version}"
    model = mlflow.sklearn.load_model(uri)
    signature = get_model_info(uri).signature
    metrics: dict[str, float] = {}
    if mv.run_id:
        with contextlib.suppress(Exception):  # metrics are informative; a missing run does not block serving
            run_metrics = client.get_run(mv.run_id).data.metrics
            # The version's run is the selected candidate's (test_*) or a training's parent run (best_test_*).
            for prefix in ("test_", "best_test_"):
                metrics = {k: float(run_metrics[prefix + k]) for k in HEADLINE_METRICS if prefix + k in run_metrics}
                if metrics:
                    break
    created = dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=dt.UTC) if mv.creation_timestamp else None
    return LoadedModel(
        catalogue=load_catalogue(mv.run_id, model),
        name=name,
        version=str(mv.version),
        alias=alias,
        model=model,
        tags=dict(mv.tags or {}),
        run_id=mv.run_id,
        created_at=created,
        metrics=metrics,
        signature=signature,
    )


UPLIFT_MODEL_NAME = "churn_uplift"


SURVIVAL_MODEL_NAME = "churn_survival"


@dataclasses.dataclass(frozen=True)
class DecisionModelKind:
    kind: str
    description: str
    trusted_types: tuple[str, ...]


DECISION_MODELS = {
    UPLIFT_MODEL_NAME: DecisionModelKind(
        "uplift",
        "How much a retention contact lowers a customer's churn probability (churn_platform.ml.uplift).",
        (*SKOPS_TRUSTED_TYPES, "churn_platform.ml.uplift.TLearner", "churn_platform.ml.uplift.RiskScaledUplift"),
    ),
    SURVIVAL_MODEL_NAME: DecisionModelKind(
        "survival",
        "Each customer's churn probability at 30, 60 and 90 days and expected remaining lifetime.",
        (*SKOPS_TRUSTED_TYPES, "churn_platform.ml.survival.SurvivalModel"),
    ),
}
"""The models beside the churn model, by registered name: what each is and the types skops may load."""


def register_uplift(
    location: MLflowLocation, estimator, example: pd.DataFrame, params, metrics, tags
) -> tuple[str, str]:
    """Register an uplift model (``register_decision_model`` of ``churn_uplift``)."""
    return register_decision_model(location, UPLIFT_MODEL_NAME, estimator, example, params, metrics, tags)


def register_decision_model(
    location: MLflowLocation,
    name: str,
    estimator,
    example: pd.DataFrame,
    params: dict,
    metrics: dict[str, float],
    tags: dict[str, str],
) -> tuple[str, str]:
    """Log a model beside the churn model (uplift, survival) as one MLflow run with its parameters
    and holdout metrics, in scikit-learn's flavor and skops format, and register it as a new version
    of ``name`` with no alias (its asset's gate decides). Returns (version, run id)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    model = DECISION_MODELS[name]
    location.activate()
    trained_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with mlflow.start_run(run_name=f"{model.kind}-{trained_at}") as run:
        mlflow.set_tags({"churn_platform.kind": model.kind, **tags})
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        info = mlflow.sklearn.log_model(
            estimator,
            name="model",
            signature=infer_signature(example, estimator.predict(example)),
            input_example=example,
            pyfunc_predict_fn="predict",
            serialization_format="skops",
            skops_trusted_types=list(model.trusted_types),
            pip_requirements=model_requirements(),
        )
    client = MlflowClient()
    _ensure_registered(client, name, model.description)
    version = client.create_model_version(
        name=name,
        source=info.model_uri,
        run_id=run.info.run_id,
        model_id=info.model_id,
        tags={k: str(v) for k, v in {**tags, **{f"holdout_{k}": f"{v:.4f}" for k, v in metrics.items()}}.items()},
    )
    _wait_until_ready(client, name, version.version)
    return str(version.version), run.info.run_id


def set_alias(location: MLflowLocation, name: str, alias: str, version: str) -> None:
    from mlflow import MlflowClient

    location.activate_registry()
    MlflowClient().set_registered_model_alias(name, alias, str(version))


def settle_rollout(location: MLflowLocation, name: str, version: str, promote: bool, reason: str) -> None:
    """End the rollout of ``version``: promoted, it becomes ``champion``; rolled back, ``challenger``.
    Either way the ``rollout`` alias is removed and the decision kept in the version's tags."""
    from mlflow import MlflowClient

    from churn_platform.ml.gate import CHALLENGER, CHAMPION, ROLLOUT, ROLLOUT_DECISION_TAG, ROLLOUT_REASON_TAG

    location.activate_registry()
    client = MlflowClient()
    client.set_model_version_tag(name, version, ROLLOUT_DECISION_TAG, "promoted" if promote else "rolled back")
    client.set_model_version_tag(name, version, ROLLOUT_REASON_TAG, reason[:5000])
    client.set_registered_model_alias(name, CHAMPION if promote else CHALLENGER, str(version))
    client.delete_registered_model_alias(name, ROLLOUT)


def stage_rollout(location: MLflowLocation, name: str, version: str, mode: str, share: float, reason: str) -> None:
    """Serve ``version`` beside the champion as ``@rollout`` in ``mode`` (shadow or canary) with
    ``share``, as the gate does under ``policy.rollout``: here by an operator's decision, recorded in
    the version's tags. A rollout in progress is replaced; the champion cannot be rolled out."""
    from mlflow import MlflowClient

    from churn_platform.ml.gate import CHAMPION, ROLLOUT, ROLLOUT_MODE_TAG, ROLLOUT_SHARE_TAG, check_rollout

    check_rollout(mode, share)
    location.activate_registry()
    client = MlflowClient()
    mv = client.get_model_version(name, str(version))  # an unknown version raises, naming it
    if CHAMPION in (mv.aliases or []):
        raise ValueError(f"{name} version {version} is the champion: only another version can be rolled out")
    for key, value in {
        ROLLOUT_MODE_TAG: mode,
        ROLLOUT_SHARE_TAG: f"{share:g}",
        "rollout_staged_by": "operator",
        "rollout_staged_reason": reason[:5000],
    }.items():
        client.set_model_version_tag(name, str(version), key, value)
    client.set_registered_model_alias(name, ROLLOUT, str(version))


def change_rollout(location: MLflowLocation, name: str, mode: str, share: float) -> str:
    """Serve the ``@rollout`` version in ``mode`` with ``share`` from now on (every replica follows
    within its poll interval); returns the version. ``LookupError`` when nothing is rolled out."""
    from mlflow import MlflowClient

    from churn_platform.ml.gate import ROLLOUT, ROLLOUT_MODE_TAG, ROLLOUT_SHARE_TAG, check_rollout

    check_rollout(mode, share)
    found = alias_with_tags(location, name, ROLLOUT)
    if found is None:
        raise LookupError(f"{name} has no @{ROLLOUT} version to change")
    version = found[0]
    client = MlflowClient()
    client.set_model_version_tag(name, version, ROLLOUT_MODE_TAG, mode)
    client.set_model_version_tag(name, version, ROLLOUT_SHARE_TAG, f"{share:g}")
    return version


def load_uplift(location: MLflowLocation, alias: str | None, version: str | None = None):
    """The uplift model behind ``churn_uplift@alias`` (or version ``version``) and its version, or
    (None, None) when there is none."""
    return load_decision_model(location, UPLIFT_MODEL_NAME, alias, version)


def load_decision_model(location: MLflowLocation, name: str, alias: str | None, version: str | None = None):
    """The model behind ``name@alias`` (or version ``version``) and its version, or (None, None) when
    there is none."""
    import mlflow

    if version is None:
        version = alias_version(location.tracking_uri, name, alias)
    if version is None:
        return None, None
    location.activate_registry()
    return mlflow.sklearn.load_model(f"models:/{name}/{version}"), version
