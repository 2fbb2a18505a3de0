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
    """A column of a source as loaded: ``name`` is the platform's name for it (the raw table's
    column), ``source`` the business's own column it is read from (the same by default; None
    for an optional column the business does not have, loaded empty)."""

    name: str
    type: str  # "int", "float", "string" (a category: trimmed, lower-case), "text" (trimmed), "date", "timestamp"
    nullable: bool = True
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    description: str = ""
    source: str | None = dataclasses.field(default=None)
    declared_as: str = ""
    """Where the declaration names the column (for messages), e.g. ``sources.accounts.columns.signup_time``."""
    absent: bool = False
    """The business has no such column: it is loaded empty (NULL), with no rule."""
    checked: bool = True
    """False for a second name of a column another spec already checks (its rules are reported once)."""

    @property
    def label(self) -> str:
        """The column's name as the business knows it (in quarantine reasons)."""
        return self.source or self.name


@dataclasses.dataclass(frozen=True)
class Contract:
    source: str
    version: int
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...]
    time_column: str
    description: str = ""
    identity: tuple[str, ...] | None = None
    """The columns that identify a row (an empty one is ``null_key``); default: the key. The key of
    an event log is every column (an exact re-delivery is a duplicate), its identity the customer."""

    @property
    def identity_columns(self) -> tuple[str, ...]:
        return self.key if self.identity is None else self.identity

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def source_columns(self) -> tuple[str, ...]:
        """The business's columns the source must have (each once)."""
        return tuple(dict.fromkeys(c.label for c in self.columns if not c.absent))

    @property
    def renames(self) -> bool:
        return any(c.absent or c.label != c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _col(name, type_, source, declared_as, **kw) -> ColumnSpec:
    """A column read from ``source`` (None: the business does not have it; loaded empty)."""
    return ColumnSpec(name, type_, source=source, declared_as=declared_as, absent=source is None, **kw)


def contracts_for(declaration) -> dict[str, Contract]:
    """The data contract of each source a declared business has, by role (the raw table's name).

    Columns take the platform's standard names (``customer_id``, ``signup_at``, ``event_at``, ...)
    and are read from the business's own columns; optional columns the business lacks are loaded
    empty. Categories are free unless the declaration lists their values."""
    d = declaration
    s = d.sources
    key_type = "text" if d.customer_id_type == "text" else "int"
    out: dict[str, Contract] = {}

    def customer(role: str, source: str, key: bool = False) -> ColumnSpec:
        return _col(
            "customer_id",
            key_type,
            source,
            f"sources.{role}.columns.customer_id",
            nullable=False,
            description="The customer's key.",
        )

    a = s.accounts
    ac = a.columns
    columns = [
        customer("accounts", ac.customer_id),
        _col(
            "signup_at",
            "timestamp",
            ac.signup_time,
            "sources.accounts.columns.signup_time",
            nullable=False,
            description="When the customer signed up.",
        ),
        _col(
            "cancelled_at",
            "timestamp",
            ac.cancellation_time,
            "sources.accounts.columns.cancellation_time",
            description="When the customer cancelled; empty while active.",
        ),
        # Without a history each customer has one version, valid from signup (checked as signup_at).
        _col(
            "updated_at",
            "timestamp",
            ac.version_time or ac.signup_time,
            "sources.accounts.columns." + ("version_time" if ac.version_time else "signup_time"),
            nullable=False,
            description="When this version was written.",
            checked=bool(ac.version_time),
        ),
    ]
    for name, attr in a.attributes.items():
        where = f"sources.accounts.attributes.{name}"
        if attr.type == "categorical":
            columns.append(
                _col(
                    name,
                    "string",
                    attr.column or name,
                    where,
                    nullable=not attr.required,
                    allowed=attr.values,
                    description=attr.description or "",
                )
            )
        else:
            columns.append(
                _col(
                    name,
                    "float",
                    attr.column or name,
                    where,
                    nullable=not attr.required,
                    minimum=attr.minimum,
                    description=attr.description or "",
                )
            )
    out["accounts"] = Contract(
        source="accounts",
        version=2,
        columns=tuple(columns),
        key=("customer_id", "updated_at"),
        time_column="updated_at",
        description="Who the customers are: one row per customer"
        + (" and version (a change writes a new row)." if ac.version_time else "."),
    )

    e = s.events
    ec = e.columns
    if e.shape == "daily":
        columns = [
            customer("events", ec.customer_id),
            _col(
                "event_date",
                "date",
                ec.time,
                "sources.events.columns.time",
                nullable=False,
                description="The day of use.",
            ),
        ]
        for name, m in e.measures.items():
            columns.append(
                _col(
                    name,
                    "float",
                    m.column or name,
                    f"sources.events.measures.{name}",
                    nullable=not m.required,
                    minimum=m.minimum,
                    description=m.description or "",
                )
            )
        out["events"] = Contract(
            source="events",
            version=2,
            columns=tuple(columns),
            key=("customer_id", "event_date"),
            time_column="event_date",
            description="Product usage per customer and active day.",
        )
    else:
        columns = [
            customer("events", ec.customer_id),
            _col(
                "event_at",
                "timestamp",
                ec.time,
                "sources.events.columns.time",
                nullable=False,
                description="When the event happened.",
            ),
            _col(
                "event_type",
                "string",
                ec.type,
                "sources.events.columns.type",
                nullable=ec.type is None,
                description="The event's type.",
            ),
            _col("value", "float", ec.value, "sources.events.columns.value", description="A number the event carries."),
            _col(
                "user_id", "text", ec.user, "sources.events.columns.user", description="The user within the customer."
            ),
        ]
        # An exact re-delivery of an event is a duplicate; two users' events at the same time are not.
        key = tuple(c.name for c in columns if not c.absent)
        out["events"] = Contract(
            source="events",
            version=2,
            columns=tuple(columns),
            key=key,
            time_column="event_at",
            description="Product usage, one row per event.",
            identity=("customer_id",),
        )

    if s.subscriptions is not None:
        sc = s.subscriptions.columns
        w = "sources.subscriptions.columns."
        columns = [
            _col(
                "subscription_id",
                "text",
                sc.subscription_id,
                w + "subscription_id",
                nullable=sc.subscription_id is None,
            ),
            customer("subscriptions", sc.customer_id),
            _col("started_at", "timestamp", sc.start_time, w + "start_time", nullable=False),
            _col("ended_at", "timestamp", sc.end_time, w + "end_time"),
            _col("mrr", "float", sc.mrr, w + "mrr", nullable=False, minimum=0),
            _col("plan", "string", sc.plan, w + "plan"),
            _col("quantity", "float", sc.quantity, w + "quantity", minimum=0),
            _col("billing_period", "string", sc.billing_period, w + "billing_period"),
            _col("discount", "float", sc.discount, w + "discount", minimum=0),
        ]
        key = ("subscription_id",) if sc.subscription_id else ("customer_id", "started_at")
        out["subscriptions"] = Contract(
            source="subscriptions",
            version=2,
            columns=tuple(columns),
            key=key,
            time_column="started_at",
            description="Subscriptions: start, end, MRR, plan, quantity.",
        )

    if s.invoices is not None:
        ic = s.invoices.columns
        w = "sources.invoices.columns."
        columns = [
            _col("invoice_id", "text", ic.invoice_id, w + "invoice_id", nullable=False),
            customer("invoices", ic.customer_id),
            _col("issued_at", "timestamp", ic.time, w + "time", nullable=False),
            _col("amount", "float", ic.amount, w + "amount", nullable=False, minimum=0),
            _col("status", "string", ic.status, w + "status", nullable=ic.status is None, allowed=s.invoices.statuses),
            _col("paid_at", "timestamp", ic.paid_time, w + "paid_time"),
        ]
        out["invoices"] = Contract(
            source="invoices",
            version=2,
            columns=tuple(columns),
            key=("invoice_id",),
            time_column="issued_at",
            description="Invoices" + (" and their payment status." if ic.status else "."),
        )

    if s.tickets is not None:
        tc = s.tickets.columns
        w = "sources.tickets.columns."
        columns = [
            _col("ticket_id", "text", tc.ticket_id, w + "ticket_id", nullable=False),
            customer("tickets", tc.customer_id),
            _col("created_at", "timestamp", tc.created_time, w + "created_time", nullable=False),
            _col("resolved_at", "timestamp", tc.resolved_time, w + "resolved_time"),
            _col("satisfaction", "float", tc.satisfaction, w + "satisfaction", minimum=0),
        ]
        out["tickets"] = Contract(
            source="tickets",
            version=2,
            columns=tuple(columns),
            key=("ticket_id",),
            time_column="created_at",
            description="Support tickets with resolution and satisfaction.",
        )

    if s.actions is not None:
        xc = s.actions.columns
        w = "sources.actions.columns."
        columns = [
            _col("action_id", "text", xc.action_id, w + "action_id", nullable=False),
            customer("actions", xc.customer_id),
            _col("contacted_at", "timestamp", xc.time, w + "time", nullable=False),
            _col("campaign", "text", xc.campaign, w + "campaign", nullable=False),
            _col(
                "arm",
                "string",
                xc.arm,
                w + "arm",
                nullable=False,
                allowed=s.actions.treated + s.actions.control,
                description="The arm as the business names it; stg_actions maps it to treated or control.",
            ),
            _col("offer", "string", xc.offer, w + "offer"),
            _col("cost", "float", xc.cost, w + "cost", minimum=0),
        ]
        out["actions"] = Contract(
            source="actions",
            version=1,
            columns=tuple(columns),
            key=("action_id",),
            time_column="contacted_at",
            description="Retention contacts: who was offered what and when, treated or held out as a control.",
        )
    return out


@dataclasses.dataclass
class ContractResult:
    source: str
    accepted: pd.DataFrame
    quarantined: pd.DataFrame  # the offending rows as received (as text) plus QUARANTINE_REASON

    @property
    def received(self) -> int:
        return len(self.accepted) + len(self.quarantined)

    def reasons(self) -> dict[str, int]:
        if self.quarantined.empty:
            return {}
        counts = self.quarantined[QUARANTINE_REASON].str.split("; ").explode().str.split(":").str[0].value_counts()
        return {str(k): int(v) for k, v in counts.items()}


class ContractError(ValueError):
    """The batch cannot be checked at all (for example a contract column is missing)."""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


_NUMERIC_INPUTS = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
)


