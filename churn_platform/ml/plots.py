"""Evaluation plots for a candidate on the holdout: ROC, precision-recall, reliability
(calibration), cumulative gains with lift, and feature importance. Each function returns a
matplotlib figure; ``evaluation_figures`` returns them all by file name, for MLflow."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display; figures are written as files

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from churn_platform.ml.training import CALIBRATION_BINS


def _figure(title: str):
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig, ax


def roc_figure(y: np.ndarray, p: np.ndarray, name: str):
    fpr, tpr, _ = roc_curve(y, p)
    fig, ax = _figure(f"ROC, {name}")
    ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right")
    return fig


def precision_recall_figure(y: np.ndarray, p: np.ndarray, name: str):
    precision, recall, _ = precision_recall_curve(y, p)
    fig, ax = _figure(f"Precision-recall, {name}")
    ax.plot(recall, precision, label=name)
    ax.axhline(y.mean(), linestyle="--", color="grey", label=f"base rate {y.mean():.3f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.legend(loc="upper right")
    return fig


def reliability_figure(y: np.ndarray, p: np.ndarray, name: str, bins: int = CALIBRATION_BINS):
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    mean_p, rate, count = [], [], []
    for b in range(bins):
        mask = which == b
        if mask.any():
            mean_p.append(p[mask].mean())
            rate.append(y[mask].mean())
            count.append(int(mask.sum()))
    fig, ax = _figure(f"Reliability, {name}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.plot(mean_p, rate, marker="o", label=name)
    for x, r, c in zip(mean_p, rate, count):
        ax.annotate(str(c), (x, r), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel("mean predicted probability (bin)")
    ax.set_ylabel("observed churn rate")
    ax.legend(loc="upper left")
    return fig


def gains_figure(y: np.ndarray, p: np.ndarray, name: str):
    order = np.argsort(-p, kind="stable")
    share = np.arange(1, len(y) + 1) / len(y)
    gains = np.cumsum(y[order]) / max(1, y.sum())
    lift = gains / share
    fig, ax = _figure(f"Cumulative gains and lift, {name}")
    ax.plot(share, gains, label="cumulative gains")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    ax.set_xlabel("share of customers contacted (highest risk first)")
    ax.set_ylabel("share of churners reached")
    lift_ax = ax.twinx()
    lift_ax.plot(share, lift, color="tab:orange", alpha=0.7, label="lift")
    lift_ax.set_ylabel("lift")
    lines = ax.get_lines() + lift_ax.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="center right")
    return fig


def feature_importance(model) -> pd.Series | None:
    """Native importance of a fitted candidate pipeline: split gain (LightGBM), impurity
    decrease (random forest) or |coefficient| on scaled inputs (logistic regression)."""
    while not hasattr(model, "named_steps") and hasattr(model, "estimator"):
        model = model.estimator  # a calibrated model wraps the frozen candidate
    try:
        names = model.named_steps["prepare"].get_feature_names_out()
        estimator = model.named_steps["model"]
    except (AttributeError, KeyError):
        return None
    if hasattr(estimator, "booster_"):
        values = estimator.booster_.feature_importance(importance_type="gain")
    elif hasattr(estimator, "feature_importances_"):
        values = estimator.feature_importances_
    elif hasattr(estimator, "coef_"):
        values = np.abs(estimator.coef_[0])
    else:
        return None
    names = [str(n).split("__", 1)[-1] for n in names]
    return pd.Series(values, index=names).sort_values(ascending=False)


def importance_figure(importance: pd.Series, name: str, top: int = 20):
    shown = importance.head(top)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(shown) + 1.2), dpi=100)
    ax.barh(shown.index, shown.values)
    ax.set_title(f"Feature importance, {name}")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def evaluation_figures(y_true, proba, name: str, model=None) -> dict[str, object]:
    y = np.asarray(y_true).astype(int)
    p = np.asarray(proba, dtype=float)
    figures = {
        "plots/roc.png": roc_figure(y, p, name),
        "plots/precision_recall.png": precision_recall_figure(y, p, name),
        "plots/reliability.png": reliability_figure(y, p, name),
        "plots/gains_lift.png": gains_figure(y, p, name),
    }
    importance = feature_importance(model) if model is not None else None
    if importance is not None:
        figures["plots/feature_importance.png"] = importance_figure(importance, name)
    return figures


def close(figures: dict[str, object]) -> None:
    for fig in figures.values():
        plt.close(fig)
