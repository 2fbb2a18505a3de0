"""Performance estimated before the labels arrive: confidence-based performance estimation (CBPE).

A churn label matures a whole horizon after a score is made, so the real ROC-AUC of this month's
scores is known a month late. If the model's probabilities are calibrated, each score is itself
the chance that its customer churns, and the expected confusion matrix at every threshold follows
from the scores alone: above a threshold ``t``, the expected true positives are the sum of the
probabilities and the expected false positives the sum of their complements. The expected ROC
curve, and its area, are the estimate; the expected churn rate is the mean probability.

Calibration on the training holdout is not perfect, and a small miscalibration biases the
estimate (on the simulated business, Platt-scaled scores estimated 0.015 low). So, as NannyML does
on its reference data, the scores are first recalibrated (isotonic regression) on the latest month
whose outcomes have matured, and the estimate is made on the recalibrated scores; a month is never
recalibrated on its own outcomes.

This is NannyML's CBPE for ROC-AUC, written on the platform's own metrics (NannyML pins versions
of pandas and NumPy this platform does not use). It holds while the probabilities stay calibrated:
under covariate shift (customers change, the relation of features to churn does not) it does;
under concept drift (the same customers churn for other reasons) it cannot see the change, which
only the matured outcomes show. Each month's estimate is therefore put beside the realised value
once the labels mature, and the calibration the estimate relies on is the one measured then.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn_platform.ml.training import evaluate

MIN_SCORES = 50
"""The fewest scores a month needs to be estimated."""
MIN_REFERENCE = 500
"""The fewest matured scores, with churners and stayers, a month needs to recalibrate the next ones."""


def recalibrator(probabilities, churned):
    """An isotonic map from scores to the churn rates observed at them, fitted on a matured month
    (None when it is too small or has a single outcome)."""
    from sklearn.isotonic import IsotonicRegression

    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(churned).astype(int)
    if len(p) < MIN_REFERENCE or not 0 < y.sum() < len(y):
        return None
    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)


def estimated_roc_auc(probabilities) -> float:
    """The ROC-AUC expected of calibrated ``probabilities``: the area under the curve of expected
    true- and false-positive rates over every threshold (equal scores are one threshold)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    positives, negatives = p.sum(), (1.0 - p).sum()
    if positives <= 0 or negatives <= 0:
        return float("nan")
    order = np.argsort(-p, kind="stable")
    ordered = p[order]
    # One point per distinct score, from the highest down.
    last_of_value = np.r_[ordered[1:] != ordered[:-1], True]
    tpr = np.r_[0.0, np.cumsum(ordered)[last_of_value] / positives]
    fpr = np.r_[0.0, np.cumsum(1.0 - ordered)[last_of_value] / negatives]
    return float(np.trapezoid(tpr, fpr))


def estimate_by_month(scores: pd.DataFrame, outcomes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per month of ``scores`` (customer_id, as_of, churn_probability, optionally the model_version
    that scored them): the estimated ROC-AUC and churn
    rate, and, where ``outcomes`` (customer_id, as_of, matured, churned) have matured for the month's
    customers, the realised ROC-AUC, churn rate and the estimate's error."""
    columns = [
        "month",
        "scores",
        "model_version",
        "calibrated_on",
        "estimated_roc_auc",
        "estimated_churn_rate",
        "matured",
        "realised_roc_auc",
        "realised_churn_rate",
        "estimate_error",
    ]
    if scores.empty:
        return pd.DataFrame(columns=columns)
    frame = scores.assign(
        customer_id=scores["customer_id"].astype(str),
        as_of=pd.to_datetime(scores["as_of"]),
        churn_probability=scores["churn_probability"].astype(float),
    )
    if outcomes is not None and len(outcomes):
        matured = outcomes[outcomes["matured"].astype(bool)]
        labels = matured.assign(
            customer_id=matured["customer_id"].astype(str), as_of=pd.to_datetime(matured["as_of"])
        ).drop_duplicates(["customer_id", "as_of"])[["customer_id", "as_of", "churned"]]
        frame = frame.merge(labels, on=["customer_id", "as_of"], how="left")
    else:
        frame["churned"] = None
    frame["month"] = frame["as_of"].dt.to_period("M").dt.to_timestamp()
    rows = []
    reference, reference_month = None, "none"  # the latest matured month before this one
    for month, g in frame.groupby("month", sort=True):
        if len(g) < MIN_SCORES:
            continue
        p = g["churn_probability"].to_numpy()
        known = g[g["churned"].notna()]
        y = known["churned"].astype(bool).to_numpy().astype(int)
        # Realised only when (nearly) all of the month's scores have matured: a part is another population.
        realised = len(known) >= 0.95 * len(g) and 0 < y.sum() < len(y)
        realised_auc = evaluate(y, known["churn_probability"].to_numpy())["roc_auc"] if realised else float("nan")
        expected = reference.predict(p) if reference is not None else p
        estimate = estimated_roc_auc(expected)
        rows.append(
            {
                "month": month,
                "scores": len(g),
                "model_version": str(g["model_version"].iloc[0]) if "model_version" in g else None,
                "calibrated_on": reference_month,
                "estimated_roc_auc": estimate,
                "estimated_churn_rate": float(expected.mean()),
                "matured": len(known),
                "realised_roc_auc": realised_auc,
                "realised_churn_rate": float(y.mean()) if realised else float("nan"),
                "estimate_error": estimate - realised_auc if realised else float("nan"),
            }
        )
        if realised:
            fitted = recalibrator(known["churn_probability"].to_numpy(), y)
            if fitted is not None:
                reference, reference_month = fitted, f"{month:%Y-%m}"
    return pd.DataFrame(rows, columns=columns)
