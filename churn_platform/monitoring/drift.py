"""Feature drift between the training data and the latest features, with Evidently."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from churn_platform.business.catalogue import Catalogue


@dataclasses.dataclass(frozen=True)
class DriftResult:
    drift_share: float
    drifted_columns: int
    total_columns: int
    column_scores: dict[str, float]  # p-value or distance per column, as Evidently reports it
    column_methods: dict[str, str]
    html_path: Path
    reference_rows: int
    current_rows: int
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)  # column -> why it was not compared
    reference_rows_compared: int | None = None  # the sample's size when the side was sampled
    current_rows_compared: int | None = None

    @property
    def sampled(self) -> bool:
        return (self.reference_rows_compared, self.current_rows_compared) != (self.reference_rows, self.current_rows)


def sample_rows(frame: pd.DataFrame, rows: int | None, seed: int = 0) -> pd.DataFrame:
    """``frame`` itself when it has at most ``rows`` rows (or ``rows`` is None), else a seeded random
    sample of ``rows`` of them, in their original order."""
    if rows is None or len(frame) <= rows:
        return frame
    if rows < 1:
        raise ValueError(f"a drift sample needs at least 1 row, not {rows}")
    return frame.sample(n=rows, random_state=seed).sort_index()


def drift_columns(
    reference: pd.DataFrame, current: pd.DataFrame, catalogue: Catalogue
) -> tuple[list[str], dict[str, str]]:
    """The catalogue's columns a drift test can compare, and why each other one is skipped: absent
    on a side, empty on a side, or one constant value on both (a test means nothing there)."""
    keep, skipped = [], {}
    for name in catalogue.names:
        if name not in reference.columns or name not in current.columns:
            skipped[name] = "absent from " + ("the reference" if name not in reference.columns else "the current data")
            continue
        ref, cur = reference[name].dropna(), current[name].dropna()
        if ref.empty or cur.empty:
            skipped[name] = "empty in " + ("the reference" if ref.empty else "the current data")
        elif ref.astype(str).nunique() == 1 and set(cur.astype(str).unique()) == set(ref.astype(str).unique()):
            skipped[name] = f"constant ({ref.iloc[0]}) on both sides"
        else:
            keep.append(name)
    return keep, skipped


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    catalogue: Catalogue,
    html_path: Path,
    sample: int | None = None,
    seed: int = 0,
) -> DriftResult:
    """Run Evidently's data-drift and data-summary presets on the catalogue's features (current against
    reference); empty and constant columns are skipped and listed. A side with more than ``sample``
    rows is compared through a seeded random sample of that many (``policy.DRIFT_SAMPLE_ROWS``); the
    result gives both counts."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    if reference.empty or current.empty:
        raise ValueError(f"drift needs rows on both sides: reference has {len(reference)}, current has {len(current)}")
    reference_rows, current_rows = len(reference), len(current)
    reference, current = sample_rows(reference, sample, seed), sample_rows(current, sample, seed)
    columns, skipped = drift_columns(reference, current, catalogue)
    if not columns:
        raise ValueError(f"no feature can be compared for drift: {skipped}")
    used = catalogue.select(columns)
    definition = DataDefinition(numerical_columns=list(used.numeric), categorical_columns=list(used.categorical))
    ref = Dataset.from_pandas(_prepare(reference[columns], used), data_definition=definition)
    cur = Dataset.from_pandas(_prepare(current[columns], used), data_definition=definition)
    snapshot = Report([DataDriftPreset(), DataSummaryPreset()]).run(cur, ref)
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html_path))

    share = count = None
    scores: dict[str, float] = {}
    methods: dict[str, str] = {}
    for metric in snapshot.dict()["metrics"]:
        kind = metric["config"].get("type", "")
        if kind.endswith("DriftedColumnsCount"):
            count, share = metric["value"]["count"], metric["value"]["share"]
        elif kind.endswith("ValueDrift"):
            column = metric["config"]["column"]
            scores[column] = float(metric["value"])
            methods[column] = str(metric["config"].get("method", ""))
    if share is None:
        raise RuntimeError("Evidently's report has no DriftedColumnsCount metric")
    return DriftResult(
        drift_share=float(share),
        drifted_columns=int(count),
        total_columns=len(columns),
        column_scores=scores,
        column_methods=methods,
        html_path=html_path,
        reference_rows=reference_rows,
        current_rows=current_rows,
        skipped=skipped,
        reference_rows_compared=len(reference),
        current_rows_compared=len(current),
    )


def _prepare(frame: pd.DataFrame, catalogue: Catalogue) -> pd.DataFrame:
    out = frame.copy()
    for col in catalogue.numeric:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    for col in catalogue.categorical:
        # An empty category (no running subscription, say) is a value of its own: Evidently's
        # category counts cannot hold a missing one.
        out[col] = out[col].astype(object).where(out[col].notna(), MISSING_CATEGORY).astype(str)
    return out


MISSING_CATEGORY = "(empty)"


@dataclasses.dataclass(frozen=True)
class PredictionDriftResult:
    score: float | None  # Evidently's drift score for churn_probability (a p-value for K-S)
    method: str
    threshold: float | None
    drifted: bool | None
    reference_rows: int
    current_rows: int
    reference_mean: float
    current_mean: float | None
    html_path: Path | None
    note: str


MIN_SERVED_ROWS = 30
"""Fewer served predictions than this give no drift verdict (the test would mean nothing)."""


def prediction_drift(reference: pd.Series, current: pd.Series, html_path: Path) -> PredictionDriftResult:
    """Evidently's value drift of the served churn probabilities (current) against the champion's
    probabilities on the holdout (reference)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataSummaryPreset

    reference = pd.to_numeric(reference, errors="coerce").dropna()
    current = pd.to_numeric(current, errors="coerce").dropna()
    base = {
        "reference_rows": len(reference),
        "current_rows": len(current),
        "reference_mean": float(reference.mean()) if len(reference) else float("nan"),
    }
    if len(current) < MIN_SERVED_ROWS:
        return PredictionDriftResult(
            None,
            "",
            None,
            None,
            **base,
            current_mean=float(current.mean()) if len(current) else None,
            html_path=None,
            note=f"{len(current)} served predictions: at least {MIN_SERVED_ROWS} are needed",
        )
    definition = DataDefinition(numerical_columns=["churn_probability"])
    ref = Dataset.from_pandas(pd.DataFrame({"churn_probability": reference.to_numpy()}), data_definition=definition)
    cur = Dataset.from_pandas(pd.DataFrame({"churn_probability": current.to_numpy()}), data_definition=definition)
    snapshot = Report([ValueDrift(column="churn_probability"), DataSummaryPreset()]).run(cur, ref)
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html_path))
    (drift,) = [m for m in snapshot.dict()["metrics"] if m["config"].get("type", "").endswith("ValueDrift")]
    score, method, threshold = (
        float(drift["value"]),
        str(drift["config"].get("method", "")),
        drift["config"].get("threshold"),
    )
    # p-value tests drift below the threshold; distances drift above it.
    drifted = None if threshold is None else (score < threshold if "p_value" in method else score > threshold)
    return PredictionDriftResult(
        score, method, threshold, drifted, **base, current_mean=float(current.mean()), html_path=html_path, note=""
    )
