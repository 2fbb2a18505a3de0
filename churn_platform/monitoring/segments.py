"""Drift where it matters: per segment of customers, and in what the model bases its scores on.

The whole population's drift share can hide a segment that moved: one region's usage collapsing
is a small share of all customers. So each segment (each value of a declared categorical
attribute with enough customers on both sides, and each risk tier by the champion's scores) is
compared on its own, training rows against the latest scoring rows.

Per feature the test is Evidently's default, computed directly so that dozens of segments stay
cheap. Above 1,000 rows a side: the Wasserstein distance normed by the reference's standard
deviation for a numeric feature, the Jensen-Shannon distance of the category shares for a
categorical one, drifted above 0.1. At 1,000 rows or fewer a side those distances are inflated by
sampling noise, so a feature drifted only when the two-sample Kolmogorov-Smirnov test (or the
chi-squared test of the category counts) also finds the difference real, below p = 0.05. (The test
alone, Evidently's small-sample default, finds the small real shifts that every month brings,
such as usage a few percent up, and warned of segments the whole population showed no more drift
in.) A segment's drift share is its drifted features over those compared.

Attribution drift compares what the model leans on: each feature's share of the mean absolute
contribution (TreeSHAP for LightGBM, the linear terms of a logistic regression, occlusion for a
forest) on the training rows and on the latest rows. Its size is the total variation distance of
the two share vectors (0: the same features carry the scores; 1: entirely different ones).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from churn_platform.business.catalogue import Catalogue

FEATURE_THRESHOLD = 0.1
"""A feature's distance above which it has drifted (Evidently's default for large samples)."""
SMALL_SAMPLE_ROWS = 1_000
"""At most this many rows on a side, a feature's distance must also pass a statistical test."""
P_VALUE = 0.05
MIN_SEGMENT_ROWS = 200
"""The fewest rows a segment needs on each side to be compared."""


def numeric_distance(reference: pd.Series, current: pd.Series) -> float | None:
    """The Wasserstein distance between the two samples over the reference's standard deviation."""
    from scipy.stats import wasserstein_distance

    ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=float)
    cur = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype=float)
    if len(ref) == 0 or len(cur) == 0:
        return None
    spread = ref.std()
    distance = wasserstein_distance(ref, cur)
    if spread == 0:
        return 0.0 if distance == 0 else float("inf")
    return float(distance / spread)


def categorical_distance(reference: pd.Series, current: pd.Series) -> float | None:
    """The Jensen-Shannon distance (base 2) between the category shares of the two samples."""
    from scipy.spatial.distance import jensenshannon

    ref, cur = reference.astype(object).fillna("(empty)"), current.astype(object).fillna("(empty)")
    if len(ref) == 0 or len(cur) == 0:
        return None
    values = sorted(set(ref.astype(str)) | set(cur.astype(str)))
    p = ref.astype(str).value_counts(normalize=True).reindex(values, fill_value=0).to_numpy()
    q = cur.astype(str).value_counts(normalize=True).reindex(values, fill_value=0).to_numpy()
    return float(jensenshannon(p, q, base=2))


def small_sample_drift(reference: pd.Series, current: pd.Series, categorical: bool) -> bool | None:
    """Whether a small sample drifted: the chi-squared test of the category counts, or the two-sample
    Kolmogorov-Smirnov test, below ``P_VALUE``."""
    from scipy.stats import chi2_contingency, ks_2samp

    if categorical:
        ref = reference.astype(object).fillna("(empty)").astype(str)
        cur = current.astype(object).fillna("(empty)").astype(str)
        if len(ref) == 0 or len(cur) == 0:
            return None
        values = sorted(set(ref) | set(cur))
        if len(values) < 2:
            return False
        table = np.array(
            [ref.value_counts().reindex(values, fill_value=0), cur.value_counts().reindex(values, fill_value=0)]
        )
        return bool(chi2_contingency(table).pvalue < P_VALUE)
    ref = pd.to_numeric(reference, errors="coerce").dropna()
    cur = pd.to_numeric(current, errors="coerce").dropna()
    if len(ref) == 0 or len(cur) == 0:
        return None
    return bool(ks_2samp(ref, cur).pvalue < P_VALUE)


@dataclasses.dataclass(frozen=True)
class SegmentDrift:
    attribute: str
    value: str
    reference_rows: int
    current_rows: int
    drift_share: float
    drifted: list[str]
    """The features that drifted in the segment, most drifted first."""


def segment_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    catalogue: Catalogue,
    segments: dict[str, tuple[pd.Series, pd.Series]],
    min_rows: int = MIN_SEGMENT_ROWS,
) -> list[SegmentDrift]:
    """Each segment's drift share: ``segments`` maps an attribute to its value on each reference and
    current row; every value with at least ``min_rows`` rows on both sides is a segment."""
    out = []
    for attribute, (ref_values, cur_values) in segments.items():
        ref_values, cur_values = ref_values.astype(str), cur_values.astype(str)
        common = sorted(set(ref_values.unique()) & set(cur_values.unique()))
        for value in common:
            ref, cur = reference[(ref_values == value).to_numpy()], current[(cur_values == value).to_numpy()]
            if len(ref) < min_rows or len(cur) < min_rows:
                continue
            small = min(len(ref), len(cur)) <= SMALL_SAMPLE_ROWS
            distances, judged = {}, {}
            for name in catalogue.names:
                if name == attribute or name not in ref.columns or name not in cur.columns:
                    continue
                categorical = catalogue[name].kind == "categorical"
                measure = categorical_distance if categorical else numeric_distance
                d = measure(ref[name], cur[name])
                if d is None:
                    continue
                distances[name] = d
                judged[name] = d > FEATURE_THRESHOLD and (
                    not small or bool(small_sample_drift(ref[name], cur[name], categorical))
                )
            if not distances:
                continue
            drifted = sorted((n for n, moved in judged.items() if moved), key=lambda n: -distances[n])
            out.append(SegmentDrift(attribute, value, len(ref), len(cur), len(drifted) / len(distances), drifted))
    return out


def risk_tiers(probabilities: np.ndarray, cutoffs: tuple[float, float]) -> pd.Series:
    high, medium = cutoffs
    p = np.asarray(probabilities, dtype=float)
    return pd.Series(np.where(p >= high, "high", np.where(p >= medium, "medium", "low")))


@dataclasses.dataclass(frozen=True)
class AttributionDrift:
    distance: float
    """The total variation distance of the two attribution share vectors."""
    reference_shares: dict[str, float]
    current_shares: dict[str, float]

    def changes(self, top: int = 5) -> list[tuple[str, float, float]]:
        """The features whose share moved most: (feature, reference share, current share)."""
        names = sorted(self.reference_shares, key=lambda n: -abs(self.current_shares[n] - self.reference_shares[n]))
        return [(n, self.reference_shares[n], self.current_shares[n]) for n in names[:top]]


def attribution_shares(impact: np.ndarray, names) -> dict[str, float]:
    """Each feature's share of the mean absolute contribution over the rows."""
    mean = np.abs(np.asarray(impact, dtype=float)).mean(axis=0)
    total = mean.sum()
    shares = mean / total if total > 0 else np.full(len(mean), 1 / max(len(mean), 1))
    return {str(n): float(s) for n, s in zip(names, shares)}


def attribution_drift(reference_impact: np.ndarray, current_impact: np.ndarray, names) -> AttributionDrift:
    ref, cur = attribution_shares(reference_impact, names), attribution_shares(current_impact, names)
    distance = 0.5 * sum(abs(cur[n] - ref[n]) for n in ref)
    return AttributionDrift(float(distance), ref, cur)
