"""The feedback loop's second half: how good the scores were.

A prediction made for a customer "as of" a day matures once the label horizon after that
day has been observed in the sources; its outcome is whether the customer cancelled within
the horizon (the dbt model ``churn_outcomes``). Matured outcomes give each model version's real
performance over time.
"""

from __future__ import annotations

import pandas as pd

from churn_platform.ml.training import evaluate, expected_calibration_error

OUTCOME_COLUMNS = ("source", "customer_id", "as_of", "model_version", "churn_probability", "matured", "churned")
MIN_ROWS_FOR_PERFORMANCE = 50


def performance(outcomes_frame: pd.DataFrame) -> pd.DataFrame:
    """ROC-AUC, top-decile lift and calibration of matured predictions, per model version and as-of month."""
    matured = outcomes_frame[outcomes_frame["matured"].astype(bool)].copy()
    columns = [
        "model_version",
        "month",
        "predictions",
        "churned",
        "roc_auc",
        "top_decile_lift",
        "mean_predicted",
        "observed_rate",
        "ece",
    ]
    if matured.empty:
        return pd.DataFrame(columns=columns)
    matured["month"] = pd.to_datetime(matured["as_of"]).dt.to_period("M").dt.to_timestamp()
    rows = []
    for (version, month), g in matured.groupby(["model_version", "month"], sort=True):
        y = g["churned"].astype(bool).to_numpy().astype(int)
        p = g["churn_probability"].to_numpy(dtype=float)
        # The training metrics, where they are defined (a month needs churners and stayers).
        metrics = evaluate(y, p) if 0 < y.sum() < len(y) else {}
        rows.append(
            {
                "model_version": str(version),
                "month": month,
                "predictions": len(g),
                "churned": int(y.sum()),
                "roc_auc": metrics.get("roc_auc", float("nan")),
                "top_decile_lift": metrics.get("top_decile_lift", float("nan")),
                "mean_predicted": float(p.mean()),
                "observed_rate": float(y.mean()),
                "ece": expected_calibration_error(y, p),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def latest_judgeable(perf: pd.DataFrame, min_rows: int = MIN_ROWS_FOR_PERFORMANCE) -> pd.Series | None:
    """The latest month with enough matured predictions of both outcomes to judge a model by."""
    ok = perf[(perf["predictions"] >= min_rows) & perf["roc_auc"].notna()]
    return None if ok.empty else ok.sort_values(["month", "model_version"]).iloc[-1]
