"""Batch scoring: tiers, drivers and revenue at risk; a batch scores like the whole; the same
function on Ray Data (a real local Ray) gives the same scores as in process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_platform.business.catalogue import LABEL_COLUMN, TIME_COLUMN
from churn_platform.ml.scoring import SCORE_COLUMNS, RiskTiers, reference_values, score_frame
from churn_platform.ml.training import build_logistic_regression, features_frame
from churn_platform_tests.business import CATALOGUE
from churn_platform_tests.unit.test_training import make_training_set


def trained_logistic_regression():
    """A logistic regression and the latest snapshot's population to score (shared with the Ray test)."""
    df = make_training_set(rows_per_snapshot=1000, seed=4)
    model = build_logistic_regression(1, CATALOGUE.numeric, CATALOGUE.categorical).fit(
        features_frame(df, CATALOGUE), df[LABEL_COLUMN].astype(int)
    )
    population = df[df[TIME_COLUMN] == df[TIME_COLUMN].max()].reset_index(drop=True)
    return model, population


@pytest.fixture(scope="module")
def trained():
    return trained_logistic_regression()


def _score(model, population, frame=None):
    reference = reference_values(population, CATALOGUE)
    cutoffs = RiskTiers().cutoffs(model.predict_proba(features_frame(population, CATALOGUE))[:, 1])
    return score_frame(model, CATALOGUE, population if frame is None else frame, "churn_model", "4", reference, cutoffs)


def test_scores_have_tiers_drivers_and_revenue_at_risk(trained):
    model, population = trained
    scores = _score(model, population)
    assert list(scores.columns) == list(SCORE_COLUMNS) and len(scores) == len(population)
    shares = scores["risk_tier"].value_counts(normalize=True)
    assert shares["high"] == pytest.approx(0.10, abs=0.01) and shares["medium"] == pytest.approx(0.20, abs=0.01)
    high, low = scores[scores.risk_tier == "high"], scores[scores.risk_tier == "low"]
    assert high["churn_probability"].min() >= low["churn_probability"].max()
    np.testing.assert_allclose(scores["revenue_at_risk"], scores["churn_probability"] * population["mrr"])
    assert set(scores["driver_1"]) <= set(CATALOGUE.names)
    # Drivers are ordered by impact, and differ within a customer.
    assert (scores["driver_1_impact"] >= scores["driver_2_impact"]).all()
    assert (scores["driver_2_impact"] >= scores["driver_3_impact"]).all()
    assert (scores["driver_1"] != scores["driver_2"]).all()
    # The synthetic risk rises with a monthly contract: it drives most high-risk monthly customers.
    monthly_high = high[population.loc[high.index, "contract_type"] == "monthly"]
    assert (monthly_high[["driver_1", "driver_2", "driver_3"]] == "contract_type").any(axis=1).mean() > 0.8
    assert (scores["model_version"] == "4").all()


def test_a_batch_scores_like_the_whole_and_scoring_is_deterministic(trained):
    model, population = trained
    whole = _score(model, population)
    halves = pd.concat(
        [_score(model, population, population.iloc[:300]), _score(model, population, population.iloc[300:])],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(halves, whole)
    pd.testing.assert_frame_equal(_score(model, population), whole)


def test_risk_tiers_are_validated():
    with pytest.raises(ValueError, match="risk tier"):
        RiskTiers(high=0.6, medium=0.5)
