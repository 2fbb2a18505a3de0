"""Training and evaluation on a small synthetic training set (no Dagster, no MLflow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_platform.business.catalogue import LABEL_COLUMN, TIME_COLUMN
from churn_platform.ml.training import TrainingDataError, evaluate, select_best, time_split, train_candidates
from churn_platform_tests.business import CATALOGUE


def make_training_set(rows_per_snapshot: int = 600, snapshots: int = 5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(snapshots):
        n = rows_per_snapshot
        frame = pd.DataFrame(
            {"customer_id": np.arange(n), TIME_COLUMN: pd.Timestamp("2025-04-01") + pd.DateOffset(months=i)}
        )
        for f in CATALOGUE.features:
            if f.name == "contract_type":
                # Most customers are annual: the typical customer is, so a monthly contract is a driver.
                frame[f.name] = rng.choice(["monthly", "annual"], size=n, p=[0.4, 0.6])
            elif f.kind == "categorical":
                frame[f.name] = rng.choice(list(f.categories), size=n)
            else:
                frame[f.name] = rng.gamma(2.0, 10.0, size=n)
        risk = (
            -3
            + 1.5 * (frame.contract_type == "monthly")
            - 0.05 * frame.sessions_30d
            + 0.8 * frame.failed_payments_90d / 10
        )
        frame[LABEL_COLUMN] = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(int)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_split_is_by_time_with_the_latest_snapshot_held_out():
    df = make_training_set()
    split = time_split(df, CATALOGUE)
    assert split.train[TIME_COLUMN].max() < split.validation[TIME_COLUMN].min()
    assert split.validation[TIME_COLUMN].max() < split.test[TIME_COLUMN].min()
    assert split.test[TIME_COLUMN].nunique() == 1
    assert len(split.train) + len(split.validation) + len(split.test) == len(df)


def test_too_few_snapshots_is_a_clear_error():
    df = make_training_set(snapshots=2)
    with pytest.raises(TrainingDataError, match="at least 3 labelled snapshots"):
        time_split(df, CATALOGUE)


def test_one_label_class_is_a_clear_error():
    df = make_training_set()
    df[LABEL_COLUMN] = 0
    with pytest.raises(TrainingDataError, match="only one label class"):
        time_split(df, CATALOGUE)


def test_missing_columns_are_named():
    df = make_training_set().drop(columns=["sessions_30d"])
    with pytest.raises(TrainingDataError, match="sessions_30d"):
        time_split(df, CATALOGUE)


def test_candidates_learn_the_signal_and_training_is_deterministic():
    df = make_training_set()
    split, results = train_candidates(df, CATALOGUE, seed=3)
    assert {r.name for r in results} == {"logistic_regression", "random_forest", "lightgbm"}
    for r in results:
        assert r.test_metrics["roc_auc"] > 0.7, (r.name, r.test_metrics)
    # The same rows in another order (as a warehouse may return them) give the same models.
    _, again = train_candidates(df.sample(frac=1.0, random_state=11), CATALOGUE, seed=3)
    x = split.test
    for a, b in zip(results, again):
        np.testing.assert_array_equal(a.model.predict_proba(x)[:, 1], b.model.predict_proba(x)[:, 1])
    best = select_best(results)
    assert best.validation_metrics["roc_auc"] == max(r.validation_metrics["roc_auc"] for r in results)


def test_unknown_categories_at_scoring_time_do_not_break_prediction():
    df = make_training_set()
    _, results = train_candidates(df, CATALOGUE, seed=3)
    row = df.head(1).copy()
    for col in CATALOGUE.categorical:
        row[col] = "never_seen"
    for r in results:
        p = r.model.predict_proba(row)[:, 1]
        assert 0 <= p[0] <= 1


def test_metrics_of_a_perfect_and_a_random_ranking():
    y = np.array([0] * 90 + [1] * 10)
    perfect = evaluate(y, y * 0.9 + 0.05)
    assert perfect["roc_auc"] == pytest.approx(1.0)
    assert perfect["top_decile_lift"] == pytest.approx(10.0)
    flat = evaluate(y, np.full(100, 0.1))
    assert flat["roc_auc"] == pytest.approx(0.5)
