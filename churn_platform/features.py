"""The model's features: one definition shared by training, serving and monitoring.

The dbt mart ``customer_features`` computes these columns; training reads them
from ``training_set``; the serving request schema is built from the same list,
so the API and the model cannot disagree on names or types.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # "numeric" or "categorical"
    description: str
    categories: tuple[str, ...] = ()
    example: float | str = 0.0
    minimum: float | None = 0.0  # for numeric features; None when negative values are valid
    nullable: bool = False


FEATURES: tuple[Feature, ...] = (
    Feature("plan", "categorical", "Subscription plan.", ("basic", "pro", "enterprise"), "pro"),
    Feature("contract_type", "categorical", "Contract length.", ("monthly", "annual"), "monthly"),
    Feature("region", "categorical", "Sales region.", ("na", "emea", "apac", "latam"), "emea"),
    Feature("segment", "categorical", "Customer segment by seats.", ("smb", "mid_market", "enterprise"), "smb"),
    Feature(
        "acquisition_channel",
        "categorical",
        "How the customer was acquired.",
        ("organic", "paid_search", "partner", "sales", "referral"),
        "organic",
    ),
    Feature("seats", "numeric", "Licensed seats.", example=8),
    Feature("tenure_days", "numeric", "Days from signup to the snapshot.", example=420),
    Feature("mrr", "numeric", "Amount of the latest invoice before the snapshot.", example=320.0),
    Feature("sessions_7d", "numeric", "Sessions in the 7 days before the snapshot.", example=30),
    Feature("sessions_30d", "numeric", "Sessions in the 30 days before the snapshot.", example=120),
    Feature("sessions_90d", "numeric", "Sessions in the 90 days before the snapshot.", example=380),
    Feature("minutes_30d", "numeric", "Minutes of use in the 30 days before the snapshot.", example=1500.0),
    Feature("feature_uses_30d", "numeric", "Feature uses in the 30 days before the snapshot.", example=190),
    Feature(
        "sessions_trend",
        "numeric",
        "Sessions in the last 30 days divided by sessions in the 30 days before those (1 = flat).",
        example=0.95,
    ),
    Feature("days_since_last_activity", "numeric", "Days since the last day with a session.", example=1),
    Feature("failed_payments_90d", "numeric", "Failed invoices in the 90 days before the snapshot.", example=0),
    Feature("late_payments_90d", "numeric", "Late invoices in the 90 days before the snapshot.", example=0),
    Feature("tickets_90d", "numeric", "Support tickets opened in the 90 days before the snapshot.", example=1),
    Feature("open_tickets", "numeric", "Tickets open at the snapshot.", example=0),
    Feature(
        "avg_satisfaction_90d",
        "numeric",
        "Mean satisfaction score (1-5) of tickets resolved in the 90 days before the snapshot; empty when none.",
        example=4.0,
        minimum=1.0,
        nullable=True,
    ),
    Feature(
        "plan_changes_90d", "numeric", "Plan changes recorded in the CRM in the 90 days before the snapshot.", example=0
    ),
    Feature(
        "seat_change_90d",
        "numeric",
        "Net change in licensed seats over the 90 days before the snapshot (negative for a downgrade).",
        example=0,
        minimum=None,
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "categorical")
NUMERIC_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "numeric")

ID_COLUMN = "customer_id"
TIME_COLUMN = "snapshot_date"
LABEL_COLUMN = "churned_within_horizon"


def example_record() -> dict[str, float | str]:
    return {f.name: f.example for f in FEATURES}
