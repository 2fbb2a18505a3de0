"""Feature drift between the training data and the latest features, with Evidently."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from churn_platform.features import CATEGORICAL_FEATURES, FEATURE_NAMES, NUMERIC_FEATURES


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


def feature_drift(reference: pd.DataFrame, current: pd.DataFrame, html_path: Path) -> DriftResult:
    """Run Evidently's data-drift preset on the model's features (current against reference)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    if reference.empty or current.empty:
        raise ValueError(
            f"drift needs rows on both sides: reference has {len(reference)}, current has {len(current)}"
        )
    columns = list(FEATURE_NAMES)
    definition = DataDefinition(
        numerical_columns=list(NUMERIC_FEATURES), categorical_columns=list(CATEGORICAL_FEATURES)
    )
    ref = Dataset.from_pandas(_prepare(reference[columns]), data_definition=definition)
    cur = Dataset.from_pandas(_prepare(current[columns]), data_definition=definition)
    snapshot = Report([DataDriftPreset()]).run(cur, ref)
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
        reference_rows=len(reference),
        current_rows=len(current),
    )


def _prepare(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in NUMERIC_FEATURES:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    for col in CATEGORICAL_FEATURES:
        out[col] = out[col].astype("string")
    return out
