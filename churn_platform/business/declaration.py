"""The business, declared in one YAML file: which sources exist, where they are, which column
plays which role, the label rule, the snapshot cadence and the horizon.

Everything downstream follows from it: the sources' data contracts, the dbt feature models, the
feature catalogue (training, the API's request schema, drift, docs) and the run's policy. The
format is documented field by field in the models below (``churn-platform check --explain``
prints the same text) and in the README; ``load_declaration`` validates a file and names the
line and what to change for every mistake.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from churn_platform import policy

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
"""A name the platform gives a column or a feature: lower-case letters, digits and underscores,
starting with a letter, at most 40 characters (PostgreSQL keeps 63, and suffixes are added)."""

RESERVED = frozenset(
    {
        "customer_id",
        "snapshot_date",
        "source_data_as_of",
        "churned_within_horizon",
        "signup_at",
        "cancelled_at",
        "updated_at",
    }
)

Name = Annotated[str, Field(pattern=NAME.pattern, description="lower_snake_case, at most 40 characters")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Attribute(_Strict):
    """An account attribute that becomes a feature."""

    column: str | None = Field(None, description="The column in the accounts source (default: the attribute's name).")
    type: Literal["categorical", "numeric"] = Field(description="categorical (text values) or numeric.")
    values: tuple[str, ...] | None = Field(
        None,
        description="The allowed values of a categorical attribute. Without it any value is accepted, the values "
        "seen in training are recorded with the model and unseen ones are scored as unknown; with it an "
        "unknown value quarantines the row.",
    )
    minimum: float | None = Field(None, description="The lowest valid value of a numeric attribute.")
    required: bool = Field(False, description="Whether an empty value quarantines the row.")
    description: str | None = Field(None, description="What it means, for the docs and the API schema.")

    @model_validator(mode="after")
    def _fits_type(self) -> Attribute:
        if self.type == "numeric" and self.values is not None:
            raise ValueError("values apply to a categorical attribute; remove them or make it categorical")
        if self.type == "categorical" and self.minimum is not None:
            raise ValueError("minimum applies to a numeric attribute; remove it or make it numeric")
        if self.values is not None:
            object.__setattr__(self, "values", tuple(str(v).strip().lower() for v in self.values))
        return self


class AccountColumns(_Strict):
    customer_id: str = Field("customer_id", description="The customer's key.")
    signup_time: str = Field(description="When the customer signed up (a date or a time).")
    cancellation_time: str | None = Field(
        None, description="When the customer cancelled; empty while active. Needed when the label is taken from it."
    )
    version_time: str | None = Field(
        None,
        description="When this row was written, for a history of versions (one row per customer and version); "
        "without it each customer has one row and attribute changes are not features.",
    )


class Accounts(_Strict):
    """Who the customers are (required)."""

    location: str = Field(description="The file (name, with or without .parquet/.csv) or table that holds them.")
    columns: AccountColumns
    attributes: dict[Name, Attribute] = Field(
        default_factory=dict, description="Columns that become features, by the feature's name."
    )


class EventColumns(_Strict):
    customer_id: str = Field("customer_id", description="The customer's key.")
    time: str = Field(description="When the event happened (events shape) or the day (daily shape).")
    type: str | None = Field(None, description="The event's type (events shape); features are made per type.")
    value: str | None = Field(None, description="A number carried by the event (duration, amount), summed.")
    user: str | None = Field(None, description="The user within the customer, for distinct-user counts.")


class Measure(_Strict):
    column: str | None = Field(None, description="The column (default: the measure's name).")
    minimum: float | None = Field(0.0, description="The lowest valid value.")
    required: bool = Field(True, description="Whether an empty value quarantines the row.")
    description: str | None = Field(None, description="What one unit is, for the docs.")


class Events(_Strict):
    """Product usage (required): a raw event log, or one row per customer and day with measures."""

    location: str = Field(description="The file or table that holds them.")
    shape: Literal["events", "daily"] = Field(
        "events",
        description="events: one row per event (customer, time, type, optional value and user); "
        "daily: one row per customer and active day with numeric measures.",
    )
    columns: EventColumns
    measures: dict[Name, Measure] = Field(
        default_factory=dict, description="daily shape: the numeric columns, by the feature's stem."
    )
    event_types: tuple[str, ...] | None = Field(
        None,
        description="events shape: the types that get features of their own (others count in the totals). "
        "Default: the most frequent types in the data, up to features.max_event_types.",
    )

    @model_validator(mode="after")
    def _fits_shape(self) -> Events:
        if self.shape == "daily":
            if not self.measures:
                raise ValueError("the daily shape needs measures: the numeric columns of a customer's day")
            if self.columns.type or self.columns.user or self.columns.value:
                raise ValueError("columns type, value and user belong to the events shape; use measures for daily")
            if self.event_types is not None:
                raise ValueError("event_types belong to the events shape")
        elif self.measures:
            raise ValueError("measures belong to the daily shape; events carry columns type, value and user")
        if self.event_types is not None:
            object.__setattr__(self, "event_types", tuple(str(t).strip().lower() for t in self.event_types))
        return self


class SubscriptionColumns(_Strict):
    subscription_id: str | None = Field(None, description="The subscription's key (default: customer and start).")
    customer_id: str = Field("customer_id", description="The customer's key.")
    start_time: str = Field(description="When the subscription started.")
    end_time: str | None = Field(None, description="When it ended; empty while it runs.")
    mrr: str = Field(description="Monthly recurring revenue of the subscription, after discounts.")
    plan: str | None = Field(None, description="The plan or product.")
    quantity: str | None = Field(None, description="Seats or units.")
    billing_period: str | None = Field(None, description="monthly, annual, ... (categorical).")
    discount: str | None = Field(None, description="The discount, as a share (0.2) of the list price.")


class Subscriptions(_Strict):
    """Subscriptions (optional): revenue, plan and seat changes, contract length."""

    location: str
    columns: SubscriptionColumns


class InvoiceColumns(_Strict):
    invoice_id: str = Field("invoice_id", description="The invoice's key.")
    customer_id: str = Field("customer_id", description="The customer's key.")
    time: str = Field(description="When the invoice was issued.")
    amount: str = Field(description="The amount invoiced.")
    status: str | None = Field(None, description="The payment status (paid, failed, ...).")
    paid_time: str | None = Field(None, description="When it was paid; empty while unpaid.")


class Invoices(_Strict):
    """Invoices (optional): failed and late payments, and revenue when there are no subscriptions."""

    location: str
    columns: InvoiceColumns
    failed_statuses: tuple[str, ...] = Field(("failed",), description="Status values that mean a failed payment.")
    statuses: tuple[str, ...] | None = Field(None, description="The allowed status values (default: any).")
    payment_due_days: int = Field(7, ge=0, description="An invoice unpaid this many days after issue is late.")

    @model_validator(mode="after")
    def _lower(self) -> Invoices:
        object.__setattr__(self, "failed_statuses", tuple(s.strip().lower() for s in self.failed_statuses))
        if self.statuses is not None:
            object.__setattr__(self, "statuses", tuple(s.strip().lower() for s in self.statuses))
        return self


class TicketColumns(_Strict):
    ticket_id: str = Field("ticket_id", description="The ticket's key.")
    customer_id: str = Field("customer_id", description="The customer's key.")
    created_time: str = Field(description="When the ticket was opened.")
    resolved_time: str | None = Field(None, description="When it was resolved; empty while open.")
    satisfaction: str | None = Field(None, description="The customer's rating of the resolution (a number).")


class Tickets(_Strict):
    """Support tickets (optional): counts, open tickets, satisfaction."""

    location: str
    columns: TicketColumns


class ActionColumns(_Strict):
    action_id: str = Field("action_id", description="The contact's key.")
    customer_id: str = Field("customer_id", description="The customer's key.")
    time: str = Field(description="When the customer was contacted (or, in the control arm, would have been).")
    campaign: str = Field(description="The campaign the contact belongs to.")
    arm: str = Field(description="The arm: treated (contacted) or control (held out), in the business's words.")
    offer: str | None = Field(None, description="What was offered.")
    cost: str | None = Field(None, description="What the contact cost (0 in the control arm).")


TREATED, CONTROL = "treated", "control"
ARMS = (TREATED, CONTROL)
"""The platform's names for the two arms of a campaign (``stg_actions`` maps the business's onto them)."""


class Actions(_Strict):
    """Retention contacts (optional): who was offered what and when, treated or held out at random."""

    location: str
    columns: ActionColumns
    treated: tuple[str, ...] = Field(("treated",), description="Arm values that mean the customer was contacted.")
    control: tuple[str, ...] = Field(("control",), description="Arm values that mean the customer was held out.")

    @model_validator(mode="after")
    def _arms(self) -> Actions:
        treated = tuple(v.strip().lower() for v in self.treated)
        control = tuple(v.strip().lower() for v in self.control)
        if not treated or not control:
            raise ValueError("name at least one treated and one control arm value")
        if set(treated) & set(control):
            raise ValueError(f"an arm value cannot be both treated and control: {sorted(set(treated) & set(control))}")
        object.__setattr__(self, "treated", treated)
        object.__setattr__(self, "control", control)
        return self


class Sources(_Strict):
    accounts: Accounts
    events: Events
    subscriptions: Subscriptions | None = None
    invoices: Invoices | None = None
    tickets: Tickets | None = None
    actions: Actions | None = None


class Label(_Strict):
    """What churn means: a cancellation within ``horizon_days`` after each snapshot."""

    horizon_days: int = Field(30, ge=1, le=366, description="Days after a snapshot in which a cancellation counts.")
    cancellation: Literal["accounts", "subscriptions"] = Field(
        "accounts",
        description="accounts: the accounts' cancellation_time column; subscriptions: the end of a customer's "
        "last subscription, when no other runs after it.",
    )


class Snapshots(_Strict):
    """When customers are scored for training: the first day of every Nth month."""

    every_months: int = Field(1, ge=1, le=12, description="A snapshot every this many months.")
    history_days: int = Field(90, ge=1, description="The first snapshot comes after this much history.")


class FeatureOptions(_Strict):
    windows: tuple[int, ...] = Field((7, 30, 90), description="Look-back windows in days, for counts and sums.")
    trend_days: int = Field(30, ge=1, description="A trend compares the last this many days with the ones before.")
    max_event_types: int = Field(12, ge=1, le=50, description="At most this many event types get features.")
    event_aggregates: tuple[Literal["count", "value", "active_days", "users"], ...] = Field(
        ("count", "value", "active_days", "users"),
        description="events shape: what is computed per type and window (value and users need their columns).",
    )

    @field_validator("windows")
    @classmethod
    def _windows(cls, windows: tuple[int, ...]) -> tuple[int, ...]:
        if not windows or any(w < 1 or w > 366 for w in windows):
            raise ValueError("windows are whole days between 1 and 366, at least one")
        return tuple(sorted(set(windows)))

    @property
    def longest(self) -> int:
        return max(self.windows)


class Partitions(_Strict):
    """The daily partitions of the usage source. Default: the days of the data, read when the
    code location loads (``CHURN_PLATFORM_PARTITIONS_START`` / ``_END`` override both)."""

    start: dt.date | None = Field(None, description="The first day (default: the first day in the data).")
    end: dt.date | Literal["open"] | None = Field(
        None,
        description="The day after the last (default: the day after the last day in the data); open: a new "
        "partition every day, for a live feed.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Partitions:
        if self.start and isinstance(self.end, dt.date) and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must come after start ({self.start})")
        return self


class Policy(_Strict):
    """The thresholds of a run (``churn-platform run`` options override them)."""

    roc_auc_floor: float = Field(
        policy.ROC_AUC_FLOOR,
        ge=0.5,
        le=1.0,
        description="The lowest holdout ROC-AUC a model may be promoted with. A first model below it is "
        "registered but not promoted, and nothing is scored until one passes.",
    )
    gate_tolerance: float = Field(
        policy.GATE_TOLERANCE,
        ge=0.0,
        le=0.5,
        description="How much lower than the champion's ROC-AUC (on the same holdout) a new version's may be "
        "(with gate_metric empc: the share of the champion's EMPC a new version's may fall short of it).",
    )
    gate_metric: Literal["roc_auc", "empc"] = Field(
        "roc_auc",
        description="What the promotion gate compares a new version with the champion by, on the same holdout: "
        "roc_auc, or empc (the expected maximum profit of a retention campaign on its scores, valued by the "
        "retention section); the ROC-AUC floor holds either way.",
    )
    rollout: Literal["none", "shadow", "canary"] = Field(
        "none",
        description="none: a version that passes the gate becomes champion at once. shadow or canary: it becomes "
        "@rollout instead, the API serves it beside the champion in that mode, and online_comparison makes it "
        "champion once rollout_min_matured of its live scores have matured outcomes and its ROC-AUC on them is not "
        "worse than the champion's by more than gate_tolerance (or rolls it back if it is).",
    )
    rollout_share: float = Field(
        0.5, gt=0.0, le=1.0, description="shadow: the share of requests it scores; canary: of customers it answers."
    )
    rollout_min_matured: int = Field(
        200, ge=50, description="Live scores with matured outcomes a rollout needs before it is decided."
    )
    max_quarantine_share: float = Field(
        policy.MAX_QUARANTINE_SHARE,
        ge=0.0,
        le=1.0,
        description="The share of a source's rows that may be quarantined before its blocking check stops the run.",
    )


class Retention(_Strict):
    """How retention contacts are chosen (the ``retention_worklist``): by expected profit within a
    budget, with a random control arm."""

    contact_cost: float = Field(10.0, ge=0, description="What one contact costs: the offer and the team's time.")
    value_months: float = Field(
        12.0, gt=0, description="How many months of a customer's revenue keeping them is worth."
    )
    save_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        description="The share of would-be leavers a contact keeps, when targeting by risk (before an uplift model).",
    )
    max_contacts: int | None = Field(
        200, ge=1, description="The most customers a campaign selects (treated and control); empty: no limit."
    )
    max_spend: float | None = Field(
        None, gt=0, description="The most a campaign spends on its treated customers; empty: no limit."
    )
    control_share: float = Field(
        0.10, ge=0, lt=1, description="The share of selected customers held out as a control, by a hash of their key."
    )


class Declaration(_Strict):
    """A subscription business, as the platform sees it."""

    business: Name = Field(description="A short name for the business, shown in reports.")
    description: str = Field("", description="A sentence or two about it, for the docs.")
    customer_id_type: Literal["integer", "text"] = Field(
        "integer", description="integer or text: the type of the customer's key, end to end."
    )
    sources: Sources
    label: Label = Label()
    snapshots: Snapshots = Snapshots()
    features: FeatureOptions = FeatureOptions()
    partitions: Partitions = Partitions()
    policy: Policy = Policy()
    retention: Retention = Retention()

    @model_validator(mode="after")
    def _consistent(self) -> Declaration:
        accounts = self.sources.accounts
        if self.label.cancellation == "accounts" and not accounts.columns.cancellation_time:
            raise ValueError(
                "label.cancellation is accounts but sources.accounts.columns has no cancellation_time; "
                "name the column, or take cancellations from subscriptions"
            )
        if self.label.cancellation == "subscriptions" and self.sources.subscriptions is None:
            raise ValueError("label.cancellation is subscriptions but there is no sources.subscriptions")
        names = list(accounts.attributes) + list(self.sources.events.measures)
        clash = sorted(n for n in set(names) if names.count(n) > 1 or n in RESERVED)
        if clash:
            raise ValueError(f"attribute and measure names must be unique and not reserved: {', '.join(clash)}")
        return self

    @property
    def present(self) -> tuple[str, ...]:
        """The roles of the sources this business has, in loading order."""
        return tuple(role for role in SOURCE_ROLES if getattr(self.sources, role) is not None)

    def source(self, role: str):
        return getattr(self.sources, role)


SOURCE_ROLES: tuple[str, ...] = ("accounts", "events", "subscriptions", "invoices", "tickets", "actions")

PARTITIONED_ROLE = "events"
"""The source loaded day by day (usage); the other sources are small and reloaded whole."""
"""Every role a source can play; the Dagster asset and the raw table of each take its name."""


class DeclarationError(ValueError):
    """The declaration cannot be used; the message names the file, the line and what to change."""


def _locate(node: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """The YAML node at pydantic error location ``loc`` (or the deepest one that exists)."""
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == str(key)), None)
            if found is None:
                # A key that is missing or not allowed: point at the key itself when it exists.
                key_node = next((k for k, _ in node.value if k.value == str(key)), None)
                return key_node or node
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return node
    return node


def _explain(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
    kind, msg = err["type"], err["msg"]
    if kind == "missing":
        return f"{loc}: required, but missing"
    if kind == "extra_forbidden":
        return f"{loc}: not a known field here; check its spelling and its indentation"
    if kind == "literal_error":
        return f"{loc}: {msg} (got {err.get('input')!r})"
    if kind == "string_pattern_mismatch":
        return f"{loc}: {err.get('input')!r} is not a valid name: lower_snake_case, starting with a letter, at most 40 characters"
    text = msg.removeprefix("Value error, ")
    return f"{loc}: {text}" if loc else text


def parse_declaration(text: str, where: str = "<declaration>") -> Declaration:
    """Validate a declaration's YAML ``text``; ``where`` names it in messages."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise DeclarationError(f"{where}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise DeclarationError(f"{where}: expected a mapping with business, sources, ... at the top")
    try:
        return Declaration.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            node = _locate(root, tuple(p for p in err["loc"] if not str(p).startswith("function-after")))
            line = f"line {node.start_mark.line + 1}: " if node is not None else ""
            problems.append(f"  {line}{_explain(err)}")
        raise DeclarationError(
            f"{where}: {len(problems)} problem{'s' if len(problems) > 1 else ''}:\n" + "\n".join(problems)
        ) from None


def load_declaration(path: str | Path) -> Declaration:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DeclarationError(f"cannot read the declaration {path}: {exc.strerror}") from None
    return parse_declaration(text, str(path))
