"""Prediction drift with Evidently: served probabilities against the holdout's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn_platform.monitoring.drift import MIN_SERVED_ROWS, prediction_drift


def test_a_shifted_distribution_drifts_and_the_same_one_does_not(tmp_path):
    rng = np.random.default_rng(0)
    reference = pd.Series(rng.beta(2, 8, 2000))
    same = prediction_drift(reference, pd.Series(rng.beta(2, 8, 800)), tmp_path / "same.html")
    shifted = prediction_drift(reference, pd.Series(rng.beta(4, 6, 800)), tmp_path / "shifted.html")
    assert same.drifted is False and shifted.drifted is True
    assert shifted.method == same.method and shifted.threshold == same.threshold  # Evidently picks the test by size
    assert shifted.current_mean > shifted.reference_mean
    assert (tmp_path / "shifted.html").stat().st_size > 10_000


def test_too_few_served_predictions_give_no_verdict(tmp_path):
    result = prediction_drift(
        pd.Series(np.linspace(0, 1, 100)), pd.Series([0.2] * (MIN_SERVED_ROWS - 1)), tmp_path / "r.html"
    )
    assert result.drifted is None and result.score is None and result.html_path is None
    assert f"at least {MIN_SERVED_ROWS}" in result.note
