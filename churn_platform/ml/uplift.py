"""Uplift: how much a contact changes a customer's churn, learnt from campaigns with random controls.

A T-learner: one churn model fitted on the contacted customers (the treated arm), one on the
held-out ones (the control arm), both on the customers' features before the contact. A customer's
uplift is ``P(churn | not contacted) − P(churn | contacted)``: above zero when a contact keeps
them, below zero for a sleeping dog whom it drives away. Each arm's model is one of the churn
model's candidates, fitted the same way.

A second learner, for the small campaigns a business starts with, borrows the churn model's
strength: a contact shifts a customer's churn log-odds by ``β₀ + βᵀz(x)`` (z: the features,
standardised and one-hot), fitted on the contacts with the churn model's log-odds as the offset and a
ridge penalty on ``β`` chosen by cross-validated deviance. The uplift is then
``p(x) − σ(logit p(x) + β₀ + βᵀz(x))``: with little evidence of who responds differently the
penalty keeps ``β`` near zero and the ranking follows risk times the average effect; more contacts
let the features move it.

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


@dataclasses.dataclass
class RiskScaledUplift:
    """The churn model's probability shifted, on the log-odds scale, by a contact's effect: an
    intercept and a ridge-penalised linear term in the encoded features (see the module's notes).
    ``uplift`` is also ``predict``, for MLflow; skops stores it like the churn model."""

    churn_model: object
    encoder: object
    intercept: float
    coef: np.ndarray
    features: list
    penalty: float
    candidate: str = "risk_scaled"

    def _parts(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        x = features_frame(pd.DataFrame(frame), Catalogue.from_records(self.features), fill_missing=True)
        p = np.clip(self.churn_model.predict_proba(x)[:, 1], 1e-6, 1 - 1e-6)
        return p, np.asarray(self.encoder.transform(x), dtype=np.float64)

    def uplift(self, frame: pd.DataFrame) -> np.ndarray:
        p, z = self._parts(frame)
        shifted = np.log(p / (1 - p)) + self.intercept + z @ self.coef
        return p - 1.0 / (1.0 + np.exp(-np.clip(shifted, -30, 30)))

    predict = uplift


PENALTIES = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
"""The ridge penalties tried for the risk-scaled learner's feature term."""


def _fit_shift(offset, treated, z, y, penalty: float) -> np.ndarray:
    """Intercept and coefficients of the contact's log-odds shift (penalised but for the intercept)."""
    from scipy.optimize import minimize

    t = treated.astype(np.float64)

    def loss(w):
        eta = offset + t * (w[0] + z @ w[1:])
        p = 1.0 / (1.0 + np.exp(-np.clip(eta, -30, 30)))
        nll = -(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12)).sum()
        residual = (p - y) * t
        grad = np.concatenate([[residual.sum()], z.T @ residual + 2 * penalty * w[1:]])
        return nll + penalty * (w[1:] ** 2).sum(), grad

    return minimize(loss, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B").x


def _deviance(offset, treated, z, y, w) -> float:
    eta = offset + treated * (w[0] + z @ w[1:])
    p = np.clip(1.0 / (1.0 + np.exp(-np.clip(eta, -30, 30))), 1e-12, 1 - 1e-12)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).sum())


def fit_risk_scaled(
    frame: pd.DataFrame,
    catalogue: Catalogue,
    churn_model,
    arm_column: str = "arm",
    label_column: str = "churned",
    seed: int = 7,
    min_per_arm: int = 50,
    folds: int = 5,
) -> RiskScaledUplift:
    """Fit the contact's log-odds shift on ``frame``'s matured contacts, over ``churn_model``'s
    probabilities (a fitted scikit-learn classifier on the catalogue's features); the penalty with
    the lowest ``folds``-fold deviance wins."""
    why = arms_not_ready(frame, min_per_arm, arm_column, label_column)
    if why:
        raise ValueError(f"an uplift model cannot be fitted: {why}")
    x = features_frame(frame, catalogue)
    p = np.clip(churn_model.predict_proba(x)[:, 1], 1e-6, 1 - 1e-6)
    offset = np.log(p / (1 - p))
    encoder = CANDIDATES["logistic_regression"](seed, catalogue.numeric, catalogue.categorical).named_steps["prepare"]
    z = np.asarray(encoder.fit_transform(x), dtype=np.float64)
    y = frame[label_column].astype(int).to_numpy()
    treated = (frame[arm_column] == TREATED).to_numpy().astype(np.float64)
    fold = np.random.default_rng(seed).integers(0, folds, size=len(y))
    scores = {}
    for penalty in PENALTIES:
        total = 0.0
        for k in range(folds):
            fit_rows, out = fold != k, fold == k
            w = _fit_shift(offset[fit_rows], treated[fit_rows], z[fit_rows], y[fit_rows], penalty)
            total += _deviance(offset[out], treated[out], z[out], y[out], w)
        scores[penalty] = total
    penalty = min(scores, key=scores.get)
    w = _fit_shift(offset, treated, z, y, penalty)
    return RiskScaledUplift(churn_model, encoder, float(w[0]), w[1:], catalogue.as_records(), penalty)


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


