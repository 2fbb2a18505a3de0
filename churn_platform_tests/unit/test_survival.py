"""The time-to-churn model: person-period rows censor what the data has not followed, the survival
curve is monotone and its expected lifetime follows from the hazards, Harrell's concordance is
right on hand-made cases, and on data from known hazards the fitted model recovers them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_platform.business.catalogue import Catalogue, Feature
from churn_platform.ml.survival import (
    INTERVAL_COLUMN,
    MAX_LIFETIME_MONTHS,
    concordance,
    evaluate_survival,
    fit_survival,
    holdout_snapshot,
    horizon_calibration,
    person_periods,
    time_and_event,
)


def rows(followed, to_churn, day="2025-01-01"):
    return pd.DataFrame(
        {
            "customer_id": [str(i) for i in range(len(followed))],
            "snapshot_date": pd.Timestamp(day),
            "days_followed": followed,
            "days_to_churn": pd.array(to_churn, dtype="Float64"),
            "x": np.zeros(len(followed)),
        }
    )


def test_person_periods_count_only_what_the_data_followed():
    frame = rows([100, 100, 45, 45, 100], [None, 40, None, 10, 95])
    periods = person_periods(frame)
    by_customer = periods.groupby("customer_id")
    # A stayer followed 100 days: three intervals, no event.
    assert by_customer.get_group("0")[INTERVAL_COLUMN].tolist() == [0, 1, 2]
    assert by_customer.get_group("0")["churned"].sum() == 0
    # Churned on day 40: stayed the first interval, cancelled in the second, nothing after.
    assert by_customer.get_group("1")[["months_after_snapshot", "churned"]].values.tolist() == [[0, 0], [1, 1]]
    # Followed 45 days, still active: the first interval only (the second is cut short: censored).
    assert by_customer.get_group("2")[INTERVAL_COLUMN].tolist() == [0]
    # Cancelled on day 10: one interval, with the event.
    assert by_customer.get_group("3")["churned"].tolist() == [1]
    # Day 95 is past the last interval: three intervals without an event.
    assert by_customer.get_group("4")["churned"].tolist() == [0, 0, 0]
    # With a holdout day 60 days after the snapshot, nothing after it counts.
    cut = person_periods(frame, until=pd.Timestamp("2025-03-02"))
    assert cut[INTERVAL_COLUMN].max() == 1 and cut[cut.customer_id == "4"].churned.sum() == 0


def test_concordance_on_hand_made_cases():
    time = np.array([10, 20, 30, 40])
    event = np.array([1, 1, 1, 0])
    assert concordance(time, event, np.array([4, 3, 2, 1])) == 1.0
    assert concordance(time, event, np.array([1, 2, 3, 4])) == 0.0
    assert concordance(time, event, np.array([1, 1, 1, 1])) == 0.5
    # Pairs (1,2) (1,3) (1,4) (2,3) (2,4) (3,4): the first customer ranked below the second.
    assert concordance(time, event, np.array([3, 4, 2, 1])) == pytest.approx(5 / 6)


def test_time_and_event_cap_at_the_horizon():
    time, event = time_and_event(rows([100, 50, 120], [None, 20, 100]))
    assert time.tolist() == [90, 20, 90] and event.tolist() == [False, True, False]


def test_a_model_fitted_on_known_hazards_recovers_them():
    """Customers with a monthly hazard of 2% or 12% by a binary feature: the fitted curves match
    1 − (1 − h)^k, the lifetime follows the geometric tail, and concordance beats chance."""
    rng = np.random.default_rng(0)
    parts = []
    for month in range(8):
        n = 3_000
        risky = rng.random(n) < 0.4
        h = np.where(risky, 0.12, 0.02)
        months = rng.geometric(h)  # the interval of the cancellation, 1-based
        to_churn = (months - 1) * 30 + rng.integers(0, 30, n)
        followed = np.full(n, 240 - 30 * month)
        frame = pd.DataFrame(
            {
                "customer_id": [f"{month}-{i}" for i in range(n)],
                "snapshot_date": pd.Timestamp("2025-01-01") + pd.DateOffset(months=month),
                "days_followed": followed,
                "days_to_churn": pd.array(np.where(to_churn < followed, to_churn, np.nan), dtype="Float64"),
                "risky": risky.astype(float),
            }
        )
        parts.append(frame)
    data = pd.concat(parts, ignore_index=True)
    catalogue = Catalogue((Feature(name="risky", kind="numeric", description="risky", role="accounts", agg="test"),))
    test_day = holdout_snapshot(data)
    assert test_day == pd.Timestamp("2025-06-01")  # the latest followed for 90 days
    model = fit_survival(
        person_periods(data[data.snapshot_date < test_day], until=test_day), catalogue, "logistic_regression"
    )
    probe = pd.DataFrame({"risky": [0.0, 1.0]})
    curves = model.curves(probe)
    for i, h in enumerate((0.02, 0.12)):
        for k, d in enumerate((30, 60, 90), start=1):
            assert curves[f"churn_probability_{d}d"].iloc[i] == pytest.approx(1 - (1 - h) ** k, abs=0.015)
        assert curves["expected_lifetime_months"].iloc[i] == pytest.approx(
            min((1 - h) / h, MAX_LIFETIME_MONTHS), rel=0.2
        )
    holdout = data[data.snapshot_date == test_day].reset_index(drop=True)
    _, metrics = evaluate_survival(model, holdout)
    assert metrics["concordance"] > 0.6
    assert all(metrics[f"calibration_error_{d}d"] < 0.03 for d in (30, 60, 90)), metrics
    predicted = model.predict(probe)
    assert predicted.shape == (2, 3) and (np.diff(predicted, axis=1) >= 0).all()


def test_calibration_uses_only_rows_followed_that_long():
    frame = rows([100, 100, 40], [10, None, None])
    probabilities = pd.DataFrame({"churn_probability_30d": [0.5, 0.5, 0.5], "churn_probability_60d": [0.5, 0.5, 0.5]})
    out = horizon_calibration(frame, probabilities)
    assert out["churn_rate_30d"] == pytest.approx(1 / 3)
    assert out["churn_rate_60d"] == pytest.approx(1 / 2)  # the customer followed 40 days does not count
