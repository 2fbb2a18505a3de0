"""The compiled serving scorer gives the pipeline's probabilities, or declines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from churn_platform.ml import training
from churn_platform.ml.fast_predict import compile_scorer, probe_records
from churn_platform_tests.business import CATALOGUE


def synthetic(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    data = {}
    for f in CATALOGUE.features:
        if f.kind == "categorical":
            data[f.name] = rng.choice(list(f.categories), size=n)
        else:
            values = rng.gamma(2.0, 10.0, size=n)
            if f.nullable:
                values[rng.random(n) < 0.1] = np.nan
            data[f.name] = values
    x = pd.DataFrame(data)
    logit = (
        0.08 * x["failed_payments_90d"]
        + 0.05 * x["days_since_last_activity"]
        - 0.02 * x["sessions_30d"]
        + (x["contract_type"] == "monthly") * 0.8
        - 1
    )
    y = pd.Series((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int))
    return training.features_frame(x, CATALOGUE), y


@pytest.fixture(scope="module")
def data():
    return synthetic(3000, 1), synthetic(800, 2), synthetic(500, 3)


@pytest.mark.parametrize("name", list(training.CANDIDATES))
@pytest.mark.parametrize("calibrated", [False, True])
def test_compiled_scorer_equals_the_pipeline(data, name, calibrated):
    (x, y), (xv, yv), (xt, _) = data
    pipe = training.CANDIDATES[name](7, CATALOGUE.numeric, CATALOGUE.categorical, CATALOGUE.monotone)
    training._fit(name, pipe, x, y, xv, yv, len(CATALOGUE.categorical))
    model = training.calibrate(pipe, xv, yv) if calibrated else pipe
    scorer, note = compile_scorer(model, CATALOGUE)
    assert scorer is not None, note
    assert "agrees with the pipeline" in note
    # Rows it was not verified on, including unknown and missing categories.
    xt = xt.copy()
    xt.loc[xt.index[:20], "plan"] = "platinum"
    xt.loc[xt.index[20:40], "region"] = None
    expected = model.predict_proba(xt)[:, 1]
    got = scorer.score_records(xt.to_dict("records"))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(scorer.predict_proba(xt), expected, rtol=0, atol=1e-12)


def test_unknown_shapes_are_declined_with_the_reason(data):
    (x, y), (xv, yv), _ = data
    pipe = training.CANDIDATES["lightgbm"](7, CATALOGUE.numeric, CATALOGUE.categorical, CATALOGUE.monotone)
    training._fit("lightgbm", pipe, x, y, xv, yv, len(CATALOGUE.categorical))
    isotonic = CalibratedClassifierCV(FrozenEstimator(pipe), method="isotonic").fit(xv, yv)
    scorer, note = compile_scorer(isotonic, CATALOGUE)
    assert scorer is None and "sigmoid" in note
    from sklearn.tree import DecisionTreeClassifier

    scorer, note = compile_scorer(DecisionTreeClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1]), CATALOGUE)
    assert scorer is None and "not compiled" in note


def test_probe_rows_cover_every_category_and_missing_values():
    rows = probe_records(CATALOGUE)
    for f in CATALOGUE.features:
        seen = {r[f.name] for r in rows}
        if f.kind == "categorical":
            assert set(f.categories) <= seen and None in seen and "never_seen_before" in seen
        else:
            assert None in seen and 1e9 in seen
    assert all(set(r) == set(CATALOGUE.names) for r in rows)
    assert set(CATALOGUE.numeric) | set(CATALOGUE.categorical) == set(CATALOGUE.names)


def test_the_agreement_note_says_exactly_or_how_close():
    from churn_platform.ml.fast_predict import agreement

    assert agreement(0.0, 114) == "agrees with the pipeline exactly on 114 probe rows"
    assert agreement(3.2e-12, 114) == "agrees with the pipeline within 3.2e-12 (tolerance 1e-09) on 114 probe rows"