def contract_sql(contract: Contract, relation: str, now: dt.datetime, input_types: dict[str, str] | None = None) -> str:
    """A DuckDB query over ``relation`` (the platform's column names, and a ``__row`` column giving
    the input order) returning, per input row: ``__row``, the typed columns and
    ``quarantine_reason`` (NULL for an accepted row; every rule the row breaks otherwise, joined by
    ``; ``). ``input_types`` (column → DuckDB type) lets already-typed columns skip the text
    parsing that text input needs."""
    now_lit = f"timestamp {_lit(pd.Timestamp(now).strftime('%Y-%m-%d %H:%M:%S'))}"
    input_types = input_types or {}
    typed, raw, rules = [], [], []
    for spec in contract.columns:
        col = _q(spec.name)
        text = f"cast({col} as varchar)"
        in_type = input_types.get(spec.name, "VARCHAR").upper()
        is_text = in_type == "VARCHAR"
        presence = f"({col} is not null and trim({text}) <> '')" if is_text else f"({col} is not null)"
        raw.append(f"{presence} as {_q('__p_' + spec.name)}")
        present = _q("__p_" + spec.name)
        if spec.absent:
            value = {
                "int": "cast(null as bigint)",
                "float": "cast(null as double)",
                "date": "cast(null as date)",
                "timestamp": "cast(null as timestamp)",
            }.get(spec.type, "cast(null as varchar)")
            typed.append(f"{value} as {_q(spec.name)}")
            continue
        if spec.type in ("int", "float"):
            value = (
                f"cast({col} as double)" if in_type.startswith(_NUMERIC_INPUTS) else f"try_cast(trim({text}) as double)"
            )
        elif spec.type == "date":
            value = f"cast(try_cast({col} as timestamp) as date)"
        elif spec.type == "timestamp":
            value = f"try_cast({col} as timestamp)"
        elif spec.type == "text":
            value = f"nullif(trim({text}), '')"
        else:
            value = f"nullif(lower(trim({text})), '')"
        typed.append(f"{value} as {_q(spec.name)}")
        v = _q("__v_" + spec.name)
        label = spec.label
        if not spec.checked:
            continue
        if spec.name in contract.identity_columns and not spec.nullable:
            rules.append((f"not {present}", f"null_key: {label} is empty"))
        elif not spec.nullable:
            rules.append((f"not {present}", f"null_value: {label} is empty"))
        rules.append((f"{present} and {v} is null", f"wrong_type: {label} is not a {spec.type}"))
        if spec.type == "int":
            rules.append((f"{v} is not null and {v} <> floor({v})", f"wrong_type: {label} is not a whole number"))
        if spec.minimum is not None:
            rules.append(
                (f"{v} is not null and {v} < {spec.minimum!r}", f"out_of_range: {label} below {spec.minimum:g}")
            )
        if spec.allowed is not None:
            allowed = ", ".join(_lit(a) for a in spec.allowed)
            rules.append(
                (
                    f"{v} is not null and {v} not in ({allowed})",
                    f"unknown_category: {label} not in {'/'.join(spec.allowed)}",
                )
            )
        if spec.type in ("date", "timestamp"):
            rules.append(
                (
                    f"{v} is not null and cast({v} as timestamp) > {now_lit}",
                    f"future_timestamp: {label} after the load time ({pd.Timestamp(now):%Y-%m-%d} UTC)",
                )
            )
    values = ", ".join(f"{t.rsplit(' as ', 1)[0]} as {_q('__v_' + s.name)}" for t, s in zip(typed, contract.columns))
    every_reason = (
        "nullif(concat_ws('; ', "
        + ", ".join(f"case when {cond} then {_lit(why)} end" for cond, why in rules)
        + "), '')"
        if rules
        else "cast(null as varchar)"
    )
    key = ", ".join(_q("__v_" + k) for k in contract.key)
    key_aliases = ", ".join(f"{_q('__v_' + k)} as {_q('__d_' + k)}" for k in contract.key)
    # Null-safe: two rows that agree on every key column, empty ones included, are duplicates.
    key_join = " and ".join(f"{_q('__v_' + k)} is not distinct from {_q('__d_' + k)}" for k in contract.key)
    casts = []
    for spec in contract.columns:
        v = _q("__v_" + spec.name)
        cast = {"int": f"cast({v} as bigint)", "float": f"cast({v} as double)"}.get(spec.type, v)
        casts.append(f"{cast} as {_q(spec.name)}")
    return f"""
with typed as (
    select __row, {values}, {", ".join(raw)} from {relation}
),
checked as (
    select *, {every_reason} as __rule_reason from typed
),
-- Keys that more than one otherwise valid row has: the first row (in input order) is kept.
-- A grouped count and a join with the few duplicated keys, rather than a window over every row.
duplicated as (
    select {key_aliases}, min(__row) as __first_row
    from checked
    where __rule_reason is null
    group by {key}
    having count(*) > 1
)
select
    __row,
    {", ".join(casts)},
    coalesce(
        __rule_reason,
        case when __first_row is not null and __row <> __first_row
             then {_lit("duplicate_key: " + ", ".join(contract.column(k).label for k in contract.key))} end
    ) as {QUARANTINE_REASON}
from checked
left join duplicated on {key_join}
"""


