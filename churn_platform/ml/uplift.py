"""Uplift: how much a contact changes a customer's churn, learnt from campaigns with random controls.

A T-learner: one churn model fitted on the contacted customers (the treated arm), one on the
held-out ones (the control arm), both on the customers' features before the contact. A customer's
uplift is ``P(churn | not contacted) − P(churn | contacted)``: above zero when a contact keeps
them, below zero for a sleeping dog whom it drives away. Each arm's model is one of the churn
model's candidates, fitted the same way.

Ranking by uplift is judged by the Qini curve: customers taken by descending uplift, and at each
depth the customers the treated arm kept beyond what the control arm, scaled to the same size,
kept. The Qini coefficient is the area between that curve and the straight line of a random
ranking, as a share of the customers ranked; on generated data the same curve with the true
uplift as the ranking is the best achievable (the oracle), and the model's coefficient over the
oracle's says how much of it the model found.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from churn_platform.business.catalogue import Catalogue
from churn_platform.business.declaration import CONTROL, TREATED
from churn_platform.ml.training import CANDIDATES, features_frame


@dataclasses.dataclass
class TLearner:
    """Two churn models, one per arm; ``uplift`` (also ``predict``, for MLflow, which logs it with
    scikit-learn's flavor in skops format) is the control model's probability minus the treated's.
    The catalogue is kept as plain records, which skops stores."""

    treated: object
    control: object
    features: list
    candidate: str

    def uplift(self, frame: pd.DataFrame) -> np.ndarray:
        x = features_frame(pd.DataFrame(frame), Catalogue.from_records(self.features), fill_missing=True)
        return self.control.predict_proba(x)[:, 1] - self.treated.predict_proba(x)[:, 1]

    predict = uplift


def arms_not_ready(frame: pd.DataFrame, min_per_arm: int, arm_column: str = "arm", label_column: str = "churned"):
    """Why ``frame``'s contacts cannot train an uplift model (an arm with fewer than ``min_per_arm``
    contacts, or without both churners and stayers), or None when they can."""
    counts = {
        arm: (int((frame[arm_column] == arm).sum()), int(frame.loc[frame[arm_column] == arm, label_column].sum()))
        for arm in (TREATED, CONTROL)
    }
    if all(n >= min_per_arm and 0 < churned < n for n, churned in counts.values()):
        return None
    return (
        ", ".join(f"the {arm} arm has {n:,} matured contacts ({c:,} churned)" for arm, (n, c) in counts.items())
        + f"; each arm needs at least {min_per_arm}, with churners and stayers"
    )


def fit_t_learner(
    frame: pd.DataFrame,
    catalogue: Catalogue,
    arm_column: str = "arm",
    label_column: str = "churned",
    candidate: str = "logistic_regression",
    seed: int = 7,
    min_per_arm: int = 50,
) -> TLearner:
    """Fit one ``candidate`` churn model per arm on ``frame`` (one row per matured contact: the
    customer's features, the arm, whether they churned within the horizon)."""
    if candidate not in CANDIDATES:
        raise ValueError(f"candidate must be one of {', '.join(CANDIDATES)}, not {candidate!r}")
    why = arms_not_ready(frame, min_per_arm, arm_column, label_column)
    if why:
        raise ValueError(f"an uplift model cannot be fitted: {why}")
    models = {}
    for arm in (TREATED, CONTROL):
        rows = frame[frame[arm_column] == arm]
        pipe = CANDIDATES[candidate](seed, catalogue.numeric, catalogue.categorical)
        pipe.fit(features_frame(rows, catalogue), rows[label_column].astype(int))
        models[arm] = pipe
    return TLearner(models[TREATED], models[CONTROL], catalogue.as_records(), candidate)


def qini_curve(uplift: np.ndarray, treated: np.ndarray, churned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Qini curve: for the top ``k`` customers by ``uplift`` (k = 0..n), the customers the treated
    among them kept beyond the controls among them, scaled to the treated's number. Returns the
    shares ``k / n`` and the curve's values as shares of all ``n`` customers."""
    order = np.argsort(-np.asarray(uplift, dtype=np.float64), kind="stable")
    t = np.asarray(treated, dtype=bool)[order]
    stayed = ~np.asarray(churned, dtype=bool)[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    kept_t, kept_c = np.cumsum(stayed & t), np.cumsum(stayed & ~t)
    with np.errstate(divide="ignore", invalid="ignore"):
        curve = np.where(n_c > 0, kept_t - kept_c * n_t / n_c, 0.0)
    n = len(order)
    return np.arange(0, n + 1) / n, np.concatenate([[0.0], curve]) / n


def qini_coefficient(uplift: np.ndarray, treated: np.ndarray, churned: np.ndarray) -> float:
    """The area between the Qini curve and the line of a random ranking (which ends where the curve
    ends), as a share of the customers ranked: 0 for a random ranking, higher for a better one."""
    x, curve = qini_curve(uplift, treated, churned)
    random_line = x * curve[-1]
    return float(np.trapezoid(curve - random_line, x))


def uplift_at(uplift: np.ndarray, treated: np.ndarray, churned: np.ndarray, share: float) -> float:
    """The measured uplift (control churn rate minus treated churn rate) of the top ``share`` by ``uplift``."""
    order = np.argsort(-np.asarray(uplift, dtype=np.float64), kind="stable")
    top = order[: max(1, round(share * len(order)))]
    t, c = np.asarray(treated, dtype=bool)[top], ~np.asarray(treated, dtype=bool)[top]
    y = np.asarray(churned, dtype=bool)[top]
    if not t.any() or not c.any():
        return float("nan")
    return float(y[c].mean() - y[t].mean())


def holdout_split(frame: pd.DataFrame, campaign_column: str = "campaign", time_column: str = "contact_date"):
    """Train on the earlier campaigns and hold out the latest one; with a single campaign, hold out
    a seeded 30% of its contacts (stratified by arm). Returns (train, holdout, how)."""
    campaigns = frame.groupby(campaign_column)[time_column].max().sort_values()
    if len(campaigns) >= 2:
        latest = campaigns.index[-1]
        return frame[frame[campaign_column] != latest], frame[frame[campaign_column] == latest], f"campaign {latest}"
    rng = np.random.default_rng(7)
    held = np.zeros(len(frame), dtype=bool)
    for arm in (TREATED, CONTROL):
        rows = np.flatnonzero((frame["arm"] == arm).to_numpy())
        held[rng.choice(rows, size=round(0.3 * rows.size), replace=False)] = True
    return frame[~held], frame[held], "a seeded 30% of the only campaign's contacts"
