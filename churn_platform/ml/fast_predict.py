"""A compiled scorer for serving: the fitted pipeline's arithmetic without its per-call overhead.

Scoring one row through the sklearn objects (calibration wrapper → pipeline → column
transformer → encoders → model) costs about 2-5 ms, almost all of it input validation and
pandas handling repeated at every layer; the model itself needs microseconds. For the
pipelines this platform trains, `compile_scorer` reads the fitted parameters (category
lists, medians, scaling, the LightGBM booster or the logistic coefficients, the Platt
calibration) and scores plain records with NumPy.

A compiled scorer is only used after it agrees with the pipeline on probe rows: the model's
input example and rows with every category, unknown categories, missing values and extreme
numbers. Any disagreement beyond 1e-9, or a pipeline shape it does not know, and the caller
gets ``None`` with the reason, and serves through the pipeline instead.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from churn_platform.business.catalogue import Catalogue

TOLERANCE = 1e-9

Records = Sequence[dict[str, Any]]


class NotCompilable(ValueError):
    pass


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _numeric(records: Records, columns: list[str]) -> np.ndarray:
    # NumPy turns None into NaN for a float array.
    return np.array([[r.get(c) for c in columns] for r in records], dtype=np.float64).reshape(
        len(records), len(columns)
    )


def _ordinal_block(encoder, columns: list[str]) -> Callable[[Records], np.ndarray]:
    from sklearn.preprocessing import OrdinalEncoder

    if not isinstance(encoder, OrdinalEncoder):
        raise NotCompilable(f"categorical encoder {type(encoder).__name__}")
    if encoder.handle_unknown != "use_encoded_value":
        raise NotCompilable("an OrdinalEncoder that raises on unknown categories")
    unknown = float(encoder.unknown_value)
    missing = float(encoder.encoded_missing_value) if not _is_missing(encoder.encoded_missing_value) else math.nan
    maps = [{v: float(i) for i, v in enumerate(cats) if not _is_missing(v)} for cats in encoder.categories_]

    def block(records: Records) -> np.ndarray:
        out = np.empty((len(records), len(columns)))
        for j, (c, mapping) in enumerate(zip(columns, maps)):
            out[:, j] = [missing if _is_missing(v := r.get(c)) else mapping.get(v, unknown) for r in records]
        return out

    return block


def _one_hot_block(encoder, columns: list[str]) -> Callable[[Records], np.ndarray]:
    if encoder.handle_unknown != "ignore" or encoder.drop is not None or getattr(encoder, "sparse_output", False):
        raise NotCompilable("a OneHotEncoder other than handle_unknown='ignore', dense, no drop")
    if getattr(encoder, "max_categories", None) or getattr(encoder, "min_frequency", None):
        raise NotCompilable("a OneHotEncoder with infrequent categories")
    maps = []
    for cats in encoder.categories_:
        maps.append({("__missing__" if _is_missing(v) else v): i for i, v in enumerate(cats)})
    widths = [len(c) for c in encoder.categories_]

    def block(records: Records) -> np.ndarray:
        out = np.zeros((len(records), sum(widths)))
        offset = 0
        for c, mapping, width in zip(columns, maps, widths):
            for i, r in enumerate(records):
                v = r.get(c)
                k = mapping.get("__missing__" if _is_missing(v) else v)
                if k is not None:
                    out[i, offset + k] = 1.0
            offset += width
        return out

    return block


def _numeric_block(transformer, columns: list[str]) -> Callable[[Records], np.ndarray]:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    steps = (
        list(transformer.named_steps.values())
        if isinstance(transformer, Pipeline)
        else ([] if transformer == "passthrough" else [transformer])
    )
    ops: list[Callable[[np.ndarray], np.ndarray]] = []
    for step in steps:
        if isinstance(step, SimpleImputer):
            if step.strategy not in ("median", "mean", "constant") or getattr(step, "add_indicator", False):
                raise NotCompilable(f"SimpleImputer(strategy={step.strategy!r})")
            stats = np.asarray(step.statistics_, dtype=np.float64)
            if len(stats) != len(columns) or np.isnan(stats).any():
                raise NotCompilable("an imputer that dropped a column")
            ops.append(lambda x, s=stats: np.where(np.isnan(x), s, x))
        elif isinstance(step, FunctionTransformer) and step.func is None and step.inverse_func is None:
            continue  # "passthrough", as a fitted ColumnTransformer holds it
        elif isinstance(step, StandardScaler):
            mean = step.mean_ if step.with_mean else np.zeros(len(columns))
            scale = step.scale_ if step.with_std else np.ones(len(columns))
            ops.append(lambda x, m=mean, s=scale: (x - m) / s)
        else:
            raise NotCompilable(f"numeric step {type(step).__name__}")

    def block(records: Records) -> np.ndarray:
        x = _numeric(records, columns)
        for op in ops:
            x = op(x)
        return x

    return block


def _prepare(column_transformer) -> tuple[Callable[[Records], np.ndarray], list[str]]:
    """The transformer's arithmetic on records, and the input feature each output column comes from."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    if not isinstance(column_transformer, ColumnTransformer):
        raise NotCompilable(f"first step {type(column_transformer).__name__}")
    blocks = []
    owners: list[str] = []
    for name, transformer, columns in column_transformer.transformers_:
        if name == "remainder":
            if transformer != "drop" and len(columns):
                raise NotCompilable("a remainder that is not dropped")
            continue
        columns = list(columns)
        if isinstance(transformer, OrdinalEncoder):
            blocks.append(_ordinal_block(transformer, columns))
            owners += columns
        elif isinstance(transformer, OneHotEncoder):
            blocks.append(_one_hot_block(transformer, columns))
            owners += [c for c, cats in zip(columns, transformer.categories_) for _ in cats]
        else:
            blocks.append(_numeric_block(transformer, columns))
            owners += columns

    def prepare(records: Records) -> np.ndarray:
        return np.hstack([b(records) for b in blocks]) if len(blocks) > 1 else blocks[0](records)

    return prepare, owners