@dataclasses.dataclass(frozen=True)
class ContractCounts:
    """``reasons`` counts the rows breaking each kind of rule (``unknown_category``, ...), ``rules``
    each rule with its column (``unknown_category: region not in na/emea``); a row breaking two
    rules counts in both, once in ``quarantined``."""

    source: str
    received: int
    accepted: int
    quarantined: int
    reasons: dict[str, int]
    rules: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def quarantine_share(self) -> float:
        return self.quarantined / self.received if self.received else 0.0


PARTITION_COLUMN = "partition_date"
OUTSIDE_PARTITIONS = "outside_partitions"


@dataclasses.dataclass(frozen=True)
class PartitionSlice:
    """The days ``[start, end)`` of a daily-partitioned source that one load covers, within
    all the partitions ``[first, last_end)`` (``last_end`` None: the partitions are open-ended).

    Every row belongs to exactly one partition, so that loading every partition loads every
    row once: a row dated inside the partitions belongs to its day; a row dated before the
    first partition belongs to the first; a row dated after the last partition, or with no
    readable date, belongs to the last. Rows outside the partitions are quarantined (reason
    ``outside_partitions``), never dropped. With open-ended partitions a later-dated row waits
    for its own day, and a row with no readable date belongs to the latest day loaded.
    """

    start: dt.date
    end: dt.date
    first: dt.date
    last_end: dt.date | None = None

    def __post_init__(self) -> None:
        if not self.first <= self.start < self.end:
            raise ValueError(
                f"partition slice [{self.start}, {self.end}) does not start within the partitions from {self.first}"
            )
        if self.last_end is not None and self.end > self.last_end:
            raise ValueError(
                f"partition slice [{self.start}, {self.end}) ends after the partitions' end {self.last_end}"
            )

    def assigned_day_sql(self, time_value_sql: str) -> str:
        """SQL for the partition day of a row whose parsed time is ``time_value_sql``."""
        day = f"cast({time_value_sql} as date)"
        last = self.last_end - dt.timedelta(days=1) if self.last_end else self.end - dt.timedelta(days=1)
        after = f"when {day} >= date {_lit(self.last_end)} then date {_lit(last)} " if self.last_end else ""
        return (
            f"case when {day} is null then date {_lit(last)} "
            f"when {day} < date {_lit(self.first)} then date {_lit(self.first)} {after}else {day} end"
        )


