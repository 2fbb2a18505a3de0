"""Batch scores for analysts: probability, risk tier, top drivers and revenue at risk.

``score_frame`` is the one scoring function; it runs in process on a data frame, or on
Ray Data (``score_with_ray``) batch by batch for populations that do not fit one process.

Drivers come from the model itself where it has an additive explanation: LightGBM's built-in
TreeSHAP (``pred_contrib``, against the model's expected score) and the logistic regression's
exact per-feature terms (against the typical customer: the population's medians and most common
categories). The contributions are in log-odds; scaled by the link's secant (calibration
included) they add up to the probability's difference from the baseline, in probability
points. The random forest has no cheap exact equivalent (TreeSHAP over its 200 deep trees costs
about 18 ms a row with the ``shap`` package's C code here, more than occlusion), so it, and any
model the compiled scorer does not know, is explained by occlusion: each feature in turn is set
to the typical customer's value and the probability recomputed. The features that raise the
probability most are the customer's top drivers of risk, each with its impact. Risk tiers cut the population at percentiles of the
probability (by default the top 10% is ``high``, the next 20% ``medium``, the rest ``low``);
the cut-offs are probabilities from the population being scored, so that tiers always
hold the configured shares.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from churn_platform import policy
from churn_platform.business.catalogue import ID_COLUMN, TIME_COLUMN, Catalogue
from churn_platform.ml.training import features_frame

SCORE_COLUMNS = (
    ID_COLUMN,
    TIME_COLUMN,
    "churn_probability",
    "risk_tier",
    "driver_1",
    "driver_1_impact",
    "driver_2",
    "driver_2_impact",
    "driver_3",
    "driver_3_impact",
    "mrr",
    "revenue_at_risk",
    "model_name",
    "model_version",
)


@dataclasses.dataclass(frozen=True)
class RiskTiers:
    """Shares of the population, highest risk first; the rest is ``low``."""

    high: float = policy.HIGH_RISK_SHARE
    medium: float = policy.MEDIUM_RISK_SHARE

    def __post_init__(self) -> None:
        if not (0 < self.high < 1 and 0 <= self.medium < 1 and self.high + self.medium < 1):
            raise ValueError(f"risk tier shares must be positive and add up to less than 1, got {self}")

    def cutoffs(self, probabilities: np.ndarray) -> tuple[float, float]:
        """Probabilities at or above which a customer is high, or medium, risk."""
        p = np.asarray(probabilities, dtype=float)
        return float(np.quantile(p, 1 - self.high)), float(np.quantile(p, 1 - self.high - self.medium))


def reference_values(frame: pd.DataFrame, catalogue: Catalogue) -> dict[str, object]:
    """The typical customer of a population: numeric medians, most common categories."""
    x = features_frame(frame, catalogue, fill_missing=True)
    reference: dict[str, object] = {
        c: (float(x[c].median()) if x[c].notna().any() else None) for c in catalogue.numeric
    }
    for c in catalogue.categorical:
        modes = x[c].dropna().mode()
        reference[c] = modes.iloc[0] if len(modes) else None
    return reference


def occlusion_impact(model, x: pd.DataFrame, reference: dict[str, object]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's probability, and per feature how much it moves when that feature is set to the
    typical customer's value (``reference``): the row's drivers, for any model."""
    proba = model.predict_proba(x)[:, 1]
    names = list(x.columns)
    impact = np.empty((len(x), len(names)))
    for j, name in enumerate(names):
        occluded = x.copy()
        occluded[name] = reference[name]
        impact[:, j] = proba - model.predict_proba(occluded)[:, 1]
    return proba, impact


