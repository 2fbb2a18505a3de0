"""Training and evaluation of churn models: plain functions on data frames.

Splits are by snapshot time, never random across time: the latest labelled
snapshot is the holdout (test), the one before it selects the candidate
(validation), and everything earlier trains.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from churn_platform.features import CATEGORICAL_FEATURES, FEATURE_NAMES, LABEL_COLUMN, NUMERIC_FEATURES, TIME_COLUMN


class TrainingDataError(ValueError):
    """The training data cannot produce a model (too few snapshots, one class only, ...)."""


@dataclasses.dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def describe(self) -> dict[str, object]:
        def span(df: pd.DataFrame) -> str:
            return f"{pd.Timestamp(df[TIME_COLUMN].min()).date()} .. {pd.Timestamp(df[TIME_COLUMN].max()).date()}"

        return {
            "train_rows": len(self.train),
            "validation_rows": len(self.validation),
            "test_rows": len(self.test),
            "train_snapshots": span(self.train),
            "validation_snapshot": span(self.validation),
            "test_snapshot": span(self.test),
        }


@dataclasses.dataclass
class CandidateResult:
    name: str
    model: Pipeline
    params: dict[str, object]
    validation_metrics: dict[str, float]
    test_metrics: dict[str, float]


def time_split(df: pd.DataFrame) -> TimeSplit:
    """Latest snapshot → test, the one before → validation, the rest → train."""
    missing = [c for c in (*FEATURE_NAMES, LABEL_COLUMN, TIME_COLUMN) if c not in df.columns]
    if missing:
        raise TrainingDataError(f"training data lacks columns: {', '.join(missing)}")
    snapshots = np.sort(pd.to_datetime(df[TIME_COLUMN]).unique())
    if len(snapshots) < 3:
        raise TrainingDataError(
            f"need at least 3 labelled snapshots for a time-based split (train, validation, test), got {len(snapshots)}"
        )
    when = pd.to_datetime(df[TIME_COLUMN])
    split = TimeSplit(
        train=df[when < snapshots[-2]],
        validation=df[when == snapshots[-2]],
        test=df[when == snapshots[-1]],
    )
    for part in ("train", "validation", "test"):
        labels = getattr(split, part)[LABEL_COLUMN]
        if labels.nunique() < 2:
            raise TrainingDataError(f"the {part} split has only one label class ({labels.unique().tolist()})")
    return split


def features_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns with their intended types."""
    x = df.loc[:, list(FEATURE_NAMES)].copy()
    for col in NUMERIC_FEATURES:
        x[col] = pd.to_numeric(x[col], errors="coerce").astype("float64")
    for col in CATEGORICAL_FEATURES:
        x[col] = x[col].astype("object").where(x[col].notna(), None)
    return x


def build_logistic_regression(seed: int) -> Pipeline:
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    pre = ColumnTransformer(
        [("num", numeric, list(NUMERIC_FEATURES)), ("cat", categorical, list(CATEGORICAL_FEATURES))]
    )
    return Pipeline([("prepare", pre), ("model", LogisticRegression(C=0.5, max_iter=2000, random_state=seed))])


LIGHTGBM_PARAMS: dict[str, object] = {
    "n_estimators": 300,
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_child_samples": 50,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
}


def build_lightgbm(seed: int) -> Pipeline:
    from lightgbm import LGBMClassifier

    # Categories become integer codes that LightGBM splits on natively; unknown → -1 (missing).
    categorical = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
    pre = ColumnTransformer(
        [("cat", categorical, list(CATEGORICAL_FEATURES)), ("num", "passthrough", list(NUMERIC_FEATURES))],
        verbose_feature_names_out=False,
    )
    model = LGBMClassifier(
        **LIGHTGBM_PARAMS,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=2,
        verbose=-1,
    )
    return Pipeline([("prepare", pre), ("model", model)])


CANDIDATES = {
    "logistic_regression": build_logistic_regression,
    "lightgbm": build_lightgbm,
}

# Arguments to each candidate's fit: LightGBM learns the encoded categories natively
# (the categorical columns come first out of its ColumnTransformer).
FIT_PARAMS: dict[str, dict[str, object]] = {
    "lightgbm": {"model__categorical_feature": list(range(len(CATEGORICAL_FEATURES)))},
}


def evaluate(y_true: pd.Series | np.ndarray, proba: np.ndarray) -> dict[str, float]:
    y = np.asarray(y_true).astype(int)
    p = np.clip(np.asarray(proba, dtype=float), 1e-7, 1 - 1e-7)
    order = np.argsort(-p, kind="stable")
    top = order[: max(1, len(p) // 10)]
    base_rate = y.mean()
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "top_decile_lift": float(y[top].mean() / base_rate) if base_rate > 0 else float("nan"),
        "positive_rate": float(base_rate),
        "rows": float(len(y)),
    }


def train_candidates(df: pd.DataFrame, seed: int = 7) -> tuple[TimeSplit, list[CandidateResult]]:
    """Train every candidate on the train split; score it on validation and test."""
    split = time_split(df)
    x_train, y_train = features_frame(split.train), split.train[LABEL_COLUMN].astype(int)
    x_val, y_val = features_frame(split.validation), split.validation[LABEL_COLUMN].astype(int)
    x_test, y_test = features_frame(split.test), split.test[LABEL_COLUMN].astype(int)
    results = []
    for name, build in CANDIDATES.items():
        pipe = build(seed)
        pipe.fit(x_train, y_train, **FIT_PARAMS.get(name, {}))
        params = {k: v for k, v in pipe.named_steps["model"].get_params().items() if _loggable(v)}
        results.append(
            CandidateResult(
                name=name,
                model=pipe,
                params=params,
                validation_metrics=evaluate(y_val, pipe.predict_proba(x_val)[:, 1]),
                test_metrics=evaluate(y_test, pipe.predict_proba(x_test)[:, 1]),
            )
        )
    return split, results


def select_best(results: list[CandidateResult]) -> CandidateResult:
    """The candidate with the highest validation ROC-AUC (the test split stays untouched)."""
    if not results:
        raise TrainingDataError("no candidate was trained")
    return max(results, key=lambda r: r.validation_metrics["roc_auc"])


def _loggable(value: object) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))