class MissingColumnsError(ValueError):
    """The source lacks columns its declaration names."""


def renamed_relation(con, contract: Contract, relation: str, where: str | None = None) -> str:
    """``relation`` with the business's columns under the platform's names (each declared column
    read once, possibly under two names), and ``__row``. Raises ``MissingColumnsError`` naming
    each missing column and the declaration field that names it."""
    have = {r[0] for r in con.execute(f"describe select * from {relation}").fetchall()}
    missing = [c for c in contract.columns if not c.absent and c.label not in have]
    if missing:
        listed = "; ".join(f"{c.label!r}" + (f" (named by {c.declared_as})" if c.declared_as else "") for c in missing)
        found = ", ".join(sorted(h for h in have if not h.startswith("__")))
        raise MissingColumnsError(
            f"{where or contract.source}: missing column{'s' if len(missing) > 1 else ''} {listed}. "
            f"It has: {found}. Correct the column names in the declaration or the export."
        )
    if not contract.renames:
        return relation
    select = ", ".join(f"{'null' if c.absent else _q(c.label)} as {_q(c.name)}" for c in contract.columns)
    return f"(select {select}, __row from {relation})"


def _time_value_sql(spec: ColumnSpec, input_type: str) -> str:
    col = _q(spec.name)
    if input_type.upper() in (
        "DATE",
        "TIMESTAMP",
        "TIMESTAMP_NS",
        "TIMESTAMP_MS",
        "TIMESTAMP_S",
        "TIMESTAMP WITH TIME ZONE",
    ):
        return f"cast({col} as timestamp)"
    return f"try_cast(trim(cast({col} as varchar)) as timestamp)"


