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

SOURCE_NAMES: tuple[str, ...] = tuple(CONTRACTS)
"""The raw sources the platform reads (one asset each), in this order."""


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
        counts = self.quarantined[QUARANTINE_REASON].str.split(":").str[0].value_counts()
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
    """A DuckDB query over ``relation`` (which has a ``__row`` column giving the input order)
    returning, per input row: ``__row``, the typed columns and ``quarantine_reason`` (NULL for an
    accepted row; the first rule broken otherwise). ``input_types`` (column → DuckDB type) lets
    already-typed columns skip the text parsing that text input needs."""
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
        if spec.type in ("int", "float"):
            value = (
                f"cast({col} as double)" if in_type.startswith(_NUMERIC_INPUTS) else f"try_cast(trim({text}) as double)"
            )
        elif spec.type == "date":
            value = f"cast(try_cast({col} as timestamp) as date)"
        elif spec.type == "timestamp":
            value = f"try_cast({col} as timestamp)"
        else:
            value = f"lower(trim({text}))"
        typed.append(f"{value} as {_q(spec.name)}")
        v = _q("__v_" + spec.name)
        if spec.name in contract.key:
            rules.append((f"not {present}", f"null_key: {spec.name} is empty"))
        elif not spec.nullable:
            rules.append((f"not {present}", f"null_value: {spec.name} is empty"))
        rules.append((f"{present} and {v} is null", f"wrong_type: {spec.name} is not a {spec.type}"))
        if spec.type == "int":
            rules.append((f"{v} is not null and {v} <> floor({v})", f"wrong_type: {spec.name} is not a whole number"))
        if spec.minimum is not None:
            rules.append(
                (f"{v} is not null and {v} < {spec.minimum!r}", f"out_of_range: {spec.name} below {spec.minimum:g}")
            )
        if spec.allowed is not None:
            allowed = ", ".join(_lit(a) for a in spec.allowed)
            rules.append(
                (
                    f"{v} is not null and {v} not in ({allowed})",
                    f"unknown_category: {spec.name} not in {'/'.join(spec.allowed)}",
                )
            )
        if spec.type in ("date", "timestamp"):
            rules.append(
                (
                    f"{v} is not null and cast({v} as timestamp) > {now_lit}",
                    f"future_timestamp: {spec.name} after the load time ({pd.Timestamp(now):%Y-%m-%d} UTC)",
                )
            )
    values = ", ".join(f"{t.rsplit(' as ', 1)[0]} as {_q('__v_' + s.name)}" for t, s in zip(typed, contract.columns))
    first_reason = "case " + " ".join(f"when {cond} then {_lit(why)}" for cond, why in rules) + " end"
    key = ", ".join(_q("__v_" + k) for k in contract.key)
    key_aliases = ", ".join(f"{_q('__v_' + k)} as {_q('__d_' + k)}" for k in contract.key)
    key_join = " and ".join(f"{_q('__v_' + k)} = {_q('__d_' + k)}" for k in contract.key)
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
    select *, {first_reason} as __rule_reason from typed
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
             then {_lit("duplicate_key: " + ", ".join(contract.key))} end
    ) as {QUARANTINE_REASON}
from checked
left join duplicated on {key_join}
"""


@dataclasses.dataclass(frozen=True)
class ContractCounts:
    source: str
    received: int
    accepted: int
    quarantined: int
    reasons: dict[str, int]

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
    input_types = {r[0]: r[1] for r in con.execute(f"describe select * from {relation}").fetchall()}
    missing = [c for c in contract.column_names if c not in input_types]
    if missing:
        raise ContractError(f"{contract.source}: missing contract columns {', '.join(missing)}")
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
        con.execute(
            f"update __checked set {QUARANTINE_REASON} = {_lit(OUTSIDE_PARTITIONS + ': ' + time_spec.name + ' outside the partitions')} "
            f"where {QUARANTINE_REASON} is null and {outside}"
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
    received = con.execute("select count(*) from __checked").fetchone()[0]
    reasons = dict(
        con.execute(
            f"select split_part({QUARANTINE_REASON}, ':', 1) as r, count(*) from __checked "
            f"where {QUARANTINE_REASON} is not null group by r order by count(*) desc, r"
        ).fetchall()
    )
    con.execute("drop table __checked")
    quarantined = int(sum(reasons.values()))
    return ContractCounts(
        contract.source,
        int(received),
        int(received - quarantined),
        quarantined,
        {k: int(v) for k, v in reasons.items()},
    )


def apply_contract(frame: pd.DataFrame, contract: Contract, now: dt.datetime | None = None) -> ContractResult:
    """Split ``frame`` into accepted rows (typed as the contract says) and quarantined rows with the reason."""
    import duckdb

    missing = [c for c in contract.column_names if c not in frame.columns]
    if missing:
        raise ContractError(f"{contract.source}: missing contract columns {', '.join(missing)}")
    with duckdb.connect() as con:
        con.register("__input_frame", frame.loc[:, list(contract.column_names)].assign(__row=np.arange(len(frame))))
        load_with_contract(con, contract, "__input_frame", "accepted", "quarantined", now=now)
        accepted = con.execute("select * from accepted").df()
        quarantined = con.execute("select * from quarantined").df()
    for spec in contract.columns:
        if spec.type == "int":
            accepted[spec.name] = accepted[spec.name].astype("Int64" if spec.nullable else "int64")
        elif spec.type in ("date", "timestamp"):
            accepted[spec.name] = pd.to_datetime(accepted[spec.name]).astype("datetime64[us]")
        elif spec.type == "string":
            accepted[spec.name] = accepted[spec.name].astype("object").where(accepted[spec.name].notna(), None)
    quarantined = quarantined.astype("string")
    return ContractResult(source=contract.source, accepted=accepted, quarantined=quarantined)
