"""Batch scoring on Ray Data (a real local Ray) gives the same scores as in process."""

from __future__ import annotations

import pandas as pd
import pytest

from churn_platform.ml.scoring import RiskTiers, reference_values, score_frame, score_with_ray
from churn_platform.ml.training import features_frame
from churn_platform_tests.business import CATALOGUE
from churn_platform_tests.unit.test_scoring import trained_logistic_regression

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def trained():
    return trained_logistic_regression()


def test_ray_data_scores_equal_in_process_scores(trained, tmp_path):
    import mlflow
    import ray
    from mlflow.models import infer_signature

    from churn_platform.ml.registry import SKOPS_TRUSTED_TYPES

    model, population = trained
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("scoring", artifact_location=(tmp_path / "artifacts").as_uri())
    example = features_frame(population.head(3), CATALOGUE)
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict_proba(example)[:, 1]),
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            registered_model_name="churn_model",
            pip_requirements=["scikit-learn"],
        )
    version = str(info.registered_model_version)
    reference = reference_values(population, CATALOGUE)
    cutoffs = RiskTiers().cutoffs(model.predict_proba(features_frame(population, CATALOGUE))[:, 1])
    expected = score_frame(model, CATALOGUE, population, "churn_model", version, reference, cutoffs)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        on_ray = score_with_ray(
            population, uri, "churn_model", version, reference, cutoffs, CATALOGUE, batch_size=250, workers=2
        )
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(
        on_ray.reset_index(drop=True),
        expected.sort_values("customer_id", kind="stable").reset_index(drop=True),
        check_dtype=False,
    )
