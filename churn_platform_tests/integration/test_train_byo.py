"""`churn-platform train` on your own feature table: messy CSV and Parquet input, time-based and
stratified holdouts, and a clear error for each way a table cannot be trained on."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from churn_platform.ml.byo import FeatureTableError, prepare_table, split_indices
from churn_platform_tests.conftest import run_cli


def telco_like(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """A customer table the way exports come: Yes/No strings in any casing, numbers stored as
    text with blanks, an e-mail column, a constant column, a month column."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.5, 0.3, 0.2])
    tenure = rng.integers(1, 72, n)
    charges = rng.normal(70, 20, n).round(2)
    tickets = rng.poisson(1.0, n)
    risk = -2.0 + 1.8 * (contract == "Month-to-month") - 0.03 * tenure + 0.4 * tickets
    churned = rng.random(n) < 1 / (1 + np.exp(-risk))
    total = (charges * tenure).round(2).astype(str)
    total[rng.random(n) < 0.03] = " "  # blanks, as in the well-known telco export
    return pd.DataFrame(
        {
            "customerID": [f"C{i:05d}" for i in range(n)],
            "Contract": contract,
            "tenure": tenure,
            "MonthlyCharges": charges,
            "TotalCharges": total,
            "SupportTickets": tickets,
            "PaperlessBilling": rng.choice(["Yes", "No", "yes", "NO"], n),
            "email": [f"user{i}@example.com" for i in range(n)],
            "country": "nl",
            "month": pd.to_datetime("2025-01-01") + pd.to_timedelta(rng.integers(0, 6, n) * 31, unit="D"),
            "Churn": np.where(churned, rng.choice(["Yes", "yes", "YES"], n), rng.choice(["No", "no"], n)),
        }
    )


def test_prepare_types_the_columns_and_reports_what_it_leaves_out():
    df = telco_like().astype({"tenure": str})
    table = prepare_table(df, "Churn", "customerID")
    assert set(table.numeric) == {"tenure", "MonthlyCharges", "TotalCharges", "SupportTickets"}
    assert set(table.categorical) == {"Contract", "PaperlessBilling"}
    assert table.features["PaperlessBilling"].nunique() == 2  # casing folded
    assert table.features["TotalCharges"].isna().sum() > 0  # blanks are missing values, not text
    assert set(table.dropped) == {"email", "country", "month"}
    assert table.label.mean() == pytest.approx((df["Churn"].str.lower() == "yes").mean())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop(columns=["Churn"]), "label column 'Churn' is not in the table"),
        (lambda d: d.assign(Churn="No"), "constant"),
        (lambda d: pd.concat([d, d.head(2)]), "share their customerID"),
        (lambda d: d[["customerID", "email", "country", "Churn"]], "no usable feature column"),
        (lambda d: d.assign(Churn=np.where(d.index % 2, "gone", "here")), "pass --positive-label"),
        (lambda d: d.assign(Churn=d["Churn"].where(d.index > 0, "")), "empty values"),
    ],
)
def test_tables_that_cannot_be_trained_on_get_a_clear_error(change, message):
    with pytest.raises(FeatureTableError, match=message):
        prepare_table(change(telco_like()), "Churn", "customerID")


def test_time_split_holds_out_the_latest_times():
    table = prepare_table(telco_like(), "Churn", "customerID", time_column="month")
    train, val, test, how = split_indices(table, seed=1)
    times = table.times
    assert times.iloc[train].max() < times.iloc[val].min() <= times.iloc[val].max() < times.iloc[test].min()
    assert "time-based" in how


def test_train_command_on_csv_and_parquet(tmp_path):
    df = telco_like()
    csv = tmp_path / "customers.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "metrics.json"
    result = run_cli(
        "train",
        "--features",
        str(csv),
        "--label",
        "Churn",
        "--id-column",
        "customerID",
        "--output-json",
        str(out),
        "--home",
        str(tmp_path / "home"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert 0.7 < report["roc_auc"] <= 1.0
    assert set(report["candidates"]) == {"logistic_regression", "random_forest", "lightgbm"}
    assert report["split"].startswith("stratified")
    assert "roc_auc" in report["test_metrics"] and report["mlflow_run_id"]

    parquet = tmp_path / "customers.parquet"
    df.to_parquet(parquet)
    result = run_cli(
        "train",
        "--features",
        str(parquet),
        "--label",
        "Churn",
        "--id-column",
        "customerID",
        "--time-column",
        "month",
        "--output-json",
        str(out),
        "--home",
        str(tmp_path / "home"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["split"].startswith("time-based") and report["roc_auc"] > 0.65

    bad = run_cli(
        "train",
        "--features",
        str(parquet),
        "--label",
        "Nope",
        "--id-column",
        "customerID",
        "--output-json",
        str(out),
        "--home",
        str(tmp_path / "home"),
    )
    assert bad.returncode == 2 and "label column 'Nope' is not in the table" in bad.stderr


def test_text_dates_and_times_of_a_csv_are_left_out_like_parquet_dates(tmp_path):
    """A CSV export's signup and cancellation dates (blanks for customers still active, several
    written forms) and a login time are no categorical features: they are listed as dates."""
    df = telco_like(400)
    rng = np.random.default_rng(4)
    signup = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, len(df)), unit="D")
    df["signup"] = signup.strftime("%Y-%m-%d")
    cancelled = (signup + pd.Timedelta(days=90)).strftime("%m/%d/%Y %H:%M")
    df["cancelled_on"] = np.where(rng.random(len(df)) < 0.7, "", cancelled)
    df.loc[df.index[:5], "cancelled_on"] = ["1 Mar 2024", "Mar 2, 2024", "2024-03-03T10:00:00Z", "N/A", " "]
    df["last_login"] = rng.choice(["08:15", "17:40:05", "9:05 pm"], len(df))
    df["plan_name"] = rng.choice(["Basic 2024", "Pro", "Team"], len(df))  # a year in a name is no date
    csv = tmp_path / "messy.csv"
    df.drop(columns=["month"]).to_csv(csv, index=False)
    from churn_platform.ml.byo import DATE_REASON, read_table

    table = prepare_table(read_table(csv), "Churn", "customerID")
    assert {"signup", "cancelled_on", "last_login"} <= set(table.dropped)
    assert all(table.dropped[c] == DATE_REASON for c in ("signup", "cancelled_on", "last_login"))
    assert set(table.categorical) == {"Contract", "PaperlessBilling", "plan_name"}

    out = tmp_path / "metrics.json"
    result = run_cli(
        "train",
        "--features",
        str(csv),
        "--label",
        "Churn",
        "--id-column",
        "customerID",
        "--output-json",
        str(out),
        "--home",
        str(tmp_path / "home"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "signup" in result.stdout and "a date or time" in result.stdout, result.stdout
