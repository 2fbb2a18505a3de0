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
from churn_platform.business.declaration import TREATED

TRUTH_FILE = "churn_probability_truth.parquet"
TRUTH_COLUMN = "churn_probability_30d"


def load_truth(ground_truth_dir: Path | None, column: str = TRUTH_COLUMN) -> pd.DataFrame | None:
    """Each customer's true ``column`` at each month start, or None when the ground truth (or that
    column in it) is not there."""
    if ground_truth_dir is None:
        return None
    path = Path(ground_truth_dir) / TRUTH_FILE
    if not path.exists():
        return None
    import pyarrow.parquet as pq

    if column not in pq.read_schema(path).names:
        return None
    truth = pd.read_parquet(path, columns=[ID_COLUMN, TIME_COLUMN, column])
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


UPLIFT_COLUMN = "uplift_30d"


def load_uplift_truth(ground_truth_dir: Path | None) -> pd.DataFrame | None:
    """Each customer's true uplift of an offer at each month start (``uplift_30d``), keyed by text ids
    (as the contacts' table gives them), if the ground truth has it."""
    truth = load_truth(ground_truth_dir, UPLIFT_COLUMN)
    if truth is not None:
        truth[ID_COLUMN] = truth[ID_COLUMN].astype(str)
    return truth


def uplift_oracle_metrics(truth: pd.DataFrame | None, holdout: pd.DataFrame, estimate: np.ndarray) -> dict[str, float]:
    """The model's and the oracle's (the true uplift's) Qini coefficients on the holdout contacts
    whose snapshot has a true uplift, and their ratio."""
    from churn_platform.ml.uplift import qini_coefficient

    if truth is None:
        return {}
    rows = holdout[[ID_COLUMN, TIME_COLUMN, "arm", "churned"]].copy()
    rows[ID_COLUMN] = rows[ID_COLUMN].astype(str)
    rows[TIME_COLUMN] = pd.to_datetime(rows[TIME_COLUMN])
    rows["__estimate"] = np.asarray(estimate, dtype=float)
    matched = rows.merge(truth, on=[ID_COLUMN, TIME_COLUMN], how="inner")
    if len(matched) == 0 or matched["arm"].nunique() < 2:
        return {}
    treated, churned = (matched["arm"] == TREATED).to_numpy(), matched["churned"].astype(bool).to_numpy()
    model = qini_coefficient(matched["__estimate"].to_numpy(), treated, churned)
    oracle = qini_coefficient(matched[UPLIFT_COLUMN].to_numpy(), treated, churned)
    return {
        "oracle_qini": oracle,
        "model_qini_on_oracle_rows": model,
        "qini_over_oracle": model / oracle if oracle > 0 else float("nan"),
        "oracle_matched_share": len(matched) / len(rows),
    }


def oracle_survival_metrics(truth: pd.DataFrame | None, holdout: pd.DataFrame, model_metrics: dict) -> dict[str, float]:
    """The same measures for the true churn probabilities (``truth``: each customer's true 30-day
    probability at each snapshot, from a constant daily hazard): the oracle's concordance and
    calibration on the holdout rows that have a truth, and the model's concordance less the oracle's."""
    if truth is None:
        return {}
    from churn_platform.ml.survival import HORIZONS, concordance, horizon_calibration, time_and_event

    rows = holdout.copy()
    rows[ID_COLUMN] = rows[ID_COLUMN].astype(str)
    rows[TIME_COLUMN] = pd.to_datetime(rows[TIME_COLUMN])
    t = truth.assign(**{ID_COLUMN: truth[ID_COLUMN].astype(str)})
    matched = rows.merge(t, on=[ID_COLUMN, TIME_COLUMN], how="inner")
    if matched.empty:
        return {}
    p30 = matched[TRUTH_COLUMN].to_numpy(dtype=np.float64)
    oracle = pd.DataFrame({f"churn_probability_{d}d": 1.0 - (1.0 - p30) ** (d / 30) for d in HORIZONS})
    time, event = time_and_event(matched)
    out = {
        "oracle_concordance": concordance(time, event, oracle[f"churn_probability_{HORIZONS[-1]}d"].to_numpy()),
        **{f"oracle_{k}": v for k, v in horizon_calibration(matched, oracle).items() if k.startswith("calibration")},
        "oracle_matched_share": len(matched) / len(rows),
    }
    if "concordance" in model_metrics:
        out["concordance_gap_to_oracle"] = out["oracle_concordance"] - model_metrics["concordance"]
    return out
