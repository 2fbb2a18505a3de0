"""Time to churn: each customer's churn probability at 30, 60 and 90 days and expected remaining lifetime.

A discrete-time survival model: the months after a snapshot are intervals of ``INTERVAL_DAYS``; one
churn classifier (one of the churn model's candidates) learns the hazard of an interval — the
chance of cancelling in it, having stayed to its start — from the customer's features at the
snapshot and the interval's number. Every snapshot contributes the intervals the data has followed
it through (person-period rows), so a customer still active at the data's end is censored there,
not counted as a stayer. The survival curve is the product of the interval hazards:
``S(30) = 1 − h₀``, ``S(60) = S(30)(1 − h₁)``, ``S(90) = S(60)(1 − h₂)``; beyond the last interval
the last hazard is assumed to hold, so the expected remaining lifetime in months is
``S(30) + S(60) + S(90) + S(90)(1 − h₂)/h₂`` (capped at ``MAX_LIFETIME_MONTHS``).

Judged on the latest snapshot the data has followed for the longest horizon: Harrell's concordance
(does a customer who churned sooner have a higher predicted risk?) and, at each horizon, the
calibration error of the predicted probability against the observed share that churned.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from churn_platform.business.catalogue import TIME_COLUMN, Catalogue
from churn_platform.ml.training import CANDIDATES, expected_calibration_error, features_frame

INTERVAL_DAYS = 30
HORIZONS = (30, 60, 90)
INTERVAL_COLUMN = "months_after_snapshot"
MAX_LIFETIME_MONTHS = 120.0
FOLLOWED, TO_CHURN = "days_followed", "days_to_churn"


def person_periods(
    frame: pd.DataFrame, intervals: int = len(HORIZONS), until: pd.Timestamp | None = None
) -> pd.DataFrame:
    """One row per snapshot row and interval the customer was at risk in and the data followed to its
    end (or to the cancellation in it), with ``INTERVAL_COLUMN`` (0, 1, ...) and ``churned`` (they
    cancelled in it). ``until``: count only intervals that ended by that day (a time-based holdout)."""
    followed = frame[FOLLOWED].to_numpy(dtype=np.float64)
    to_churn = pd.to_numeric(frame[TO_CHURN], errors="coerce").to_numpy(dtype=np.float64)
    if until is not None:
        limit = (pd.Timestamp(until) - pd.to_datetime(frame[TIME_COLUMN])).dt.days.to_numpy(dtype=np.float64)
        followed = np.minimum(followed, limit)
        to_churn = np.where(to_churn < followed, to_churn, np.nan)
    parts = []
    for k in range(intervals):
        start, end = k * INTERVAL_DAYS, (k + 1) * INTERVAL_DAYS
        at_risk = np.isnan(to_churn) | (to_churn >= start)
        event = to_churn < end  # NaN compares False
        observed = (followed >= end) | event
        keep = at_risk & observed
        part = frame[keep].copy()
        part[INTERVAL_COLUMN] = k
        part["churned"] = event[keep].astype(int)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


@dataclasses.dataclass
class SurvivalModel:
    """The interval hazard classifier and the features it reads; ``curves`` gives the survival
    quantities, ``predict`` (for MLflow's scikit-learn flavor, in skops format) the churn
    probabilities at ``HORIZONS`` as columns."""

    hazard: object
    features: list
    candidate: str
    intervals: int = len(HORIZONS)

    def _x(self, frame: pd.DataFrame, k: int) -> pd.DataFrame:
        catalogue = Catalogue.from_records(self.features)
        x = features_frame(pd.DataFrame(frame), catalogue, fill_missing=True)
        x[INTERVAL_COLUMN] = float(k)
        return x

    def hazards(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's hazard in each interval: shape (rows, intervals)."""
        return np.column_stack([self.hazard.predict_proba(self._x(frame, k))[:, 1] for k in range(self.intervals)])

    def curves(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per row: churn probability by each horizon, expected remaining lifetime (months) and the
        expected months retained of the next twelve."""
        h = np.clip(self.hazards(frame), 1e-6, 1 - 1e-6)
        survival = np.cumprod(1.0 - h, axis=1)
        last_h, last_s = h[:, -1], survival[:, -1]
        lifetime = np.minimum(survival.sum(axis=1) + last_s * (1 - last_h) / last_h, MAX_LIFETIME_MONTHS)
        extra = np.arange(1, 12 - self.intervals + 1)
        next_year = survival.sum(axis=1) + (last_s[:, None] * (1 - last_h[:, None]) ** extra[None, :]).sum(axis=1)
        out = {f"churn_probability_{d}d": 1.0 - survival[:, i] for i, d in enumerate(HORIZONS[: self.intervals])}
        return pd.DataFrame(
            {**out, "expected_lifetime_months": lifetime, "expected_months_next_12": next_year},
            index=frame.index,
        )

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return 1.0 - np.cumprod(1.0 - self.hazards(frame), axis=1)


def fit_survival(
    periods: pd.DataFrame, catalogue: Catalogue, candidate: str = "lightgbm", seed: int = 7
) -> SurvivalModel:
    """Fit the interval hazard classifier on person-period rows (``person_periods``)."""
    if candidate not in CANDIDATES:
        raise ValueError(f"candidate must be one of {', '.join(CANDIDATES)}, not {candidate!r}")
    y = periods["churned"].astype(int)
    if y.nunique() < 2:
        raise ValueError("the survival model needs intervals with and without a cancellation")
    pipe = CANDIDATES[candidate](seed, [*catalogue.numeric, INTERVAL_COLUMN], catalogue.categorical)
    x = features_frame(periods, catalogue)
    x[INTERVAL_COLUMN] = periods[INTERVAL_COLUMN].astype(float).to_numpy()
    pipe.fit(x, y)
    return SurvivalModel(pipe, catalogue.as_records(), candidate)


def time_and_event(frame: pd.DataFrame, horizon: int = HORIZONS[-1]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's observed time (days to the cancellation, else days followed, both capped at
    ``horizon``) and whether it ended in a cancellation within it."""
    followed = np.minimum(frame[FOLLOWED].to_numpy(dtype=np.float64), horizon)
    to_churn = pd.to_numeric(frame[TO_CHURN], errors="coerce").to_numpy(dtype=np.float64)
    event = to_churn < followed
    return np.where(event, to_churn, followed), event


def concordance(time: np.ndarray, event: np.ndarray, risk: np.ndarray, max_rows: int = 6_000, seed: int = 0) -> float:
    """Harrell's concordance index: of the pairs where one customer cancelled before the other's
    observed time, the share where that customer had the higher risk (ties count half). Computed on
    a seeded sample of at most ``max_rows`` rows."""
    time, event, risk = (np.asarray(a, dtype=np.float64) for a in (time, event, risk))
    if time.size > max_rows:
        keep = np.random.default_rng(seed).choice(time.size, size=max_rows, replace=False)
        time, event, risk = time[keep], event[keep], risk[keep]
    concordant = comparable = 0.0
    for i in np.flatnonzero(event > 0):
        later = time > time[i]
        n = later.sum()
        if n == 0:
            continue
        comparable += n
        concordant += (risk[i] > risk[later]).sum() + 0.5 * (risk[i] == risk[later]).sum()
    return float(concordant / comparable) if comparable else float("nan")


def horizon_calibration(frame: pd.DataFrame, probabilities: pd.DataFrame) -> dict[str, float]:
    """At each horizon, the calibration error of the predicted churn probability against whether the
    customer churned by then, on the rows the data followed that long."""
    out = {}
    followed = frame[FOLLOWED].to_numpy(dtype=np.float64)
    to_churn = pd.to_numeric(frame[TO_CHURN], errors="coerce").to_numpy(dtype=np.float64)
    for d in HORIZONS:
        column = f"churn_probability_{d}d"
        if column not in probabilities:
            continue
        rows = followed >= d
        if rows.sum() == 0:
            continue
        y = (to_churn[rows] < d).astype(int)
        p = probabilities[column].to_numpy(dtype=np.float64)[rows]
        out[f"calibration_error_{d}d"] = expected_calibration_error(y, p)
        out[f"churn_rate_{d}d"] = float(y.mean())
        out[f"predicted_rate_{d}d"] = float(p.mean())
    return out


def holdout_snapshot(frame: pd.DataFrame, horizon: int = HORIZONS[-1]) -> pd.Timestamp | None:
    """The latest snapshot the data has followed for ``horizon`` days (None when there is none, or
    no earlier one to train on)."""
    dates = pd.to_datetime(frame[TIME_COLUMN])
    followed = frame.groupby(dates)[FOLLOWED].max()
    ready = followed[followed >= horizon].index.sort_values()
    if len(ready) == 0 or ready[-1] <= dates.min():
        return None
    return ready[-1]


def evaluate_survival(model: SurvivalModel, holdout: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """The holdout's curves, and the model's concordance and calibration at each horizon."""
    curves = model.curves(holdout)
    time, event = time_and_event(holdout)
    metrics = {
        "concordance": concordance(time, event, curves[f"churn_probability_{HORIZONS[-1]}d"].to_numpy()),
        **horizon_calibration(holdout, curves),
    }
    return curves, metrics