def load_with_contract(
    con,
    contract: Contract,
    relation: str,
    accepted_table: str,
    quarantine_table: str,
    now: dt.datetime | None = None,
    partition: PartitionSlice | None = None,
) -> ContractCounts:
    """Check ``relation`` (with a ``__row`` column) against ``contract`` inside DuckDB and write the
    accepted rows (typed) and the quarantined rows (as received, as text, with the reason).

    Without ``partition`` both tables are replaced. With one, only the rows belonging to the
    slice's days are checked; the slice's days are deleted from both tables and written again
    (the quarantine table carries each row's ``partition_date``), so that loading a slice twice
    leaves the same rows, and loading every slice loads every row exactly once."""
    try:
        relation = renamed_relation(con, contract, relation)
    except MissingColumnsError as exc:
        raise ContractError(str(exc)) from None
    input_types = {r[0]: r[1] for r in con.execute(f"describe select * from {relation}").fetchall()}
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    cols = ", ".join(_q(c) for c in contract.column_names)
    raw_cols = ", ".join(f"cast(i.{_q(c)} as varchar) as {_q(c)}" for c in contract.column_names)
    if partition is None:
        con.execute(f"create or replace temp table __checked as {contract_sql(contract, relation, now, input_types)}")
        con.execute(
            f"create or replace table {accepted_table} as select {cols} from __checked where {QUARANTINE_REASON} is null order by __row"
        )
        # Quarantined rows keep what was received, as text, looked up by row number in the input.
        con.execute(
            f"create or replace table {quarantine_table} as select {raw_cols}, q.{QUARANTINE_REASON} "
            f"from (select __row, {QUARANTINE_REASON} from __checked where {QUARANTINE_REASON} is not null) as q "
            f"join {relation} as i on i.__row = q.__row order by q.__row"
        )
    else:
        time_spec = contract.column(contract.time_column)
        assigned = partition.assigned_day_sql(_time_value_sql(time_spec, input_types[time_spec.name]))
        in_slice = (
            f"{PARTITION_COLUMN} >= date {_lit(partition.start)} and {PARTITION_COLUMN} < date {_lit(partition.end)}"
        )
        # A subquery, not a copy: the input is scanned (and filtered on its time column) where it lies.
        slice_rel = f"(select * from (select *, {assigned} as {PARTITION_COLUMN} from {relation}) where {in_slice})"
        con.execute(f"create or replace temp table __checked as {contract_sql(contract, slice_rel, now, input_types)}")
        # A row the contract accepts but whose day lies outside the partitions is quarantined too.
        t = _q(time_spec.name)
        outside = f"(cast({t} as date) < date {_lit(partition.first)}"
        outside += f" or cast({t} as date) >= date {_lit(partition.last_end)})" if partition.last_end else ")"
        last = f"{partition.last_end - dt.timedelta(days=1)}" if partition.last_end else "open-ended"
        why = (
            f"{OUTSIDE_PARTITIONS}: {time_spec.label} outside the partitions ({partition.first} to {last}; "
            "partitions.start/end in the declaration, or CHURN_PLATFORM_PARTITIONS_START/_END, set them)"
        )
        con.execute(
            f"update __checked set {QUARANTINE_REASON} = {_lit(why)} where {QUARANTINE_REASON} is null and {outside}"
        )
        con.execute(f"create table if not exists {accepted_table} as select {cols} from __checked limit 0")
        con.execute(
            f"create table if not exists {quarantine_table} as select {raw_cols}, "
            f"cast(null as varchar) as {QUARANTINE_REASON}, cast(null as date) as {PARTITION_COLUMN} from {relation} as i limit 0"
        )
        con.execute("begin transaction")
        con.execute(
            f"delete from {accepted_table} where {t} >= date {_lit(partition.start)} and {t} < date {_lit(partition.end)}"
        )
        con.execute(f"delete from {quarantine_table} where {in_slice}")
        con.execute(
            f"insert into {accepted_table} select {cols} from __checked where {QUARANTINE_REASON} is null order by __row"
        )
        con.execute(
            f"insert into {quarantine_table} select {raw_cols}, q.{QUARANTINE_REASON}, i.{PARTITION_COLUMN} "
            f"from (select __row, {QUARANTINE_REASON} from __checked where {QUARANTINE_REASON} is not null) as q "
            f"join {slice_rel} as i on i.__row = q.__row order by q.__row"
        )
        con.execute("commit")
    received, quarantined = con.execute(f"select count(*), count({QUARANTINE_REASON}) from __checked").fetchone()
    rules = dict(
        con.execute(
            f"select r, count(*) from (select unnest(string_split({QUARANTINE_REASON}, '; ')) as r from __checked "
            f"where {QUARANTINE_REASON} is not null) group by r order by count(*) desc, r"
        ).fetchall()
    )
    reasons: dict[str, int] = {}
    for rule, n in rules.items():
        kind = rule.split(":", 1)[0]
        reasons[kind] = reasons.get(kind, 0) + int(n)
    con.execute("drop table __checked")
    return ContractCounts(
        contract.source,
        int(received),
        int(received - quarantined),
        int(quarantined),
        dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        {k: int(v) for k, v in rules.items()},
    )


def apply_contract(frame: pd.DataFrame, contract: Contract, now: dt.datetime | None = None) -> ContractResult:
    """Split ``frame`` into accepted rows (typed as the contract says) and quarantined rows with the reason."""
    import duckdb

    present = [c for c in contract.source_columns if c in frame.columns]
    with duckdb.connect() as con:
        con.register("__input_frame", frame.loc[:, present].assign(__row=np.arange(len(frame))))
        load_with_contract(con, contract, "__input_frame", "accepted", "quarantined", now=now)
        accepted = con.execute("select * from accepted").df()
        quarantined = con.execute("select * from quarantined").df()
    for spec in contract.columns:
        if spec.type == "int":
            accepted[spec.name] = accepted[spec.name].astype("Int64" if spec.nullable else "int64")
        elif spec.type in ("date", "timestamp"):
            accepted[spec.name] = pd.to_datetime(accepted[spec.name]).astype("datetime64[us]")
        elif spec.type in ("string", "text"):
            accepted[spec.name] = accepted[spec.name].astype("object").where(accepted[spec.name].notna(), None)
    quarantined = quarantined.astype("string")
    return ContractResult(source=contract.source, accepted=accepted, quarantined=quarantined)
