"""Train the platform's candidates on any customer feature table (``churn-platform train``).

The table is a Parquet or CSV file with one row per customer (or per customer and time,
with ``--time-column``), a label column and feature columns. Columns are typed from their
content: a column whose non-blank values are numbers (even when stored as text, with blanks
for missing values) is numeric; other text columns are categorical, compared after trimming
and lower-casing. Columns that cannot help (constant, empty, or a text column with a
distinct value on most rows, such as a name or an e-mail) are left out and reported.

The holdout is time-based when a time column is given (the latest fifth of the distinct
times is the test set, the fifth before it validation), stratified by label otherwise
(60% train, 20% validation, 20% test). The same candidates, early stopping, selection,
calibration and metrics as the platform's own model are used, and everything is logged to
MLflow as one parent run with a nested run per candidate.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

POSITIVE = {"1", "1.0", "true", "t", "yes", "y", "churned", "churn"}
NEGATIVE = {"0", "0.0", "false", "f", "no", "n", "retained", "active", "stayed"}
NUMERIC_SHARE = 0.95
"""A text column is numeric when at least this share of its non-blank values parse as numbers."""
ID_LIKE_SHARE = 0.5
"""A text column with distinct values on more than this share of rows is an identifier, not a feature."""
_DATE = r"(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{1,2}\s+[a-z]{3,9}\.?,?\s+\d{4}|[a-z]{3,9}\.?\s+\d{1,2},?\s+\d{4})"
_TIME = r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(z|[ap]\.?m\.?|utc|[+-]\d{2}:?\d{2})?"
DATE_OR_TIME = re.compile(rf"^({_DATE}([t\s]+{_TIME})?|{_TIME})$")
"""The usual written forms of a date, a date and time, or a time of day (lower-cased, trimmed)."""
DATE_REASON = "a date or time (derive features such as tenure from it first)"


class FeatureTableError(ValueError):
    """The table cannot be trained on; the message says why and what to change."""


@dataclasses.dataclass(frozen=True)
class PreparedTable:
    features: pd.DataFrame
    label: pd.Series
    times: pd.Series | None
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    dropped: dict[str, str]


def read_table(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FeatureTableError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt"):
        # Everything as text first: the typing below decides, the same way for CSV and Parquet.
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    raise FeatureTableError(f"{path.name}: expected a .parquet or .csv file")


def _blank_to_na(col: pd.Series) -> pd.Series:
    if col.dtype == object or pd.api.types.is_string_dtype(col):
        text = col.astype("string").str.strip()
        return text.mask(text.isin(["", "na", "n/a", "NA", "N/A", "null", "NULL", "None", "nan", "NaN"]))
    return col


def parse_label(raw: pd.Series, name: str, positive_label: str | None = None) -> pd.Series:
    values = _blank_to_na(raw)
    if values.isna().any():
        raise FeatureTableError(
            f"label column {name!r} has {int(values.isna().sum())} empty values; fill or drop those rows"
        )
    text = values.astype(str).str.strip().str.lower()
    distinct = sorted(text.unique())
    if len(distinct) < 2:
        raise FeatureTableError(f"label column {name!r} is constant ({distinct[0]!r}): there is nothing to learn")
    if len(distinct) > 2:
        raise FeatureTableError(
            f"label column {name!r} has {len(distinct)} distinct values ({', '.join(distinct[:5])}…); it must have two"
        )
    if positive_label is not None:
        positive = positive_label.strip().lower()
        if positive not in distinct:
            raise FeatureTableError(
                f"--positive-label {positive_label!r} is not a value of {name!r} ({', '.join(distinct)})"
            )
    else:
        known = [v for v in distinct if v in POSITIVE]
        if len(known) != 1 or not all(v in POSITIVE | NEGATIVE for v in distinct):
            raise FeatureTableError(
                f"cannot tell which value of {name!r} means churn ({', '.join(distinct)}); pass --positive-label"
            )
        positive = known[0]
    return (text == positive).astype(int).rename(name)


def prepare_table(
    df: pd.DataFrame,
    label: str,
    id_column: str,
    time_column: str | None = None,
    positive_label: str | None = None,
) -> PreparedTable:
    for role, col in (("label", label), ("id", id_column), ("time", time_column)):
        if col is not None and col not in df.columns:
            raise FeatureTableError(
                f"{role} column {col!r} is not in the table (columns: {', '.join(map(str, df.columns))})"
            )
    if df.empty:
        raise FeatureTableError("the table has no rows")
    y = parse_label(df[label], label, positive_label)
    times = None
    key = [id_column]
    if time_column is not None:
        times = pd.to_datetime(_blank_to_na(df[time_column]), errors="coerce")
        if times.isna().any():
            raise FeatureTableError(
                f"time column {time_column!r} has {int(times.isna().sum())} empty or unreadable values"
            )
        key.append(time_column)
    duplicated = df.duplicated(key, keep=False)
    if duplicated.any():
        example = df.loc[duplicated, key].iloc[0].tolist()
        raise FeatureTableError(
            f"{int(duplicated.sum())} rows share their {' and '.join(key)} with another row (for example {example}); "
            "each customer must appear once" + (" per time" if time_column else "")
        )
    numeric, categorical, dropped = [], [], {}
    features = {}
    for col in df.columns:
        if col in (label, id_column, time_column):
            continue
        values = _blank_to_na(df[col])
        name = str(col)
        if values.isna().all():
            dropped[name] = "empty"
            continue
        if pd.api.types.is_datetime64_any_dtype(values):
            dropped[name] = DATE_REASON
            continue
        if pd.api.types.is_bool_dtype(values):
            values = values.astype(float)
        if pd.api.types.is_numeric_dtype(values):
            parsed = pd.to_numeric(values, errors="coerce").astype(float)
        else:
            parsed = pd.to_numeric(values, errors="coerce")
            present = values.notna()
            if parsed[present].notna().mean() < NUMERIC_SHARE:
                parsed = None
        if parsed is not None:
            if parsed.nunique(dropna=True) < 2:
                dropped[name] = "constant"
                continue
            features[name] = parsed.astype(float)
            numeric.append(name)
            continue
        text = values.str.lower()
        if _is_date_or_time(text):
            dropped[name] = DATE_REASON
            continue
        distinct = text.nunique(dropna=True)
        if distinct < 2:
            dropped[name] = "constant"
        elif distinct > ID_LIKE_SHARE * len(text):
            dropped[name] = f"identifier-like text ({distinct:,} distinct values in {len(text):,} rows)"
        else:
            features[name] = text.astype(object).where(text.notna(), None)
            categorical.append(name)
    if not features:
        raise FeatureTableError(
            "no usable feature column: "
            + (
                ", ".join(f"{k} ({v})" for k, v in dropped.items())
                if dropped
                else "the table has only the id and label"
            )
        )
    return PreparedTable(
        features=pd.DataFrame(features, index=df.index),
        label=y,
        times=times,
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        dropped=dropped,
    )


def _is_date_or_time(text: pd.Series) -> bool:
    """Whether the non-blank values of a lower-cased text column are (nearly all) written dates or
    times that parse: ``2024-03-01``, ``03/15/2024 10:00``, ``1 Mar 2024``, ``2024-03-01T10:00:00Z``."""
    present = text.dropna()
    if present.empty:
        return False
    shaped = present.str.fullmatch(DATE_OR_TIME.pattern)
    if shaped.mean() < NUMERIC_SHARE:
        return False
    dates = present[shaped]
    dates = dates[~dates.str.fullmatch(_TIME)]
    if dates.empty:
        return True
    parsed = pd.to_datetime(dates, errors="coerce", format="mixed", utc=True)
    return bool(parsed.notna().mean() >= NUMERIC_SHARE)


def split_indices(table: PreparedTable, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Row positions of train, validation and test, and a description of the split."""
    n = len(table.label)
    if table.times is not None:
        distinct = np.sort(table.times.unique())
        if len(distinct) < 3:
            raise FeatureTableError(
                f"a time-based split needs at least 3 distinct times, the table has {len(distinct)}"
            )
        k = max(1, len(distinct) // 5)
        test_from, val_from = distinct[-k], distinct[-2 * k] if len(distinct) >= 2 * k + 1 else distinct[-k - 1]
        t = table.times.to_numpy()
        parts = (
            np.flatnonzero(t < val_from),
            np.flatnonzero((t >= val_from) & (t < test_from)),
            np.flatnonzero(t >= test_from),
        )
        how = f"time-based on {len(distinct)} distinct times: test from {pd.Timestamp(test_from).date()}, validation from {pd.Timestamp(val_from).date()}"
    else:
        from sklearn.model_selection import train_test_split

        positions = np.arange(n)
        if table.label.value_counts().min() < 5:
            raise FeatureTableError("each label value needs at least 5 rows for a stratified holdout")
        rest, test = train_test_split(positions, test_size=0.2, stratify=table.label, random_state=seed)
        train, val = train_test_split(rest, test_size=0.25, stratify=table.label.iloc[rest], random_state=seed)
        parts, how = (
            (np.sort(train), np.sort(val), np.sort(test)),
            "stratified by label: 60% train, 20% validation, 20% test",
        )
    for part, rows in zip(("train", "validation", "test"), parts):
        if table.label.iloc[rows].nunique() < 2:
            raise FeatureTableError(f"the {part} split has only one label value; more rows or more times are needed")
    return (*parts, how)


def train_table(
    path: Path,
    label: str,
    id_column: str,
    location,
    time_column: str | None = None,
    positive_label: str | None = None,
    seed: int = 7,
) -> dict:
    """Train, select, calibrate and evaluate on the table; log to MLflow; return the metrics report."""
    import mlflow

    from churn_platform.ml.training import calibrate_result, fit_candidates, select_best

    table = prepare_table(read_table(path), label, id_column, time_column, positive_label)
    train, val, test, how = split_indices(table, seed)
    x, y = table.features, table.label

    def rows(idx):
        return x.iloc[idx], y.iloc[idx]

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = rows(train), rows(val), rows(test)
    results = fit_candidates(
        x_train,
        y_train,
        x_val,
        y_val,
        x_test,
        y_test,
        seed,
        numeric_features=table.numeric,
        categorical_features=table.categorical,
    )
    best = select_best(results)
    selected = calibrate_result(best, x_val, y_val, x_test, y_test)

    location.activate()
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with mlflow.start_run(run_name=f"train-{Path(path).name}-{started}") as parent:
        mlflow.set_tags({"churn_platform.kind": "bring_your_own", "table": str(path), "split": how})
        mlflow.log_params({"label": label, "id_column": id_column, "time_column": time_column or "", "seed": seed})
        for result in [*results, selected]:
            run_name = result.name if result is not selected else f"{result.name} (selected, calibrated)"
            with mlflow.start_run(run_name=run_name, nested=True):
                mlflow.log_params({"candidate": result.name, **dict(result.params.items())})
                mlflow.log_metrics({f"validation_{k}": v for k, v in result.validation_metrics.items()})
                mlflow.log_metrics({f"test_{k}": v for k, v in result.test_metrics.items()})
    report = {
        "table": str(path),
        "rows": len(y),
        "positive_rate": float(y.mean()),
        "split": how,
        "split_rows": {"train": len(train), "validation": len(val), "test": len(test)},
        "features": {"numeric": list(table.numeric), "categorical": list(table.categorical), "dropped": table.dropped},
        "selected": best.name,
        "calibration": "sigmoid (Platt) on the validation split",
        "roc_auc": selected.test_metrics["roc_auc"],
        "test_metrics": selected.test_metrics,
        "candidates": {r.name: {"validation": r.validation_metrics, "test": r.test_metrics} for r in results},
        "mlflow_run_id": parent.info.run_id,
        "mlflow_tracking_uri": location.tracking_uri,
    }
    return json.loads(json.dumps(report, default=float))
