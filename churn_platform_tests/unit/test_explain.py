"""Explanations from the model itself: LightGBM's TreeSHAP and the logistic regression's exact
terms, in probability points that add up; occlusion, through the compiled scorer, for the forest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from churn_platform.ml import training
from churn_platform.ml.fast_predict import compile_scorer
from churn_platform.ml.scoring import explain, occlusion_impact, reference_values
from churn_platform_tests.business import CATALOGUE
from churn_platform_tests.unit.test_fast_predict import synthetic


@pytest.fixture(scope="module")
def fitted():
    (x, y), (xv, yv), (xt, _) = synthetic(3000, 1), synthetic(800, 2), synthetic(300, 3)
    models = {}
    for name in training.CANDIDATES:
        pipe = training.CANDIDATES[name](7, CATALOGUE.numeric, CATALOGUE.categorical, CATALOGUE.monotone)
        training._fit(name, pipe, x, y, xv, yv, len(CATALOGUE.categorical))
        models[name] = pipe
        models[f"{name}+platt"] = training.calibrate(pipe, xv, yv)
    return models, xt, reference_values(x, CATALOGUE)


@pytest.mark.parametrize("name", ["lightgbm", "lightgbm+platt", "logistic_regression", "logistic_regression+platt"])
def test_own_contributions_add_up_to_the_probability_difference(fitted, name):
    models, xt, reference = fitted
    model = models[name]
    scorer, _ = compile_scorer(model, CATALOGUE)
    assert scorer.explain_records is not None and scorer.explanation != "occlusion against the typical customer"
    proba, impact = scorer.explain_records(xt.to_dict("records"), reference)
    np.testing.assert_allclose(proba, model.predict_proba(xt)[:, 1], rtol=0, atol=1e-9)
    assert impact.shape == (len(xt), len(CATALOGUE.names))
    if name.startswith("logistic_regression"):
        # Exact against the typical customer: the impacts add up to the difference from its probability.
        typical = model.predict_proba(training.features_frame(pd.DataFrame([reference]), CATALOGUE))[:, 1]
        np.testing.assert_allclose(impact.sum(axis=1), proba - typical[0], rtol=0, atol=1e-9)
    else:
        # TreeSHAP against the model's expected score: LightGBM's own numbers, per input column.
        pipe = model if name == "lightgbm" else model.calibrated_classifiers_[0].estimator.estimator
        prepared = pipe.named_steps["prepare"].transform(xt)
        contrib = pipe.named_steps["model"].booster_.predict(prepared, pred_contrib=True)
        expected_p = expit(contrib[:, -1])
        if name == "lightgbm":
            np.testing.assert_allclose(impact.sum(axis=1), proba - expected_p, rtol=0, atol=1e-9)
        # Same signs as LightGBM's contributions (one prepared column per feature here).
        columns = [c.split("__")[-1] for c in pipe.named_steps["prepare"].get_feature_names_out()]
        phi = np.zeros_like(impact)
        for column, feature in enumerate(columns):
            phi[:, CATALOGUE.names.index(feature)] = contrib[:, column]
        nonzero = np.abs(phi) > 1e-9
        assert (np.sign(impact[nonzero]) == np.sign(phi[nonzero])).all()


def test_the_typical_customer_has_no_drivers_and_monotone_features_push_up(fitted):
    models, _, reference = fitted
    scorer, _ = compile_scorer(models["logistic_regression"], CATALOGUE)
    _, impact = scorer.explain_records([dict(reference)], reference)
    np.testing.assert_allclose(impact, 0.0, atol=1e-12)
    risky = {**reference, "failed_payments_90d": 40.0, "contract_type": "monthly"}
    for name in ("logistic_regression", "lightgbm"):
        scorer, _ = compile_scorer(models[name], CATALOGUE)
        _, impact = scorer.explain_records([risky], reference)
        assert impact[0, CATALOGUE.names.index("failed_payments_90d")] > 0, name


def test_the_forest_is_explained_by_occlusion_through_the_compiled_scorer(fitted):
    models, xt, reference = fitted
    model = models["random_forest"]
    scorer, _ = compile_scorer(model, CATALOGUE)
    assert scorer.explain_records is None
    proba, impact = explain(model, xt, reference, scorer)
    expected_proba, expected_impact = occlusion_impact(model, xt, reference)
    np.testing.assert_allclose(proba, expected_proba, rtol=0, atol=1e-9)
    np.testing.assert_allclose(impact, expected_impact, rtol=0, atol=1e-9)