Score = Callable[[np.ndarray], np.ndarray]


def _response(model) -> tuple[Score | None, Score]:
    """The model's raw score (its decision function, where it has one) and its probability."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    if isinstance(model, LogisticRegression):
        coef, intercept = model.coef_[0].astype(np.float64), float(model.intercept_[0])
        return (lambda x: x @ coef + intercept), (lambda x: expit(x @ coef + intercept))
    if isinstance(model, RandomForestClassifier):
        if model.n_outputs_ != 1 or len(model.classes_) != 2:
            raise NotCompilable("a forest with other than one binary output")
        trees = list(model.estimators_)

        def proba(x: np.ndarray) -> np.ndarray:
            # What the forest does with one job, without its per-call thread pool: the trees'
            # probabilities summed in the same order, then averaged.
            x32 = np.ascontiguousarray(x, dtype=np.float32)
            total = np.zeros((len(x32), 2))
            for tree in trees:
                total += tree.predict_proba(x32, check_input=False)
            return (total / len(trees))[:, 1]

        return None, proba
    try:
        from lightgbm import LGBMClassifier
    except ImportError:  # pragma: no cover
        LGBMClassifier = None  # type: ignore[assignment,misc]
    if LGBMClassifier is not None and isinstance(model, LGBMClassifier):
        booster = model.booster_
        best = model.best_iteration_ if getattr(model, "best_iteration_", None) else None
        return (lambda x: booster.predict(x, raw_score=True, num_iteration=best)), (
            lambda x: booster.predict(x, num_iteration=best)
        )
    raise NotCompilable(f"model {type(model).__name__}")


Contributions = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
"""(prepared rows, the prepared reference row) → (raw score, the raw score a row is compared with,
additive contributions of each prepared column to the difference)."""


def _contributions(model) -> tuple[Contributions | None, str]:
    """The model's own additive explanation of its raw score, where it has one."""
    from sklearn.linear_model import LogisticRegression

    if isinstance(model, LogisticRegression):
        coef, intercept = model.coef_[0].astype(np.float64), float(model.intercept_[0])

        def linear(x: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            # Exact for a linear score: each column's share of the difference from the typical customer.
            raw = x @ coef + intercept
            return raw, np.full(len(x), float(reference @ coef + intercept)), (x - reference) * coef

        return linear, "exact contributions of the logistic score against the typical customer"
    try:
        from lightgbm import LGBMClassifier
    except ImportError:  # pragma: no cover
        return None, ""
    if isinstance(model, LGBMClassifier):
        booster = model.booster_
        best = model.best_iteration_ if getattr(model, "best_iteration_", None) else None

        def tree_shap(x: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            # LightGBM's built-in TreeSHAP: one column per input plus the expected raw score.
            contrib = booster.predict(x, pred_contrib=True, num_iteration=best)
            return contrib.sum(axis=1), contrib[:, -1], contrib[:, :-1]

        return tree_shap, "TreeSHAP (LightGBM pred_contrib) against the model's expected score"
    return None, ""


@dataclasses.dataclass(frozen=True)
class CompiledScorer:
    score_records: Callable[[Records], np.ndarray]
    description: str
    catalogue: Catalogue
    explain_records: Callable[[Records, dict[str, Any]], tuple[np.ndarray, np.ndarray]] | None = None
    """(records, the typical customer) → (probabilities, each feature's impact in probability points,
    in the catalogue's order), from the model's own contributions; None where the model has none."""
    explanation: str = "occlusion against the typical customer"

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        from churn_platform.ml.training import features_frame

        return self.score_records(features_frame(frame, self.catalogue, fill_missing=True).to_dict("records"))


def _compile(model, catalogue: Catalogue) -> CompiledScorer:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import Pipeline

    calibration: tuple[float, float] | None = None
    inner = model
    if isinstance(model, CalibratedClassifierCV):
        if model.method != "sigmoid" or len(model.calibrated_classifiers_) != 1:
            raise NotCompilable("calibration other than one sigmoid (Platt) calibrator")
        calibrated = model.calibrated_classifiers_[0]
        (calibrator,) = calibrated.calibrators
        calibration = (float(calibrator.a_), float(calibrator.b_))
        inner = calibrated.estimator
        inner = getattr(inner, "estimator", inner)  # FrozenEstimator → the fitted pipeline
    if not isinstance(inner, Pipeline) or len(inner.steps) != 2:
        raise NotCompilable(f"estimator {type(inner).__name__}")
    prepare, owners = _prepare(inner.steps[0][1])
    estimator = inner.steps[1][1]
    raw, probability = _response(estimator)
    # What Platt scaling was fitted on, by sklearn's own rule: the decision function if the
    # estimator has one, else the probability.
    decision = probability if not hasattr(estimator, "decision_function") else raw
    if calibration is not None and decision is None:
        raise NotCompilable(f"no raw score for {type(estimator).__name__}'s decision function")
    a, b = calibration or (0.0, 0.0)

    def score(records: Records) -> np.ndarray:
        x = prepare(records)
        if calibration is None:
            return probability(x)
        p = expit(-(a * decision(x) + b))
        p[(p > 1.0) & (p <= 1.0 + 1e-5)] = 1.0
        return p

    what = f"{type(inner.steps[1][1]).__name__}" + (" + Platt calibration" if calibration else "")
    contributions, explanation = _contributions(estimator)
    if contributions is None:
        return CompiledScorer(score, what, catalogue)

    def link(raw_score: np.ndarray) -> np.ndarray:
        """The served probability of a raw score (the calibration's input is the raw score or the probability)."""
        if calibration is None:
            return expit(raw_score)
        decided = raw_score if decision is raw else expit(raw_score)
        return expit(-(a * decided + b))

    # Each prepared column belongs to one input feature (a one-hot category to its feature).
    names = list(catalogue.names)
    missing = sorted(set(owners) - set(names))
    if missing:
        raise NotCompilable(f"inputs outside the catalogue: {', '.join(missing)}")
    owner_index = np.array([names.index(o) for o in owners])

    def explain(records: Records, reference: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        x = prepare(records)
        raw_score, base, phi = contributions(x, prepare([reference])[0])
        p, p_base = link(raw_score), link(base)
        # The contributions add up to the raw score's difference from its baseline; scaled by the
        # link's secant there, they add up to the probability's difference (and keep their signs).
        delta = raw_score - base
        close = np.abs(delta) < 1e-12
        h = 1e-6
        slope = np.where(close, (link(raw_score + h) - link(raw_score - h)) / (2 * h), 0.0)
        slope = np.where(close, slope, (p - p_base) / np.where(close, 1.0, delta))
        scaled = phi * slope[:, None]
        impact = np.zeros((len(x), len(names)))
        np.add.at(impact.T, owner_index, scaled.T)
        return p, impact

    return CompiledScorer(score, what, catalogue, explain, explanation)


def probe_records(
    catalogue: Catalogue, categories: dict[str, list[str]] | None = None, example: pd.DataFrame | None = None
) -> list[dict[str, Any]]:
    """Rows that exercise every path of a compiled scorer: each category (declared, or learned by
    the model: ``categories``), an unknown category, missing values, zeros and large numbers, plus
    the model's own input example."""
    learned = categories or {}
    values = {f.name: list(dict.fromkeys([*f.categories, *learned.get(f.name, [])])) for f in catalogue.features}
    base = {
        f.name: (values[f.name][0] if f.kind == "categorical" and values[f.name] else f.example)
        for f in catalogue.features
    }
    rows: list[dict[str, Any]] = [dict(base)]
    for f in catalogue.features:
        if f.kind == "categorical":
            rows += [{**base, f.name: c} for c in values[f.name]]
            rows += [{**base, f.name: "never_seen_before"}, {**base, f.name: None}]
        else:
            rows += [{**base, f.name: v} for v in (0.0, 1.0, 12345.0, 1e9, None)]
    rows.append(dict.fromkeys(catalogue.names) | {c: base[c] for c in catalogue.categorical})
    if example is not None and len(example):
        from churn_platform.ml.training import features_frame

        rows += features_frame(example, catalogue, fill_missing=True).to_dict("records")
    return rows


def compile_scorer(
    model, catalogue: Catalogue, example: pd.DataFrame | None = None
) -> tuple[CompiledScorer | None, str]:
    """A verified compiled scorer for ``model`` (trained on ``catalogue``), or (None, why not)."""
    try:
        compiled = _compile(model, catalogue)
    except NotCompilable as exc:
        return None, f"not compiled: {exc}"
    from churn_platform.ml.training import features_frame, learned_categories

    rows = probe_records(catalogue, learned_categories(model), example)
    frame = pd.DataFrame(rows, columns=list(catalogue.names))
    for c in catalogue.numeric:
        frame[c] = frame[c].astype("float64")
    expected = model.predict_proba(features_frame(frame, catalogue))[:, 1]
    got = compiled.score_records(features_frame(frame, catalogue).to_dict("records"))
    worst = float(np.max(np.abs(expected - got)))
    if not np.isfinite(worst) or worst > TOLERANCE:
        return None, f"not compiled: differs from the pipeline by {worst:.3g} on probe rows"
    return compiled, f"compiled ({compiled.description}); {agreement(worst, len(rows))}"


def agreement(worst: float, rows: int) -> str:
    """How closely the compiled scorer matched the pipeline, in words."""
    if worst == 0.0:
        return f"agrees with the pipeline exactly on {rows} probe rows"
    return f"agrees with the pipeline within {worst:.1e} (tolerance {TOLERANCE:.0e}) on {rows} probe rows"
