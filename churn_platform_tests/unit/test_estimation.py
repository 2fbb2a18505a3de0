"""Performance estimated from calibrated probabilities alone (CBPE), against the realised value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churn_platform.monitoring.estimation import MIN_SCORES, estimate_by_month, estimated_roc_auc


@pytest.mark.parametrize(("a", "b"), [(1, 6), (0.5, 3), (2, 2)])
def test_the_estimate_of_calibrated_scores_is_their_realised_roc_auc(a, b):
    errors = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        p = rng.beta(a, b, 5_000)
        y = rng.random(p.size) < p  # calibrated: each score is its customer's chance
        errors.append(estimated_roc_auc(p) - roc_auc_score(y, p))
    assert abs(np.mean(errors)) < 0.005 and np.std(errors) < 0.02


def test_ties_and_degenerate_scores():
    # Equal scores tell nobody apart: the estimate is a coin toss.
    assert estimated_roc_auc(np.full(100, 0.3)) == pytest.approx(0.5)
    assert np.isnan(estimated_roc_auc(np.zeros(10))) and np.isnan(estimated_roc_auc(np.ones(10)))
    # Two groups, 50 at 0.9 and 50 at 0.1: of the expected 50 × 50 churner-stayer pairs, 45 × 45
    # are ordered right, 45 × 5 + 5 × 45 are ties (half each), 5 × 5 wrong: 0.9.
    assert estimated_roc_auc(np.r_[np.full(50, 0.9), np.full(50, 0.1)]) == pytest.approx(0.9)


def month_of(seed: int, month: str, n: int = 4_000, concept_shift: float = 0.0):
    """A month of calibrated scores and outcomes; ``concept_shift`` adds churn the scores do not see."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-1.8, 1.3, n)
    p = 1 / (1 + np.exp(-logit))
    truth = 1 / (1 + np.exp(-(logit + concept_shift * rng.normal(0, 1.5, n))))
    ids = [f"c{i}" for i in range(n)]
    scores = pd.DataFrame({"customer_id": ids, "as_of": pd.Timestamp(month), "churn_probability": p})
    outcomes = pd.DataFrame(
        {"customer_id": ids, "as_of": pd.Timestamp(month), "matured": True, "churned": rng.random(n) < truth}
    )
    return scores, outcomes


def test_each_month_is_estimated_and_put_beside_its_outcome_once_matured():
    parts = [month_of(1, "2025-08-01"), month_of(2, "2025-09-01"), month_of(3, "2025-10-01", concept_shift=1.0)]
    scores = pd.concat([s for s, _ in parts], ignore_index=True)
    outcomes = pd.concat([o for _, o in parts[:3]], ignore_index=True)
    young = month_of(4, "2025-11-01")[0]
    frame = estimate_by_month(pd.concat([scores, young], ignore_index=True), outcomes)
    assert list(frame["month"].dt.strftime("%Y-%m")) == ["2025-08", "2025-09", "2025-10", "2025-11"]
    aug, sep, octo, nov = (frame.iloc[i] for i in range(4))
    # Calibrated months: within 0.03 of the realised ROC-AUC.
    assert abs(aug["estimate_error"]) < 0.03 and abs(sep["estimate_error"]) < 0.03
    # Concept drift (churn the scores do not see) is invisible to the estimate: only the outcomes show it.
    assert octo["estimate_error"] > 0.05
    # Not matured yet: estimated only.
    assert nov["matured"] == 0 and np.isnan(nov["realised_roc_auc"]) and 0.6 < nov["estimated_roc_auc"] < 0.95
    # Half matured is not realised: those customers are another population.
    half = estimate_by_month(scores[scores["as_of"] == "2025-08-01"], outcomes.iloc[:2_000])
    assert np.isnan(half["realised_roc_auc"].iloc[0]) and half["matured"].iloc[0] == 2_000
    # Too few scores: no estimate.
    assert estimate_by_month(scores.head(MIN_SCORES - 1)).empty
    assert estimate_by_month(scores.head(0)).empty


def test_miscalibrated_scores_are_recalibrated_on_the_latest_matured_month():
    rng = np.random.default_rng(9)
    frames, outcomes = [], []
    for month in ("2025-08-01", "2025-09-01"):
        truth = 1 / (1 + np.exp(-rng.normal(-2.0, 1.2, 6_000)))
        churned = rng.random(truth.size) < truth
        ids = [f"{month}-{i}" for i in range(truth.size)]
        # Over-confident scores: the same ranking, probabilities pushed apart.
        frames.append(pd.DataFrame({"customer_id": ids, "as_of": pd.Timestamp(month), "churn_probability": truth**1.6}))
        outcomes.append(
            pd.DataFrame({"customer_id": ids, "as_of": pd.Timestamp(month), "matured": True, "churned": churned})
        )
    frame = estimate_by_month(pd.concat(frames), pd.concat(outcomes))
    first, second = frame.iloc[0], frame.iloc[1]
    assert first["calibrated_on"] == "none" and second["calibrated_on"] == "2025-08"
    # Without a matured month before it the estimate is biased; recalibrated on August, September's is not.
    assert abs(first["estimate_error"]) > 0.02
    assert abs(second["estimate_error"]) < 0.01
    assert abs(second["estimated_churn_rate"] - second["realised_churn_rate"]) < 0.01
