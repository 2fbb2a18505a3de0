"""Checks of the served predictions against what the model was trained on."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd

from churn_platform.business.catalogue import Catalogue


@dataclasses.dataclass(frozen=True)
class SchemaComparison:
    missing: list[str]  # training features the log lacks
    type_mismatches: dict[str, str]  # column -> "logged <kind>, trained <kind>"
    unseen_categories: dict[str, dict[str, int]]  # column -> value -> served rows

    @property
    def matches(self) -> bool:
        return not (self.missing or self.type_mismatches)


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    return "text"


def compare_schema(served: pd.DataFrame, training: pd.DataFrame, catalogue: Catalogue) -> SchemaComparison:
    """Compare the served feature columns with the catalogue the served model was trained on (and the
    training set's values): names, kinds (numeric or text) and categories never seen in training
    (scored as unknown, and listed)."""
    missing = [c for c in catalogue.names if c not in served.columns] if len(served) else []
    mismatches = {}
    for c in catalogue.names:
        if c in served.columns and c in training.columns and len(served):
            expected = "numeric" if c in catalogue.numeric else "text"
            got = _kind(served[c].dropna()) if served[c].notna().any() else expected
            if got != expected:
                mismatches[c] = f"logged {got}, trained {expected}"
    unseen: dict[str, dict[str, int]] = {}
    for c in catalogue.categorical:
        if c in served.columns and c in training.columns:
            known = set(training[c].dropna().astype(str))
            counts = served[c].dropna().astype(str).value_counts()
            new = {v: int(n) for v, n in counts.items() if v not in known}
            if new:
                unseen[c] = new
    return SchemaComparison(missing, mismatches, unseen)


def staleness(served: pd.DataFrame, now: dt.datetime, max_age_hours: float) -> tuple[bool, str, dict]:
    """Whether the log is fresh: a prediction logged within ``max_age_hours`` of ``now``."""
    if served.empty:
        return (
            False,
            "no prediction has been logged yet: is the prediction API running and writing its log?",
            {"rows": 0},
        )
    latest = pd.to_datetime(served["logged_at"], utc=True).max()
    age_h = (pd.Timestamp(now) - latest).total_seconds() / 3600
    meta = {"latest_prediction": latest.isoformat(), "age_hours": round(age_h, 2), "max_age_hours": max_age_hours}
    if age_h > max_age_hours:
        return False, f"the latest prediction is {age_h:.1f} h old, over {max_age_hours:g} h", meta
    return True, f"the latest prediction is {age_h:.1f} h old", meta
