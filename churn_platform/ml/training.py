"""Training and evaluation of churn models: plain functions on data frames.

Splits are by snapshot time, never random across time: the latest labelled
snapshot is the holdout (test), the one before it is the validation snapshot,
and everything earlier trains. The validation snapshot is used for LightGBM's
early stopping, for choosing the candidate and for calibration; the test
snapshot is only ever scored.

Calibration: the selected candidate's scores are mapped to probabilities by
Platt scaling (a logistic regression on the score's log-odds) fitted on the
validation snapshot, with the candidate itself frozen. Platt scaling has two
parameters, so it cannot overfit a few thousand validation rows the way an
isotonic fit can, and it keeps the ranking (ROC-AUC) unchanged.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from churn_platform.business.catalogue import ID_COLUMN, LABEL_COLUMN, TIME_COLUMN, Catalogue


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
    model: Pipeline | CalibratedClassifierCV
    params: dict[str, object]
    validation_metrics: dict[str, float]
    test_metrics: dict[str, float]


def time_split(df: pd.DataFrame, catalogue: Catalogue) -> TimeSplit:
    """Latest snapshot → test, the one before → validation, the rest → train."""
    missing = [c for c in (*catalogue.names, LABEL_COLUMN, TIME_COLUMN) if c not in df.columns]
    if missing:
        raise TrainingDataError(f"training data lacks columns: {', '.join(missing)}")
    snapshots = np.sort(pd.to_datetime(df[TIME_COLUMN]).unique())
    if len(snapshots) < 3:
        raise TrainingDataError(
            f"need at least 3 labelled snapshots for a time-based split (train, validation, test), got {len(snapshots)}"
        )
    # A warehouse returns rows in no fixed order, and row sampling (LightGBM's bagging, the
    # forest's bootstrap) depends on it: put them in one order so the same data gives the same model.
    order = [TIME_COLUMN, ID_COLUMN] if ID_COLUMN in df.columns else [TIME_COLUMN]
    df = df.sort_values(order, kind="stable").reset_index(drop=True)
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


def features_frame(df: pd.DataFrame, catalogue: Catalogue, fill_missing: bool = False) -> pd.DataFrame:
    """The catalogue's columns of ``df`` with their intended types. With ``fill_missing``, a feature
    ``df`` lacks is empty (scored as missing) rather than an error."""
    missing = [c for c in catalogue.names if c not in df.columns]
    if missing and not fill_missing:
        raise TrainingDataError(f"the data lacks feature columns: {', '.join(missing)}")
    x = df.reindex(columns=list(catalogue.names)).copy()
    for col in catalogue.numeric:
        x[col] = pd.to_numeric(x[col], errors="coerce").astype("float64")
    for col in catalogue.categorical:
        x[col] = x[col].astype("object").where(x[col].notna(), None)
    return x


def build_logistic_regression(seed: int, numeric_features, categorical_features, monotone=None) -> Pipeline:
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    pre = ColumnTransformer(
        [("num", numeric, list(numeric_features)), ("cat", categorical, list(categorical_features))]
    )
    return Pipeline([("prepare", pre), ("model", LogisticRegression(C=0.5, max_iter=2000, random_state=seed))])


def monotone_constraints(columns, monotone: dict[str, int] | None) -> list[int]:
    """Known directions (the catalogue's ``monotone``: more failed payments, or a longer time
    since the customer was last active, never lower the predicted risk, all else equal), imposed
    on the tree models and checked on the champion by the tests. The logistic regression is
    monotone in every feature by construction; Platt calibration is an increasing map, so it
    keeps every direction."""
    return [(monotone or {}).get(str(c), 0) for c in columns]


LIGHTGBM_PARAMS: dict[str, object] = {
    "n_estimators": 300,
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_child_samples": 50,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
}


def build_lightgbm(seed: int, numeric_features, categorical_features, monotone=None) -> Pipeline:
    from lightgbm import LGBMClassifier

    # Categories become integer codes that LightGBM splits on natively; unknown → -1 (missing).
    categorical = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
    pre = ColumnTransformer(
        [("cat", categorical, list(categorical_features)), ("num", "passthrough", list(numeric_features))],
        verbose_feature_names_out=False,
    )
    model = LGBMClassifier(
        **LIGHTGBM_PARAMS,
        # The transformed columns are the categorical ones first, then the numeric ones.
        monotone_constraints=monotone_constraints([*categorical_features, *numeric_features], monotone),
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=2,
        verbose=-1,
    )
    return Pipeline([("prepare", pre), ("model", model)])


def build_random_forest(seed: int, numeric_features, categorical_features, monotone=None) -> Pipeline:
    categorical = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
    numeric = SimpleImputer(strategy="median", keep_empty_features=True)
    pre = ColumnTransformer(
        [("cat", categorical, list(categorical_features)), ("num", numeric, list(numeric_features))],
        verbose_feature_names_out=False,
    )
    constraints = monotone_constraints([*categorical_features, *numeric_features], monotone)
    model = RandomForestClassifier(
        n_estimators=200,
        min_samples_leaf=20,
        max_features="sqrt",
        monotonic_cst=constraints if any(constraints) else None,
        n_jobs=2,
        random_state=seed,
    )
    return Pipeline([("prepare", pre), ("model", model)])


RANDOM_FOREST_ROWS_PER_TREE = 50_000
"""Each tree of the random forest grows on a bootstrap sample of at most this many rows: on large
training sets that bounds the forest's fit time (about ten times faster at 480k rows) at almost no
cost in ROC-AUC, since 200 trees still see the whole set between them."""


CANDIDATES = {
    "logistic_regression": build_logistic_regression,
    "random_forest": build_random_forest,
    "lightgbm": build_lightgbm,
}

EARLY_STOPPING_ROUNDS = 50
TOP_SHARE = 0.10
"""Precision and recall are reported for the top 10% of scores (the customers a team would call)."""
CALIBRATION_BINS = 10


def _fit(
    name: str,
    pipe: Pipeline,
    x_train: pd.DataFrame,
    y_train: pd.Series,
    x_val: pd.DataFrame,
    y_val: pd.Series,
    n_categorical: int,
) -> dict[str, object]:
    """Fit one candidate; LightGBM learns the encoded categories natively (they come first out of
    its ColumnTransformer) and stops early on the validation snapshot's log-loss."""
    extra: dict[str, object] = {}
    if name == "lightgbm":
        import lightgbm

        prepare = pipe.named_steps["prepare"].fit(x_train)
        pipe.fit(
            x_train,
            y_train,
            model__categorical_feature=list(range(n_categorical)),
            model__eval_X=prepare.transform(x_val),
            model__eval_y=y_val,
            model__callbacks=[lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
        )
        extra["best_iteration"] = int(pipe.named_steps["model"].best_iteration_ or LIGHTGBM_PARAMS["n_estimators"])
    elif name == "random_forest":
        rows = len(x_train)
        pipe.named_steps["model"].set_params(
            max_samples=None if rows <= RANDOM_FOREST_ROWS_PER_TREE else RANDOM_FOREST_ROWS_PER_TREE
        )
        pipe.fit(x_train, y_train)
    else:
        pipe.fit(x_train, y_train)
    if name == "random_forest":
        # Trees are grown in parallel (each from its own seed), but averaged in one thread:
        # a parallel average adds up in a varying order, so the last bits of a probability would vary.
        pipe.named_steps["model"].set_params(n_jobs=1)
    return extra


def calibrate(model, x_val: pd.DataFrame, y_val: pd.Series) -> CalibratedClassifierCV:
    """Platt scaling of a fitted model on the validation snapshot (the model itself is frozen)."""
    calibrated = CalibratedClassifierCV(FrozenEstimator(model), method="sigmoid")
    return calibrated.fit(x_val, y_val)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Mean |observed rate − mean probability| over equal-width probability bins, weighted by rows."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / len(y))


def evaluate(
    y_true: pd.Series | np.ndarray, proba: np.ndarray, top_share: float = TOP_SHARE, economics=None
) -> dict[str, float]:
    """The holdout metrics of ``proba``; with ``economics`` (``ml.profit.ChurnEconomics``) also the
    expected maximum profit (``empc``, per customer) and the share its best campaign contacts."""
    y = np.asarray(y_true).astype(int)
    p = np.clip(np.asarray(proba, dtype=float), 1e-7, 1 - 1e-7)
    order = np.argsort(-p, kind="stable")
    top = order[: max(1, len(p) // 10)]
    top_k = order[: max(1, round(len(p) * top_share))]
    base_rate = y.mean()
    positives = y.sum()
    profit = {}
    if economics is not None and 0 < positives < len(y):
        empc, rate = economics.empc(y, p)
        profit = {"empc": empc, "empc_contact_share": rate}
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "top_decile_lift": float(y[top].mean() / base_rate) if base_rate > 0 else float("nan"),
        "precision_at_top_10pct": float(y[top_k].mean()),
        "recall_at_top_10pct": float(y[top_k].sum() / positives) if positives > 0 else float("nan"),
        "ece": expected_calibration_error(y, p),
        "positive_rate": float(base_rate),
        "rows": float(len(y)),
        **profit,
    }


def fit_candidates(
    x_train: pd.DataFrame,
    y_train: pd.Series,
    x_val: pd.DataFrame,
    y_val: pd.Series,
    x_test: pd.DataFrame,
    y_test: pd.Series,
    seed: int,
    numeric_features,
    categorical_features,
    monotone: dict[str, int] | None = None,
    economics=None,
) -> list[CandidateResult]:
    """Fit every candidate on train (LightGBM stopping early on validation); score validation and test."""
    results = []
    for name, build in CANDIDATES.items():
        pipe = build(seed, numeric_features, categorical_features, monotone)
        extra = _fit(name, pipe, x_train, y_train, x_val, y_val, len(categorical_features))
        params = {k: v for k, v in pipe.named_steps["model"].get_params().items() if _loggable(v)}
        results.append(
            CandidateResult(
                name=name,
                model=pipe,
                params={**params, **extra},
                validation_metrics=evaluate(y_val, pipe.predict_proba(x_val)[:, 1]),
                test_metrics=evaluate(y_test, pipe.predict_proba(x_test)[:, 1], economics=economics),
            )
        )
    return results


def train_candidates(
    df: pd.DataFrame, catalogue: Catalogue, seed: int = 7, economics=None
) -> tuple[TimeSplit, list[CandidateResult]]:
    """Train every candidate on the train split; score it on validation and test (with ``economics``,
    the test metrics include the EMPC)."""
    split = time_split(df, catalogue)
    x_train, y_train = features_frame(split.train, catalogue), split.train[LABEL_COLUMN].astype(int)
    x_val, y_val = features_frame(split.validation, catalogue), split.validation[LABEL_COLUMN].astype(int)
    x_test, y_test = features_frame(split.test, catalogue), split.test[LABEL_COLUMN].astype(int)
    return split, fit_candidates(
        x_train,
        y_train,
        x_val,
        y_val,
        x_test,
        y_test,
        seed,
        catalogue.numeric,
        catalogue.categorical,
        catalogue.monotone,
        economics,
    )


def calibrate_best(split: TimeSplit, best: CandidateResult, catalogue: Catalogue, economics=None) -> CandidateResult:
    """The selected candidate with Platt-scaled probabilities; its test metrics recomputed."""
    x_val, y_val = features_frame(split.validation, catalogue), split.validation[LABEL_COLUMN].astype(int)
    x_test, y_test = features_frame(split.test, catalogue), split.test[LABEL_COLUMN].astype(int)
    return calibrate_result(best, x_val, y_val, x_test, y_test, economics)


def calibrate_result(best: CandidateResult, x_val, y_val, x_test, y_test, economics=None) -> CandidateResult:
    model = calibrate(best.model, x_val, y_val)
    return dataclasses.replace(
        best,
        model=model,
        params={**best.params, "calibration": "sigmoid (Platt) on the validation snapshot"},
        test_metrics=evaluate(y_test, model.predict_proba(x_test)[:, 1], economics=economics),
    )


def select_best(results: list[CandidateResult]) -> CandidateResult:
    """The candidate with the highest validation ROC-AUC (the test split stays untouched)."""
    if not results:
        raise TrainingDataError("no candidate was trained")
    return max(results, key=lambda r: r.validation_metrics["roc_auc"])


def _loggable(value: object) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _inner_pipeline(model) -> Pipeline:
    inner = model
    if isinstance(inner, CalibratedClassifierCV):
        inner = inner.calibrated_classifiers_[0].estimator
    if isinstance(inner, FrozenEstimator):
        inner = inner.estimator
    return inner


def learned_categories(model) -> dict[str, list[str]]:
    """The values of each categorical feature the model saw in training (the vocabulary recorded
    with it); a value outside them is scored as unknown."""
    prepare = _inner_pipeline(model).named_steps["prepare"]
    out: dict[str, list[str]] = {}
    for name, encoder, columns in prepare.transformers_:
        if name != "cat":
            continue
        for column, cats in zip(columns, encoder.categories_):
            out[str(column)] = [str(c) for c in cats if c is not None and not (isinstance(c, float) and np.isnan(c))]
    return out


def catalogue_of_model(model) -> Catalogue:
    """A minimal catalogue of a fitted candidate (or its calibrated wrapper): its input columns, numeric
    or categorical by the encoder each goes through, in the order it was fitted on."""
    from churn_platform.business.catalogue import Feature

    inner = _inner_pipeline(model)
    prepare = inner.named_steps["prepare"]
    kinds: dict[str, str] = {}
    for name, _, columns in prepare.transformers_:
        for c in columns if name in ("num", "cat") else ():
            kinds[str(c)] = "categorical" if name == "cat" else "numeric"
    order = [str(c) for c in getattr(inner, "feature_names_in_", list(kinds))]
    return Catalogue(
        tuple(
            Feature(c, kinds.get(c, "numeric"), c.replace("_", " "), "unknown", "unknown", minimum=None, nullable=True)
            for c in order
        )
    )
