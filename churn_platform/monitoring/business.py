"""Business health: the monthly churn rate, MRR churn and net revenue retention, charted."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; the chart is written as a file

import matplotlib.pyplot as plt
import pandas as pd

REQUIRED = ("month", "is_complete_month", "churn_rate", "mrr_churn_rate", "net_revenue_retention", "customers_at_start")


def business_chart(frame: pd.DataFrame, path: Path) -> bytes:
    """Draw churn rate and MRR churn (left axis) and NRR (right axis) by month; write a PNG and return it."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"business_metrics_monthly lacks columns {missing}")
    data = frame.sort_values("month")
    months = pd.to_datetime(data["month"])
    fig, left = plt.subplots(figsize=(8, 4.2), dpi=100)
    left.plot(months, data["churn_rate"] * 100, marker="o", label="customer churn rate")
    left.plot(months, data["mrr_churn_rate"] * 100, marker="s", label="MRR churn rate")
    left.set_ylabel("% of the month's starting base")
    left.grid(alpha=0.3)
    right = left.twinx()
    right.plot(
        months, data["net_revenue_retention"] * 100, color="tab:green", marker="^", label="net revenue retention"
    )
    right.axhline(100, color="tab:green", linestyle=":", linewidth=1)
    right.set_ylabel("net revenue retention, %")
    partial = data[~data["is_complete_month"].astype(bool)]
    for month in pd.to_datetime(partial["month"]):
        left.axvspan(month - pd.Timedelta(days=14), month + pd.Timedelta(days=14), color="grey", alpha=0.15)
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    labels = left.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    left.legend(handles, labels, loc="upper left", fontsize=8)
    left.set_title("Monthly churn and revenue retention (shaded: partial month)")
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    png = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return png


def latest_complete(frame: pd.DataFrame) -> pd.Series | None:
    complete = frame[frame["is_complete_month"].astype(bool)].sort_values("month")
    return None if complete.empty else complete.iloc[-1]


def markdown_table(frame: pd.DataFrame) -> str:
    rows = ["| month | customers | churned | churn rate | MRR churn | NRR |", "|---|---|---|---|---|---|"]
    for _, r in frame.sort_values("month").iterrows():
        partial = "" if bool(r["is_complete_month"]) else " (partial)"
        rows.append(
            f"| {pd.Timestamp(r['month']).date()}{partial} | {int(r['customers_at_start']):,} | {int(r['churned_customers']):,} "
            f"| {r['churn_rate']:.1%} | {r['mrr_churn_rate']:.1%} | {r['net_revenue_retention']:.1%} |"
        )
    return "\n".join(rows)


def inline_png(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
