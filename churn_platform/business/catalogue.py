"""The feature catalogue: every feature a declared business gets, with its type and its meaning.

It is derived once, here, from the declaration (and, for an event log without declared types, the
event types found in the data). The dbt models compute exactly these columns (the catalogue goes
to dbt as a variable and its macros render one expression per entry); training records the
catalogue with the model; the API's request schema, the drift report, the prediction log and the
docs read it from there. No other list of features exists.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from typing import Any

from churn_platform.business.declaration import Declaration

ID_COLUMN = "customer_id"
TIME_COLUMN = "snapshot_date"
LABEL_COLUMN = "churned_within_horizon"
AS_OF_COLUMN = "source_data_as_of"


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # "numeric" or "categorical"
    description: str
    role: str  # the source role it comes from
    agg: str  # what the dbt macros compute (see dbt_project/macros/features.sql)
    params: tuple[tuple[str, Any], ...] = ()
    categories: tuple[str, ...] = ()  # declared vocabulary (empty: taken from the data)
    example: float | str = 0.0
    minimum: float | None = 0.0  # None when negative values are valid
    nullable: bool = False
    monotone: int = 0  # +1: more of it never lowers the risk (imposed on the tree models)

    def param(self, key: str, default: Any = None) -> Any:
        return dict(self.params).get(key, default)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "role": self.role,
            "agg": self.agg,
            "params": dict(self.params),
            "categories": list(self.categories),
            "example": self.example,
            "minimum": self.minimum,
            "nullable": self.nullable,
            "monotone": self.monotone,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Feature:
        return cls(
            name=d["name"],
            kind=d["kind"],
            description=d["description"],
            role=d["role"],
            agg=d["agg"],
            params=tuple(sorted(d.get("params", {}).items())),
            categories=tuple(d.get("categories", ())),
            example=d.get("example", 0.0),
            minimum=d.get("minimum", 0.0),
            nullable=d.get("nullable", False),
            monotone=int(d.get("monotone", 0)),
        )


@dataclasses.dataclass(frozen=True)
class Catalogue:
    """An ordered set of features (names unique)."""

    features: tuple[Feature, ...]

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature names must be unique: {', '.join(dupes)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.kind == "numeric")

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.kind == "categorical")

    def __getitem__(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def get(self, name: str, default: Feature | None = None) -> Feature | None:
        return next((f for f in self.features if f.name == name), default)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __len__(self) -> int:
        return len(self.features)

    @property
    def monotone(self) -> dict[str, int]:
        return {f.name: f.monotone for f in self.features if f.monotone}

    def example_record(self) -> dict[str, float | str]:
        return {f.name: f.example for f in self.features}

    def with_examples_from(self, frame) -> Catalogue:
        """This catalogue with each categorical feature that has no declared values given the most
        frequent value of ``frame`` as its example (what the API's documentation shows)."""
        features = []
        for f in self.features:
            if f.kind == "categorical" and not f.categories and f.name in frame:
                modes = frame[f.name].dropna().astype(str).mode()
                if len(modes):
                    f = dataclasses.replace(f, example=str(modes.iloc[0]))
            features.append(f)
        return Catalogue(tuple(features))

    def select(self, names: Iterable[str]) -> Catalogue:
        """The features named, in the catalogue's order."""
        wanted = set(names)
        return Catalogue(tuple(f for f in self.features if f.name in wanted))

    def as_records(self) -> list[dict[str, Any]]:
        return [f.as_dict() for f in self.features]

    @classmethod
    def from_records(cls, records: Sequence[dict[str, Any]]) -> Catalogue:
        return cls(tuple(Feature.from_dict(r) for r in records))


def slug(value: str) -> str:
    """A feature-name stem for an event type: lower_snake_case, at most 24 characters."""
    text = re.sub(r"[^a-z0-9]+", "_", str(value).strip().lower()).strip("_")
    if not text or not text[0].isalpha():
        text = f"t_{text}"
    return text[:24].rstrip("_")


def _days(w: int) -> str:
    return f"{w} day" if w == 1 else f"{w} days"


def build_catalogue(
    declaration: Declaration, event_types: Sequence[str] = (), valued_types: Sequence[str] | None = None
) -> Catalogue:
    """Every feature of ``declaration``; ``event_types`` are the types of an event log (declared
    ones take precedence) that get features of their own, and ``valued_types`` those whose events
    carry a value (None: all of them), which alone get value sums."""
    d = declaration
    windows = d.features.windows
    longest = d.features.longest
    trend = d.features.trend_days
    out: list[Feature] = []

    def add(name, kind, description, role, agg, **params):
        extra = {k: params.pop(k) for k in ("categories", "example", "minimum", "nullable", "monotone") if k in params}
        out.append(Feature(name, kind, description, role, agg, tuple(sorted(params.items())), **extra))

    # Accounts: the attributes in force at the snapshot, tenure, and changes.
    accounts = d.sources.accounts
    for name, attr in accounts.attributes.items():
        described = attr.description or f"The account's {name.replace('_', ' ')}."
        if attr.type == "categorical":
            values = attr.values or ()
            add(
                name,
                "categorical",
                described,
                "accounts",
                "attribute",
                column=name,
                categories=values,
                example=values[0] if values else "",
                minimum=None,
                nullable=not attr.required,
            )
        else:
            add(
                name,
                "numeric",
                described,
                "accounts",
                "attribute",
                column=name,
                example=max(attr.minimum or 0.0, 1.0),
                minimum=attr.minimum,
                nullable=not attr.required,
            )
    add("tenure_days", "numeric", "Days from signup to the snapshot.", "accounts", "tenure", example=365)
    if accounts.columns.version_time:
        for name, attr in accounts.attributes.items():
            if attr.type == "categorical":
                add(
                    f"{name}_changes_{longest}d",
                    "numeric",
                    f"Changes of {name.replace('_', ' ')} recorded in the {_days(longest)} before the snapshot.",
                    "accounts",
                    "attribute_changes",
                    column=name,
                    window=longest,
                )
            else:
                add(
                    f"{name}_change_{longest}d",
                    "numeric",
                    f"Net change in {name.replace('_', ' ')} over the {_days(longest)} before the snapshot "
                    "(negative for a decrease).",
                    "accounts",
                    "attribute_change",
                    column=name,
                    window=longest,
                    minimum=None,
                )

    # Usage.
    events = d.sources.events
    if events.shape == "daily":
        for m, spec in events.measures.items():
            what = spec.description or m.replace("_", " ")
            for w in windows:
                add(
                    f"{m}_{w}d",
                    "numeric",
                    f"Sum of {what} in the {_days(w)} before the snapshot.",
                    "events",
                    "measure_sum",
                    column=m,
                    window=w,
                    example=float(w),
                )
            add(
                f"{m}_trend",
                "numeric",
                f"Sum of {what} in the last {_days(trend)} divided by the sum in the {_days(trend)} before those "
                "(each plus one; 1 = flat).",
                "events",
                "measure_trend",
                column=m,
                window=trend,
                example=1.0,
            )
        for w in windows:
            add(
                f"active_days_{w}d",
                "numeric",
                f"Days with any usage in the {_days(w)} before the snapshot.",
                "events",
                "active_days",
                window=w,
                example=float(min(w, 5)),
            )
        add(
            "days_since_last_activity",
            "numeric",
            f"Days since the last day with usage ({longest + 1} when none in the {_days(longest)} before).",
            "events",
            "recency",
            window=longest,
            example=1,
            monotone=1,
        )
    else:
        types = list(events.event_types or event_types)[: d.features.max_event_types]
        aggs = [
            a
            for a in d.features.event_aggregates
            if not (a == "value" and not events.columns.value) and not (a == "users" and not events.columns.user)
        ]
        seen: set[str] = set()
        for t in types:
            stem = slug(t)
            while stem in seen:
                stem = f"{stem}_x"
            seen.add(stem)
            for w in windows:
                for a in aggs:
                    if a == "value" and valued_types is not None and t not in valued_types:
                        continue
                    name, text = {
                        "count": (f"{stem}_events_{w}d", f"'{t}' events in the {_days(w)} before the snapshot."),
                        "value": (
                            f"{stem}_value_{w}d",
                            f"Sum of the values of '{t}' events in the {_days(w)} before the snapshot.",
                        ),
                        "active_days": (
                            f"{stem}_active_days_{w}d",
                            f"Days with a '{t}' event in the {_days(w)} before the snapshot.",
                        ),
                        "users": (
                            f"{stem}_users_{w}d",
                            f"Distinct users with a '{t}' event in the {_days(w)} before the snapshot.",
                        ),
                    }[a]
                    add(name, "numeric", text, "events", f"type_{a}", event_type=t, window=w, example=float(min(w, 3)))
            add(
                f"{stem}_trend",
                "numeric",
                f"'{t}' events in the last {_days(trend)} divided by those in the {_days(trend)} before (each plus one).",
                "events",
                "type_trend",
                event_type=t,
                window=trend,
                example=1.0,
            )
            add(
                f"{stem}_days_since",
                "numeric",
                f"Days since the last '{t}' event ({longest + 1} when none in the {_days(longest)} before).",
                "events",
                "type_recency",
                event_type=t,
                window=longest,
                example=3,
            )
        for w in windows:
            for a in aggs:
                name, text = {
                    "count": (f"events_{w}d", f"Events of every type in the {_days(w)} before the snapshot."),
                    "value": (f"event_value_{w}d", f"Sum of event values in the {_days(w)} before the snapshot."),
                    "active_days": (f"active_days_{w}d", f"Days with any event in the {_days(w)} before the snapshot."),
                    "users": (f"users_{w}d", f"Distinct users in the {_days(w)} before the snapshot."),
                }[a]
                add(name, "numeric", text, "events", f"total_{a}", window=w, example=float(min(w, 10)))
        add(
            "events_trend",
            "numeric",
            f"Events in the last {_days(trend)} divided by those in the {_days(trend)} before (each plus one).",
            "events",
            "total_trend",
            window=trend,
            example=1.0,
        )
        add(
            "days_since_last_activity",
            "numeric",
            f"Days since the last event ({longest + 1} when none in the {_days(longest)} before).",
            "events",
            "recency",
            window=longest,
            example=1,
            monotone=1,
        )

    # Subscriptions.
    subs = d.sources.subscriptions
    if subs is not None:
        c = subs.columns
        add(
            "mrr",
            "numeric",
            "Monthly recurring revenue of the subscriptions running at the snapshot.",
            "subscriptions",
            "sub_mrr",
            example=50.0,
        )
        add(
            f"mrr_change_{longest}d",
            "numeric",
            f"MRR at the snapshot minus MRR {_days(longest)} before (negative for a contraction).",
            "subscriptions",
            "sub_mrr_change",
            window=longest,
            minimum=None,
        )
        add(
            "active_subscriptions",
            "numeric",
            "Subscriptions running at the snapshot.",
            "subscriptions",
            "sub_active",
            example=1,
        )
        add(
            f"subscription_changes_{longest}d",
            "numeric",
            f"Subscriptions started or ended in the {_days(longest)} before the snapshot (plan changes, "
            "renewals, add-ons).",
            "subscriptions",
            "sub_changes",
            window=longest,
        )
        add(
            "subscribed_days",
            "numeric",
            "Days since the customer's first subscription started.",
            "subscriptions",
            "sub_tenure",
            example=200,
        )
        add(
            "current_subscription_days",
            "numeric",
            "Days since the current subscription started.",
            "subscriptions",
            "sub_current_days",
            example=60,
        )
        if c.plan:
            add(
                "subscription_plan",
                "categorical",
                "Plan or product of the largest running subscription.",
                "subscriptions",
                "sub_latest",
                column="plan",
                example="",
                minimum=None,
                nullable=True,
            )
        if c.billing_period:
            add(
                "billing_period",
                "categorical",
                "Billing period of the largest running subscription.",
                "subscriptions",
                "sub_latest",
                column="billing_period",
                example="",
                minimum=None,
                nullable=True,
            )
        if c.quantity:
            add(
                "quantity",
                "numeric",
                "Seats or units of the subscriptions running at the snapshot.",
                "subscriptions",
                "sub_quantity",
                example=1,
            )
            add(
                f"quantity_change_{longest}d",
                "numeric",
                f"Seats or units at the snapshot minus {_days(longest)} before.",
                "subscriptions",
                "sub_quantity_change",
                window=longest,
                minimum=None,
            )
        if c.discount:
            add(
                "discount",
                "numeric",
                "MRR-weighted discount (a share of list price) of the running subscriptions.",
                "subscriptions",
                "sub_discount",
                example=0.0,
            )

    # Invoices.
    inv = d.sources.invoices
    if inv is not None:
        if subs is None:
            add(
                "mrr",
                "numeric",
                "Amount of the latest invoice before the snapshot.",
                "invoices",
                "invoice_latest",
                example=100.0,
            )
        add(
            f"invoices_{longest}d",
            "numeric",
            f"Invoices issued in the {_days(longest)} before the snapshot.",
            "invoices",
            "invoice_count",
            window=longest,
            example=3,
        )
        if inv.columns.status:
            add(
                f"failed_payments_{longest}d",
                "numeric",
                f"Invoices whose payment failed in the {_days(longest)} before the snapshot.",
                "invoices",
                "invoice_failed",
                window=longest,
                monotone=1,
            )
        if inv.columns.paid_time:
            add(
                f"late_payments_{longest}d",
                "numeric",
                f"Invoices of the {_days(longest)} before the snapshot still unpaid {_days(inv.payment_due_days)} "
                "after issue (as known at the snapshot).",
                "invoices",
                "invoice_late",
                window=longest,
            )

    # Tickets.
    tickets = d.sources.tickets
    if tickets is not None:
        add(
            f"tickets_{longest}d",
            "numeric",
            f"Support tickets opened in the {_days(longest)} before the snapshot.",
            "tickets",
            "ticket_count",
            window=longest,
            example=1,
        )
        if tickets.columns.resolved_time:
            add("open_tickets", "numeric", "Tickets open at the snapshot.", "tickets", "ticket_open")
        if tickets.columns.satisfaction and tickets.columns.resolved_time:
            add(
                f"avg_satisfaction_{longest}d",
                "numeric",
                f"Mean satisfaction score of tickets resolved in the {_days(longest)} before the snapshot; "
                "empty when none.",
                "tickets",
                "ticket_satisfaction",
                window=longest,
                example=4.0,
                minimum=None,
                nullable=True,
            )
    return Catalogue(tuple(out))


EVENT_TYPES_SQL = (
    "select event_type, count(value) > 0 as valued from raw.events where event_type is not null "
    "group by event_type order by count(*) desc, event_type"
)
"""The event types of the loaded usage (``raw.events``), most frequent first (ties by name), and
whether their events carry a value: what ``event_types_from`` reads."""


def event_types_from(declaration: Declaration, found: Sequence[tuple[str, bool]]) -> tuple[list[str], list[str] | None]:
    """The event types that get features of their own (the declared ones, else the most frequent
    of ``found``, the rows of ``EVENT_TYPES_SQL``, up to ``features.max_event_types``) and those
    whose events carry a value (None: not known, all of them)."""
    events = declaration.sources.events
    if events.shape != "events" or not events.columns.type:
        return list(events.event_types or ()), None
    valued = [str(t) for t, has_value in found if has_value]
    if events.event_types is not None:
        return list(events.event_types), valued
    return [str(t) for t, _ in found][: declaration.features.max_event_types], valued


def catalogue_from_table(declaration: Declaration, specs: Sequence[dict[str, Any]]) -> Catalogue:
    """The full catalogue of a dbt build from its compact entries (``marts.feature_catalogue``, in
    order): the declaration's features for the event types the build had."""
    types = list(dict.fromkeys(s["event_type"] for s in specs if s.get("agg") == "type_count" or "event_type" in s))
    valued = list(dict.fromkeys(s["event_type"] for s in specs if s.get("agg") == "type_value"))
    full = build_catalogue(declaration, types, valued)
    names = [s["name"] for s in specs]
    missing = [n for n in names if n not in full]
    if missing:
        raise ValueError(
            f"the warehouse's feature catalogue has features the declaration of {declaration.business} does not give: "
            f"{', '.join(missing[:10])}; rebuild the dbt models with this declaration"
        )
    return Catalogue(tuple(full[n] for n in names))


def dbt_vars(declaration: Declaration, catalogue: Catalogue, usage_begin: str | None = None) -> dict[str, Any]:
    """What the dbt models need to know of the business (``dbt --vars``): the sources present and
    their optional columns, the label rule, the snapshot cadence and the catalogue to compute."""
    d = declaration
    s = d.sources
    events = s.events
    look_back = max(d.features.longest, 2 * d.features.trend_days)
    business: dict[str, Any] = {
        "business": d.business,
        "id_type": d.customer_id_type,
        "sources": list(d.present),
        "label_horizon_days": d.label.horizon_days,
        "cancellation": d.label.cancellation,
        "snapshot_interval_months": d.snapshots.every_months,
        "first_snapshot_offset_days": d.snapshots.history_days,
        "look_back_days": look_back,
        "events_shape": events.shape,
        "measures": list(events.measures),
        "has_versions": bool(s.accounts.columns.version_time),
        "tracked_attributes": [
            f.param("column") for f in catalogue.features if f.agg in ("attribute_changes", "attribute_change")
        ],
        "attributes": list(s.accounts.attributes),
        # Compact: what the SQL needs (the rest of each entry is the declaration's, rebuilt by
        # ``catalogue_from_table``); a long catalogue must still fit one command-line argument.
        "features": [
            {"name": f.name, "kind": f.kind, "role": f.role, "agg": f.agg, **dict(f.params)} for f in catalogue.features
        ],
    }
    if s.invoices is not None:
        business["failed_statuses"] = list(s.invoices.failed_statuses)
        business["payment_due_days"] = s.invoices.payment_due_days
    if s.actions is not None:
        business["treated_arms"] = list(s.actions.treated)
    if usage_begin:
        business["usage_begin"] = usage_begin
    return {"churn": business}