def clearly_better(
    challenger: np.ndarray,
    incumbent: np.ndarray,
    treated: np.ndarray,
    churned: np.ndarray,
    level: float = 0.9,
    resamples: int = 200,
    seed: int = 0,
) -> tuple[bool, float]:
    """Whether ranking ``challenger`` has the higher Qini coefficient than ``incumbent`` in at least
    ``level`` of bootstrap resamples of the contacts (seeded), and that share. On a few hundred
    contacts a Qini coefficient is noisy; a more complex learner replaces a simpler one only when
    it wins beyond that noise."""
    rng = np.random.default_rng(seed)
    treated, churned = np.asarray(treated, dtype=bool), np.asarray(churned, dtype=bool)
    n, wins = len(treated), 0
    for _ in range(resamples):
        i = rng.integers(0, n, size=n)
        wins += qini_coefficient(challenger[i], treated[i], churned[i]) > qini_coefficient(
            incumbent[i], treated[i], churned[i]
        )
    share = wins / resamples
    return share >= level, share


def uplift_at(uplift: np.ndarray, treated: np.ndarray, churned: np.ndarray, share: float) -> float:
    """The measured uplift (control churn rate minus treated churn rate) of the top ``share`` by ``uplift``."""
    order = np.argsort(-np.asarray(uplift, dtype=np.float64), kind="stable")
    top = order[: max(1, round(share * len(order)))]
    t, c = np.asarray(treated, dtype=bool)[top], ~np.asarray(treated, dtype=bool)[top]
    y = np.asarray(churned, dtype=bool)[top]
    if not t.any() or not c.any():
        return float("nan")
    return float(y[c].mean() - y[t].mean())


CROSS_FIT_FOLDS = 5


def holdout_split(frame: pd.DataFrame, campaign_column: str = "campaign", time_column: str = "contact_date"):
    """Train on the earlier campaigns and hold out the latest one. Returns (train, holdout, how), or
    None when there is a single campaign: it is then judged by cross-fitting (``out_of_fold``)."""
    campaigns = frame.groupby(campaign_column)[time_column].max().sort_values()
    if len(campaigns) < 2:
        return None
    latest = campaigns.index[-1]
    return frame[frame[campaign_column] != latest], frame[frame[campaign_column] == latest], f"campaign {latest}"


def out_of_fold(fit, frame: pd.DataFrame, folds: int = CROSS_FIT_FOLDS, seed: int = 7) -> np.ndarray:
    """Every contact's uplift estimated by a learner that did not see it: ``fit`` (rows -> a learner
    with ``uplift``) on all folds but one, applied to that one, for each of ``folds`` seeded folds."""
    fold = np.random.default_rng(seed).integers(0, folds, size=len(frame))
    out = np.empty(len(frame), dtype=np.float64)
    for k in range(folds):
        out[fold == k] = fit(frame[fold != k]).uplift(frame[fold == k])
    return out


def uplift_gate(
    qini: float, risk_qini: float | None, champion_qini: float | None, champion_version: str | None = None
) -> tuple[bool, str]:
    """Whether a new uplift model becomes champion, and why: its holdout Qini must be above 0, above
    that of ranking the same contacts by churn risk (``risk_qini``; None: not required), and not below
    the current champion's (``champion_qini``; None: there is none)."""
    above_zero = qini > 0
    beats_risk = risk_qini is None or qini > risk_qini
    keeps_up = champion_qini is None or qini >= champion_qini
    findings = [f"holdout Qini {qini:.5f} " + ("is above 0" if above_zero else "is not above 0")]
    if risk_qini is not None:
        findings.append(f"{'above' if beats_risk else 'not above'} ranking by churn risk's {risk_qini:.5f}")
    if champion_qini is None:
        findings.append("first uplift model")
    else:
        findings.append(
            f"{'reaches' if keeps_up else 'is below'} the champion's (v{champion_version}) "
            f"{champion_qini:.5f} on the same contacts"
        )
    return above_zero and beats_risk and keeps_up, "; ".join(findings)
