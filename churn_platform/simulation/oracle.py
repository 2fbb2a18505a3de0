"""How close a model comes to the best achievable, on generated data.

The generator writes each customer's true churn probability per snapshot date into
``_ground_truth/churn_probability_truth.parquet`` beside the sources. Ranking the
holdout rows by that true probability gives the oracle ROC-AUC: no model can expect
to beat it on those rows, so model / oracle says how much of the achievable signal the
model found. Sources without ground truth (your own data) simply have no oracle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from churn_platform.business.catalogue import ID_COLUMN, LABEL_COLUMN, TIME_COLUMN

TRUTH_FILE = "churn_probability_truth.parquet"
TRUTH_COLUMN = "churn_probability_30d"


def load_truth(ground_truth_dir: Path | None) -> pd.DataFrame | None:
    if ground_truth_dir is None:
        return None
    path = Path(ground_truth_dir) / TRUTH_FILE
    if not path.exists():
        return None
    truth = pd.read_parquet(path, columns=[ID_COLUMN, TIME_COLUMN, TRUTH_COLUMN])
    truth[TIME_COLUMN] = pd.to_datetime(truth[TIME_COLUMN])
    return truth


def oracle_metrics(truth: pd.DataFrame | None, holdout: pd.DataFrame, proba: np.ndarray) -> dict[str, float]:
    """Model and oracle ROC-AUC on the holdout rows that have a true probability, and their ratio."""
    if truth is None:
        return {}
    rows = holdout[[ID_COLUMN, TIME_COLUMN, LABEL_COLUMN]].copy()
    rows[TIME_COLUMN] = pd.to_datetime(rows[TIME_COLUMN])
    rows["__proba"] = np.asarray(proba, dtype=float)
    matched = rows.merge(truth, on=[ID_COLUMN, TIME_COLUMN], how="inner")
    y = matched[LABEL_COLUMN].astype(int)
    if len(matched) == 0 or y.nunique() < 2:
        return {}
    model_auc = float(roc_auc_score(y, matched["__proba"]))
    oracle_auc = float(roc_auc_score(y, matched[TRUTH_COLUMN]))
    return {
        "oracle_roc_auc": oracle_auc,
        "model_roc_auc_on_oracle_rows": model_auc,
        "model_over_oracle": model_auc / oracle_auc,
        "oracle_matched_share": len(matched) / len(rows),
    }