def occlusion_records(
    score, records: list[dict], reference: dict[str, object], names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """``occlusion_impact`` through a compiled scorer's ``score_records``: every occluded row in one call."""
    n = len(records)
    batch = list(records)
    for name in names:
        batch += [{**r, name: reference[name]} for r in records]
    scored = np.asarray(score(batch), dtype=float)
    proba = scored[:n]
    return proba, (proba[None, :] - scored[n:].reshape(len(names), n)).T


def explain(model, x: pd.DataFrame, reference: dict[str, object], scorer=None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's probability and each feature's impact on it (``x``'s column order): the model's own
    contributions where its compiled scorer has them, else occlusion (through the compiled scorer
    when there is one, else through the pipeline)."""
    if scorer is None:
        return occlusion_impact(model, x, reference)
    return explain_records(model, x.to_dict("records"), reference, scorer)


def explain_records(
    model, records: list[dict], reference: dict[str, object], scorer=None, catalogue: Catalogue | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``explain`` on plain records (what the API validated), without a data frame on the compiled path."""
    if scorer is None:
        if catalogue is None:
            raise ValueError("explaining through the pipeline needs the model's catalogue")
        x = features_frame(pd.DataFrame.from_records(records, columns=list(catalogue.names)), catalogue)
        return occlusion_impact(model, x, reference)
    if scorer.explain_records is not None:
        return scorer.explain_records(records, reference)
    return occlusion_records(scorer.score_records, records, reference, scorer.catalogue.names)


def compiled(model, catalogue: Catalogue):
    """The model's verified compiled scorer, or None (the pipeline is used then)."""
    from churn_platform.ml.fast_predict import compile_scorer

    return compile_scorer(model, catalogue)[0]


def top_driver_order(impact: np.ndarray, drivers: int) -> np.ndarray:
    """Column indices of each row's largest impacts; ties keep the feature list's order."""
    return np.argsort(-impact, axis=1, kind="stable")[:, :drivers]


def score_frame(
    model,
    catalogue: Catalogue,
    frame: pd.DataFrame,
    model_name: str,
    model_version: str,
    reference: dict[str, object],
    cutoffs: tuple[float, float],
    drivers: int = 3,
    scorer=None,
) -> pd.DataFrame:
    """Score ``frame`` (rows of ``scoring_features``). ``reference`` and ``cutoffs`` come from the
    whole population, so that a batch scores the same as the whole frame would. ``scorer`` is the
    model's compiled scorer (compiled here when not given; ``False`` scores through the pipeline).
    A feature the frame lacks is scored as missing."""
    x = features_frame(frame, catalogue, fill_missing=True)
    if scorer is None:
        scorer = compiled(model, catalogue)
    proba, impact = explain(model, x, reference, scorer or None)
    order = top_driver_order(impact, drivers)
    names = np.asarray(catalogue.names)
    high, medium = cutoffs
    out = pd.DataFrame(
        {
            ID_COLUMN: frame[ID_COLUMN].to_numpy(),
            TIME_COLUMN: pd.to_datetime(frame[TIME_COLUMN]).to_numpy(),
            "churn_probability": proba,
            "risk_tier": np.where(proba >= high, "high", np.where(proba >= medium, "medium", "low")),
        }
    )
    for k in range(drivers):
        out[f"driver_{k + 1}"] = names[order[:, k]]
        out[f"driver_{k + 1}_impact"] = np.round(impact[np.arange(len(x)), order[:, k]], 6)
    # Revenue at risk needs revenue: zero for a business that declares neither subscriptions nor invoices.
    mrr = (
        pd.to_numeric(frame["mrr"], errors="coerce").fillna(0.0).to_numpy() if "mrr" in frame else np.zeros(len(frame))
    )
    out["mrr"] = mrr
    out["revenue_at_risk"] = proba * mrr
    out["model_name"] = model_name
    out["model_version"] = str(model_version)
    return out.loc[:, list(SCORE_COLUMNS)]


class _RayScorer:
    """One per Ray Data worker: loads the model version once, scores batch after batch."""

    def __init__(
        self, tracking_uri: str, model_name: str, model_version: str, reference: dict, cutoffs: tuple, features: list
    ):
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        self.model = mlflow.sklearn.load_model(f"models:/{model_name}/{model_version}")
        self.catalogue = Catalogue.from_records(features)
        self.scorer = compiled(self.model, self.catalogue)
        self.args = (model_name, model_version, reference, cutoffs)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return score_frame(self.model, self.catalogue, batch, *self.args, scorer=self.scorer)


def score_with_ray(
    frame: pd.DataFrame,
    tracking_uri: str,
    model_name: str,
    model_version: str,
    reference: dict[str, object],
    cutoffs: tuple[float, float],
    catalogue: Catalogue,
    batch_size: int = 50_000,
    workers: int = 2,
) -> pd.DataFrame:
    """``score_frame`` on Ray Data: the population is split into batches scored by ``workers``
    actors that each load the model once. Uses the Ray cluster the process is connected to
    (``ray.init()`` starts a local one)."""
    import ray

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    dataset = ray.data.from_pandas(frame.reset_index(drop=True))
    scored = dataset.map_batches(
        _RayScorer,
        fn_constructor_args=(tracking_uri, model_name, str(model_version), reference, cutoffs, catalogue.as_records()),
        batch_format="pandas",
        batch_size=batch_size,
        concurrency=workers,
    )
    result = scored.to_pandas()
    return result.sort_values(ID_COLUMN, kind="stable").reset_index(drop=True)
