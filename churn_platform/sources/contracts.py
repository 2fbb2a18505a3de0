"""Data contracts for the raw sources, and the split of a batch into accepted and quarantined rows.

A contract names each column's type, whether it may be empty, its allowed values
or lower bound, the source's key and its time column. ``apply_contract`` never
drops a row silently: every input row ends either in the accepted frame (typed
as the contract says) or in the quarantine frame with the reason, so that
``received == accepted + quarantined`` always holds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

QUARANTINE_REASON = "quarantine_reason"


@dataclasses.dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str  # "int", "float", "string", "date", "timestamp"
    nullable: bool = True
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Contract:
    source: str
    version: int
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...]
    time_column: str
    description: str = ""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


CONTRACTS: dict[str, Contract] = {
    "crm_customers": Contract(
        source="crm_customers",
        version=1,
        description="CRM accounts; one row per customer version (a change writes a new row with its updated_at).",
        key=("customer_id", "updated_at"),
        time_column="updated_at",
        columns=(
            ColumnSpec("customer_id", "int", nullable=False, minimum=1, description="The customer's key."),
            ColumnSpec("signup_date", "date", nullable=False, description="Day the customer signed up."),
            ColumnSpec("plan", "string", nullable=False, allowed=("basic", "pro", "enterprise")),
            ColumnSpec("contract_type", "string", nullable=False, allowed=("monthly", "annual")),
            ColumnSpec("region", "string", nullable=False, allowed=("na", "emea", "apac", "latam")),
            ColumnSpec("segment", "string", nullable=False, allowed=("smb", "mid_market", "enterprise")),
            ColumnSpec("seats", "int", nullable=False, minimum=1),
            ColumnSpec(
                "acquisition_channel",
                "string",
                nullable=False,
                allowed=("organic", "paid_search", "partner", "sales", "referral"),
            ),
            ColumnSpec("cancelled_at", "timestamp", description="When the customer cancelled; empty while active."),
            ColumnSpec("updated_at", "timestamp", nullable=False, description="When this version was written."),
        ),
    ),
    "usage_events": Contract(
        source="usage_events",
        version=1,
        description="Product usage per customer and day with at least one session.",
        key=("customer_id", "event_date"),
        time_column="event_date",
        columns=(
            ColumnSpec("customer_id", "int", nullable=False, minimum=1),
            ColumnSpec("event_date", "date", nullable=False),
            ColumnSpec("sessions", "int", nullable=False, minimum=0),
            ColumnSpec("minutes", "float", nullable=False, minimum=0),
            ColumnSpec("feature_uses", "int", nullable=False, minimum=0),
        ),
    ),
    "billing_invoices": Contract(
        source="billing_invoices",
        version=1,
        description="Monthly invoices and their payment status.",
        key=("invoice_id",),
        time_column="invoice_date",
        columns=(
            ColumnSpec("invoice_id", "int", nullable=False, minimum=1),
            ColumnSpec("customer_id", "int", nullable=False, minimum=1),
            ColumnSpec("invoice_date", "date", nullable=False),
            ColumnSpec("amount", "float", nullable=False, minimum=0),
            ColumnSpec("status", "string", nullable=False, allowed=("paid", "late", "failed", "open")),
            ColumnSpec("paid_at", "timestamp"),
        ),
    ),
    "support_tickets": Contract(
        source="support_tickets",
        version=1,
        description="Support tickets with resolution and satisfaction.",
        key=("ticket_id",),
        time_column="created_at",
        columns=(
            ColumnSpec("ticket_id", "int", nullable=False, minimum=1),
            ColumnSpec("customer_id", "int", nullable=False, minimum=1),
            ColumnSpec("created_at", "timestamp", nullable=False),
            ColumnSpec("resolved_at", "timestamp"),
            ColumnSpec(
                "category", "string", nullable=False, allowed=("billing", "bug", "how_to", "feature_request", "outage")
            ),
            ColumnSpec("priority", "string", nullable=False, allowed=("low", "medium", "high", "urgent")),
            ColumnSpec("satisfaction_score", "int", minimum=1),
        ),
    ),
}


@dataclasses.dataclass
class ContractResult:
    source: str
    accepted: pd.DataFrame
    quarantined: pd.DataFrame  # the offending rows as received (as text) plus QUARANTINE_REASON

    @property
    def received(self) -> int:
        return len(self.accepted) + len(self.quarantined)

    @property
    def quarantine_share(self) -> float:
        return len(self.quarantined) / self.received if self.received else 0.0

    def reasons(self) -> dict[str, int]:
        if self.quarantined.empty:
            return {}
        counts = self.quarantined[QUARANTINE_REASON].str.split(":").str[0].value_counts()
        return {str(k): int(v) for k, v in counts.items()}


class ContractError(ValueError):
    """The batch cannot be checked at all (for example a contract column is missing)."""


def _coerce(series: pd.Series, spec: ColumnSpec) -> pd.Series:
    if spec.type in ("int", "float"):
        out = pd.to_numeric(series, errors="coerce")
        return out.astype("float64")
    if spec.type in ("date", "timestamp"):
        if pd.api.types.is_datetime64_any_dtype(series):
            out = series
        else:
            out = pd.to_datetime(series, errors="coerce", format="mixed")
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_convert("UTC").dt.tz_localize(None)
        out = out.astype("datetime64[us]")
        return out.dt.normalize() if spec.type == "date" else out
    return series.astype("string").str.strip().str.lower()


def apply_contract(frame: pd.DataFrame, contract: Contract, now: dt.datetime | None = None) -> ContractResult:
    """Split ``frame`` into rows that satisfy ``contract`` and rows quarantined with the first reason found."""
    missing = [c for c in contract.column_names if c not in frame.columns]
    if missing:
        raise ContractError(f"{contract.source}: missing contract columns {', '.join(missing)}")
    frame = frame.reset_index(drop=True)
    now_ts = pd.Timestamp(now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    reason = pd.Series(pd.NA, index=frame.index, dtype="string")

    def flag(mask: pd.Series | np.ndarray, why: str) -> None:
        mask = pd.Series(mask, index=frame.index).fillna(False).astype(bool) & reason.isna()
        if mask.any():
            reason[mask] = why

    typed = pd.DataFrame(index=frame.index)
    for spec in contract.columns:
        raw = frame[spec.name]
        value = _coerce(raw, spec)
        typed[spec.name] = value
        raw_present = raw.notna() & (raw.astype("string").str.strip() != "")
        if spec.name in contract.key:
            flag(~raw_present, f"null_key: {spec.name} is empty")
        elif not spec.nullable:
            flag(~raw_present, f"null_value: {spec.name} is empty")
        flag(raw_present & value.isna(), f"wrong_type: {spec.name} is not a {spec.type}")
        if spec.type in ("int",):
            flag(value.notna() & (value != np.floor(value.fillna(0))), f"wrong_type: {spec.name} is not a whole number")
        if spec.minimum is not None:
            flag(value.notna() & (value < spec.minimum), f"out_of_range: {spec.name} below {spec.minimum:g}")
        if spec.allowed is not None:
            flag(value.notna() & ~value.isin(spec.allowed), f"unknown_category: {spec.name} not in {'/'.join(spec.allowed)}")
        if spec.type in ("date", "timestamp"):
            flag(value.notna() & (value > now_ts), f"future_timestamp: {spec.name} after {now_ts:%Y-%m-%d %H:%M}")

    # Duplicates of the key among otherwise valid rows: the first is kept.
    valid = reason.isna()
    dup = typed[valid].duplicated(list(contract.key), keep="first")
    flag(pd.Series(dup, index=typed.index[valid]).reindex(frame.index, fill_value=False), "duplicate_key: " + ", ".join(contract.key))

    accepted_mask = reason.isna()
    accepted = typed[accepted_mask].reset_index(drop=True)
    for spec in contract.columns:
        if spec.type == "int":
            accepted[spec.name] = accepted[spec.name].astype("Int64" if spec.nullable else "int64")
        elif spec.type == "string":
            accepted[spec.name] = accepted[spec.name].astype("object").where(accepted[spec.name].notna(), None)
    quarantined = frame[~accepted_mask].astype("string").reset_index(drop=True)
    quarantined[QUARANTINE_REASON] = reason[~accepted_mask].reset_index(drop=True)
    return ContractResult(source=contract.source, accepted=accepted, quarantined=quarantined)
