"""Two helpers for a new business: ``churn-platform init`` inspects a folder of exports (or an S3
prefix, or PostgreSQL tables) and writes a commented declaration for the user to check;
``churn-platform check`` validates a declaration against its sources in seconds, without running
the pipeline: what would be quarantined and why, which features will exist, how many snapshots
get labels and whether that is enough to train."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

import duckdb

from churn_platform.business.catalogue import EVENT_TYPES_SQL, build_catalogue, event_types_from
from churn_platform.business.declaration import Declaration
from churn_platform.sources.contracts import MissingColumnsError, contracts_for, load_with_contract, renamed_relation

PROFILE_ROWS = 200_000
"""Rows read to profile a table for ``init`` (enough to see its types and vocabularies)."""
CHECK_ROWS = 2_000_000
"""Rows per source that ``check`` puts through the contract (the whole source when smaller)."""
MAX_CATEGORIES = 50
"""A text column with at most this many values (and a value shared by several rows) is a category."""
MIN_MATURE_SNAPSHOTS = 3
MIN_CHURNERS = 10


# ---- profiling ---------------------------------------------------------------------------------


@dataclasses.dataclass
class ColumnProfile:
    name: str
    kind: str  # "time", "numeric", "categorical", "text"
    distinct: int
    nulls: int
    values: list[str]  # the most frequent values of a categorical column
    day_only: bool = False  # a time column whose values are whole days


@dataclasses.dataclass
class TableProfile:
    location: str
    rows: int
    columns: list[ColumnProfile]

    def column(self, name: str) -> ColumnProfile | None:
        return next((c for c in self.columns if c.name == name), None)

    def of_kind(self, *kinds: str) -> list[ColumnProfile]:
        return [c for c in self.columns if c.kind in kinds]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def profile_table(source, location: str, rows: int = PROFILE_ROWS) -> TableProfile:
    """Each column's kind (time, numeric, categorical or free text), distinct values and blanks,
    from the first ``rows`` rows of the source at ``location``."""
    with duckdb.connect() as con:
        relation = source.register(con, location)
        con.execute(f"create temp table sample as select * exclude (__row) from {relation} limit {int(rows)}")
        total = con.execute(f"select count(*) from {relation}").fetchone()[0]
        described = con.execute("describe sample").fetchall()
        n = con.execute("select count(*) from sample").fetchone()[0]
        columns = []
        for name, sql_type, *_ in described:
            col = _q(name)
            text = f"nullif(trim(cast({col} as varchar)), '')"
            nulls, distinct = con.execute(
                f"select count(*) - count({text}), count(distinct {text}) from sample"
            ).fetchone()
            present = max(n - nulls, 1)
            upper = sql_type.upper()
            if upper.startswith(("DATE", "TIMESTAMP")):
                kind = "time"
            elif upper.startswith(
                ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "U")
            ):
                kind = "numeric"
            else:
                numbers, times = con.execute(
                    f"select count(try_cast({text} as double)), count(try_cast({text} as timestamp)) from sample"
                ).fetchone()
                if numbers >= 0.95 * present and present > 0 and nulls < n:
                    kind = "numeric"
                elif times >= 0.95 * present and present > 0 and nulls < n:
                    kind = "time"
                elif distinct <= MAX_CATEGORIES and distinct < 0.5 * present:
                    kind = "categorical"
                else:
                    kind = "text"
            day_only = False
            if kind == "time":
                day_only = con.execute(
                    f"select count(*) = count(*) filter (where cast(try_cast({text} as timestamp) as time) = time '00:00:00') "
                    f"from sample where {text} is not null"
                ).fetchone()[0]
            values = []
            if kind == "categorical":
                values = [
                    str(v)
                    for (v,) in con.execute(
                        f"select lower({text}) as v from sample where {text} is not null group by v order by count(*) desc, v limit {MAX_CATEGORIES}"
                    ).fetchall()
                ]
            columns.append(ColumnProfile(name, kind, int(distinct), int(nulls), values, bool(day_only)))
    return TableProfile(location, int(total), columns)


# ---- guessing the declaration --------------------------------------------------------------------

ROLE_WORDS = {
    "accounts": (
        "customer",
        "customers",
        "account",
        "accounts",
        "user",
        "users",
        "client",
        "clients",
        "member",
        "members",
        "crm",
        "subscriber",
        "subscribers",
        "company",
        "companies",
    ),
    "subscriptions": (
        "subscription",
        "subscriptions",
        "contract",
        "contracts",
        "membership",
        "memberships",
        "plan",
        "plans",
        "licence",
        "license",
        "licenses",
    ),
    "invoices": (
        "invoice",
        "invoices",
        "payment",
        "payments",
        "billing",
        "bills",
        "charge",
        "charges",
        "transaction",
        "transactions",
        "receipt",
        "receipts",
    ),
    "tickets": ("ticket", "tickets", "support", "case", "cases", "complaint", "complaints", "helpdesk", "zendesk"),
    "actions": (
        "action",
        "actions",
        "campaign",
        "campaigns",
        "contact",
        "contacts",
        "offer",
        "offers",
        "outreach",
        "retention",
        "treatment",
        "treatments",
        "intervention",
        "interventions",
    ),
    "events": (
        "event",
        "events",
        "usage",
        "activity",
        "activities",
        "log",
        "logs",
        "session",
        "sessions",
        "track",
        "tracking",
        "clickstream",
        "analytics",
        "app",
    ),
}


TREATED_WORDS = ("treat", "contact", "offer", "sent", "variant", "test", "target")
CONTROL_WORDS = ("control", "holdout", "hold", "baseline", "untreated", "excluded")


def _guess_actions(table: TableProfile, customer: str, notes: dict[tuple, str], problems: list[str]) -> dict[str, Any]:
    """The actions role: when, which campaign, which arm (and its treated and control values), what
    offer at what cost."""
    times = table.of_kind("time")
    when = _pick(times, "contact", "sent", "send", "offer", "action", "time", "date") or (times[0] if times else None)
    labels = [c for c in table.columns if c.kind in ("categorical", "text") and c.name != customer]
    arm = _pick(labels, "arm", "group", "variant", "treatment", "cohort", "bucket")
    campaign = _pick(labels, "campaign", "wave", "programme", "program", exclude={arm.name} if arm else set())
    offer = _pick(
        labels, "offer", "incentive", "promo", "discount", "coupon", exclude={c.name for c in (arm, campaign) if c}
    )
    cost = _pick(table.of_kind("numeric"), "cost", "spend", "price", "amount")
    action_id = _pick(
        [c for c in table.columns if c.name not in {customer, *(c.name for c in (arm, campaign, offer) if c)}],
        "action",
        "send",
        "contact",
        "ref",
        "id",
    )
    columns = {
        "action_id": action_id.name if action_id else "TODO_action_id_column",
        "customer_id": customer,
        "time": when.name if when else "TODO_contact_time_column",
        "campaign": campaign.name if campaign else "TODO_campaign_column",
        "arm": arm.name if arm else "TODO_arm_column",
    }
    if offer:
        columns["offer"] = offer.name
    if cost:
        columns["cost"] = cost.name
    entry: dict[str, Any] = {"location": table.location, "columns": columns}
    values = arm.values if arm else []
    control = [v for v in values if _has(v, *CONTROL_WORDS)]
    treated = [v for v in values if v not in control and _has(v, *TREATED_WORDS)]
    if values and treated and control and len(treated) + len(control) == len(values):
        entry["treated"], entry["control"] = treated, control
    elif values:
        problems.append(
            f"{table.location}: which of the arm values ({', '.join(values)}) mean treated and which control? "
            "List them under sources.actions.treated and sources.actions.control"
        )
    else:
        notes[("sources", "actions", "treated")] = "no arm values were seen: list the treated and control values"
    return entry


def _tokens(name: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", name.lower())) - {""}


def _has(name: str, *words: str) -> bool:
    tokens = _tokens(name)
    return any(w in tokens or any(t.startswith(w) for t in tokens) for w in words)


def _pick(columns: list[ColumnProfile], *words: str, exclude: set[str] = frozenset()) -> ColumnProfile | None:  # type: ignore[assignment]
    return next((c for c in columns if c.name not in exclude and _has(c.name, *words)), None)


@dataclasses.dataclass
class Guess:
    declaration: dict[str, Any]
    notes: dict[tuple, str]  # path in the declaration → a comment for the user
    problems: list[str]


def guess_declaration(profiles: list[TableProfile], business: str = "my_business") -> Guess:
    """A declaration for the tables profiled: roles guessed from the tables' names and columns,
    column roles from their names and kinds, attributes from the accounts' other columns."""
    notes: dict[tuple, str] = {}
    problems: list[str] = []
    by_role: dict[str, TableProfile] = {}
    left = sorted(profiles, key=lambda p: p.location)
    for role in ("accounts", "subscriptions", "invoices", "tickets", "actions", "events"):
        match = next((p for p in left if _has(Path(p.location).stem, *ROLE_WORDS[role])), None)
        if match is None and role == "events" and left:
            match = max(left, key=lambda p: p.rows)  # the largest table left is usually the usage
            notes[("sources", "events", "location")] = "guessed: the largest table not otherwise recognised"
        if match is not None:
            by_role[role] = match
            left.remove(match)
    for extra in left:
        problems.append(f"{extra.location}: not recognised as any source role; declare it by hand if it matters")
    if "accounts" not in by_role:
        problems.append("no table looks like the accounts (customers, users, accounts, ...): declare sources.accounts")
    if "events" not in by_role:
        problems.append("no table looks like usage (events, activity, usage, ...): declare sources.events")

    def id_column(table: TableProfile, prefer: str | None = None) -> ColumnProfile | None:
        if prefer and table.column(prefer):
            return table.column(prefer)
        candidates = [
            c for c in table.columns if _has(c.name, "id", "key", "ref", "uuid") or c.name.endswith(("id", "key"))
        ]
        for words in (("customer", "account", "user", "client", "member", "subscriber", "company"), ()):
            found = next((c for c in candidates if not words or _has(c.name, *words)), None)
            if found:
                return found
        return None

    sources: dict[str, Any] = {}
    customer_key = None
    id_type = "integer"
    accounts = by_role.get("accounts")
    if accounts is not None:
        key = id_column(accounts)
        times = accounts.of_kind("time")
        signup = _pick(times, "signup", "signed", "created", "registered", "joined", "start", "since") or (
            times[0] if times else None
        )
        cancel = _pick(
            times,
            "cancel",
            "churn",
            "closed",
            "ended",
            "end",
            "deleted",
            "terminated",
            exclude={signup.name} if signup else set(),
        )
        version = _pick(
            times,
            "updated",
            "modified",
            "version",
            "valid",
            "snapshot",
            "changed",
            exclude={c.name for c in (signup, cancel) if c},
        )
        customer_key = key.name if key else None
        if key is not None and key.kind != "numeric":
            id_type = "text"
        columns: dict[str, Any] = {"customer_id": customer_key or "TODO_customer_id_column"}
        columns["signup_time"] = signup.name if signup else "TODO_signup_time_column"
        if cancel:
            columns["cancellation_time"] = cancel.name
        if version and key is not None and key.distinct < accounts.rows:
            columns["version_time"] = version.name
        attributes: dict[str, Any] = {}
        used = set(columns.values())
        for c in accounts.columns:
            if c.name in used or c.kind in ("time", "text"):
                if c.kind == "text" and c.name not in used:
                    notes[("sources", "accounts", "attributes")] = (
                        f"left out: free-text or identifier columns ({', '.join(x.name for x in accounts.of_kind('text') if x.name not in used)})"
                    )
                continue
            attr_name = re.sub(r"[^a-z0-9_]+", "_", c.name.lower()).strip("_") or "attribute"
            if not attr_name[0].isalpha():
                attr_name = f"a_{attr_name}"
            spec: dict[str, Any] = {"type": "categorical" if c.kind == "categorical" else "numeric"}
            if attr_name != c.name:
                spec["column"] = c.name
            attributes[attr_name[:40]] = spec
            if c.kind == "categorical":
                shown = ", ".join(c.values[:8]) + (", ..." if len(c.values) > 8 else "")
                notes[("sources", "accounts", "attributes", attr_name[:40])] = f"{len(c.values)} values: {shown}"
        sources["accounts"] = {"location": accounts.location, "columns": columns, "attributes": attributes}
        notes[("sources", "accounts", "location")] = f"{accounts.rows:,} rows"
        if key is None:
            problems.append(
                f"{accounts.location}: no customer id column recognised: set sources.accounts.columns.customer_id"
            )
        if signup is None:
            problems.append(f"{accounts.location}: no signup time recognised: set sources.accounts.columns.signup_time")

    def customer_in(table: TableProfile) -> str:
        found = id_column(table, customer_key)
        return found.name if found else "TODO_customer_id_column"

    events = by_role.get("events")
    if events is not None:
        times = events.of_kind("time")
        when = _pick(times, "time", "ts", "timestamp", "date", "at", "day", "occurred", "created") or (
            times[0] if times else None
        )
        customer = customer_in(events)
        type_col = _pick(events.of_kind("categorical"), "event", "type", "name", "action", "kind")
        columns = {"customer_id": customer, "time": when.name if when else "TODO_time_column"}
        numeric = [c for c in events.of_kind("numeric") if c.name != customer]
        if type_col is not None or not (when and when.day_only and numeric):
            user = _pick(
                [c for c in events.columns if c.name not in (customer, type_col.name if type_col else None)],
                "user",
                "profile",
                "device",
                "member",
                "seat",
                "person",
                "visitor",
            )
            value = _pick(numeric, "value", "amount", "seconds", "duration", "minutes", "count", "quantity", "revenue")
            if type_col:
                columns["type"] = type_col.name
                notes[("sources", "events", "columns", "type")] = f"{len(type_col.values)} types: " + ", ".join(
                    type_col.values[:10]
                )
            if value:
                columns["value"] = value.name
            if user:
                columns["user"] = user.name
            sources["events"] = {"location": events.location, "shape": "events", "columns": columns}
        else:
            measures = {
                re.sub(r"[^a-z0-9_]+", "_", c.name.lower()).strip("_")[:40]: (
                    {"column": c.name} if c.name != c.name.lower() else {}
                )
                for c in numeric
            }
            sources["events"] = {
                "location": events.location,
                "shape": "daily",
                "columns": columns,
                "measures": measures,
            }
            notes[("sources", "events", "shape")] = "guessed: one row per customer and day with numeric measures"
        notes[("sources", "events", "location")] = (
            notes.get(("sources", "events", "location"), "") or f"{events.rows:,} rows"
        )

    subs = by_role.get("subscriptions")
    if subs is not None:
        times = subs.of_kind("time")
        start = _pick(times, "start", "started", "begin", "from", "created", "activated")
        end = _pick(
            times,
            "end",
            "ended",
            "cancel",
            "until",
            "to",
            "stop",
            "expired",
            "terminated",
            exclude={start.name} if start else set(),
        )
        numeric = subs.of_kind("numeric")
        mrr = _pick(numeric, "mrr", "price", "amount", "fee", "revenue", "monthly", "value")
        columns = {
            "customer_id": customer_in(subs),
            "start_time": start.name if start else "TODO_start_time_column",
            "mrr": mrr.name if mrr else "TODO_mrr_column",
        }
        for role_name, words, kinds in (
            ("subscription_id", ("subscription", "sub", "contract", "ref", "id"), ("text", "numeric", "categorical")),
            ("plan", ("plan", "product", "tier", "package", "sku"), ("categorical",)),
            ("billing_period", ("billing", "period", "cycle", "interval", "term", "frequency"), ("categorical",)),
            ("quantity", ("seats", "quantity", "qty", "licenses", "licences", "units", "users"), ("numeric",)),
            ("discount", ("discount", "rebate", "promo"), ("numeric",)),
        ):
            taken = set(columns.values())
            found = _pick([c for c in subs.columns if c.kind in kinds and c.name not in taken], *words)
            if found and not (role_name == "subscription_id" and found.name == columns["customer_id"]):
                columns[role_name] = found.name
        if end:
            columns["end_time"] = end.name
        sources["subscriptions"] = {"location": subs.location, "columns": columns}

    invoices = by_role.get("invoices")
    if invoices is not None:
        times = invoices.of_kind("time")
        issued = _pick(times, "issued", "invoice", "date", "created", "charged", "billed", "at") or (
            times[0] if times else None
        )
        paid = _pick(times, "paid", "settled", exclude={issued.name} if issued else set())
        amount = _pick(invoices.of_kind("numeric"), "amount", "total", "price", "value", "sum", "gross", "net")
        status = _pick(invoices.of_kind("categorical"), "status", "state", "outcome", "result")
        invoice_id = _pick(
            [c for c in invoices.columns if c.name != customer_in(invoices)],
            "invoice",
            "payment",
            "charge",
            "ref",
            "id",
            "number",
        )
        columns = {
            "invoice_id": invoice_id.name if invoice_id else "TODO_invoice_id_column",
            "customer_id": customer_in(invoices),
            "time": issued.name if issued else "TODO_time_column",
            "amount": amount.name if amount else "TODO_amount_column",
        }
        if status:
            columns["status"] = status.name
            notes[("sources", "invoices", "columns", "status")] = "values: " + ", ".join(status.values[:10])
        if paid:
            columns["paid_time"] = paid.name
        entry: dict[str, Any] = {"location": invoices.location, "columns": columns}
        if status:
            failed = [v for v in status.values if _has(v, "fail", "declin", "reject", "bounce", "unpaid", "error")]
            entry["failed_statuses"] = failed or ["failed"]
        sources["invoices"] = entry

    tickets = by_role.get("tickets")
    if tickets is not None:
        times = tickets.of_kind("time")
        created = _pick(times, "created", "opened", "submitted", "reported", "start") or (times[0] if times else None)
        resolved = _pick(
            times, "resolved", "closed", "solved", "done", "end", exclude={created.name} if created else set()
        )
        satisfaction = _pick(tickets.of_kind("numeric"), "satisfaction", "csat", "rating", "score", "nps")
        ticket_id = _pick(
            [c for c in tickets.columns if c.name != customer_in(tickets)], "ticket", "case", "ref", "id", "number"
        )
        columns = {
            "ticket_id": ticket_id.name if ticket_id else "TODO_ticket_id_column",
            "customer_id": customer_in(tickets),
            "created_time": created.name if created else "TODO_created_time_column",
        }
        if resolved:
            columns["resolved_time"] = resolved.name
        if satisfaction:
            columns["satisfaction"] = satisfaction.name
        sources["tickets"] = {"location": tickets.location, "columns": columns}

    actions = by_role.get("actions")
    if actions is not None:
        sources["actions"] = _guess_actions(actions, customer_in(actions), notes, problems)

    cancellation = "accounts"
    if accounts is not None and "cancellation_time" not in sources.get("accounts", {}).get("columns", {}):
        if "subscriptions" in sources:
            cancellation = "subscriptions"
            notes[("label", "cancellation")] = (
                "guessed: the accounts have no cancellation column; churn is the end of the last subscription"
            )
        else:
            problems.append(
                "no cancellation time in the accounts and no subscriptions: name the accounts' cancellation column "
                "(sources.accounts.columns.cancellation_time) or declare sources.subscriptions"
            )
    declaration = {
        "business": business,
        "customer_id_type": id_type,
        "sources": sources,
        "label": {"horizon_days": 30, "cancellation": cancellation},
        "snapshots": {"every_months": 1, "history_days": 90},
    }
    if customer_key:
        notes[("customer_id_type",)] = f"{customer_key} holds {'text' if id_type == 'text' else 'whole numbers'}"
    return Guess(declaration, notes, problems)


def render_yaml(guess: Guess, origin: str) -> str:
    """The guessed declaration as YAML, with a comment on each guess."""
    lines = [
        f"# The business, as `churn-platform init` guessed it from {origin} on {dt.date.today()}.",
        "# Check every line (the comments say what each guess rests on), then validate it against the",
        "# sources in seconds with:  churn-platform check --config <this file> --sources " + origin,
        '# The format: the README\'s "Bring your own business", or `churn-platform check --help`.',
    ]
    for problem in guess.problems:
        lines.append(f"# TODO: {problem}")

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        text = str(value)
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\- ]*", text) and text.lower() not in (
            "true",
            "false",
            "null",
            "yes",
            "no",
            "on",
            "off",
        ):
            return text
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def emit(node: Any, path: tuple, indent: int) -> None:
        pad = "  " * indent
        for key, value in node.items():
            note = guess.notes.get((*path, key))
            comment = f"  # {note}" if note else ""
            if isinstance(value, dict):
                if not value:
                    lines.append(f"{pad}{key}: {{}}{comment}")
                    continue
                if (
                    all(not isinstance(v, (dict, list)) for v in value.values())
                    and len(value) <= 3
                    and path[-1:] in (("attributes",), ("measures",))
                ):
                    inner = ", ".join(f"{k}: {scalar(v)}" for k, v in value.items())
                    lines.append(f"{pad}{key}: {{{inner}}}{comment}")
                    continue
                lines.append(f"{pad}{key}:{comment}")
                emit(value, (*path, key), indent + 1)
            elif isinstance(value, list):
                lines.append(f"{pad}{key}: [{', '.join(scalar(v) for v in value)}]{comment}")
            else:
                lines.append(f"{pad}{key}: {scalar(value)}{comment}")

    emit(guess.declaration, (), 0)
    return "\n".join(lines) + "\n"


def list_locations(source) -> list[str]:
    """The tables a source holds: files in a folder or under an S3 prefix, tables in a PostgreSQL schema."""
    kind = source.kind
    if kind == "files":
        folder = Path(source.sources)
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder")
        return sorted(
            p.name for p in folder.iterdir() if p.suffix.lower() in (".parquet", ".csv") and not p.name.startswith(".")
        )
    if kind == "s3":
        bucket, _, prefix = source.sources.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/")
        found = source.s3_client().list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/" if prefix else "")
        names = [o["Key"].removeprefix(f"{prefix}/" if prefix else "") for o in found.get("Contents", [])]
        return sorted(n for n in names if "/" not in n and n.lower().endswith((".parquet", ".csv")))
    from urllib.parse import parse_qs, urlsplit, urlunsplit

    import sqlalchemy as sa

    parts = urlsplit(source.sources)
    schema = parse_qs(parts.query).get("schema", ["public"])[0]
    engine = sa.create_engine(urlunsplit(("postgresql+psycopg2", parts.netloc, parts.path, "", "")))
    try:
        with engine.connect() as con:
            return sorted(sa.inspect(con).get_table_names(schema=schema))
    finally:
        engine.dispose()


def init_declaration(source, origin: str, business: str = "my_business") -> tuple[str, Guess]:
    """Profile every table of ``source`` and return the commented declaration YAML and the guess."""
    locations = list_locations(source)
    if not locations:
        raise ValueError(f"no .parquet or .csv files (or tables) found in {origin}")
    profiles = [profile_table(source, location) for location in locations]
    guess = guess_declaration(profiles, business)
    return render_yaml(guess, origin), guess


# ---- checking a declaration against its sources -----------------------------------------------------


@dataclasses.dataclass
class SourceCheck:
    role: str
    location: str
    received: int = 0
    accepted: int = 0
    quarantined: int = 0
    rules: dict[str, int] = dataclasses.field(default_factory=dict)
    error: str | None = None
    sampled: bool = False


@dataclasses.dataclass
class CheckReport:
    declaration: Declaration
    sources: list[SourceCheck]
    partitions: tuple[dt.date, dt.date | None] | None
    features: list[tuple[str, str, str]]  # name, kind, role
    snapshots: list[dict[str, Any]]
    problems: list[str]
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_business(
    declaration: Declaration, source, now: dt.datetime | None = None, rows: int = CHECK_ROWS
) -> CheckReport:
    """Put each declared source through its contract (up to ``rows`` rows each), derive the
    features, and count the snapshots that get labels and their churners, on the accepted rows."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    problems: list[str] = []
    warnings: list[str] = []
    checks: list[SourceCheck] = []
    contracts = contracts_for(declaration)
    with duckdb.connect() as con:
        con.execute("create schema raw")
        con.execute("create schema quarantine")
        for role, contract in contracts.items():
            location = declaration.source(role).location
            check = SourceCheck(role, location)
            checks.append(check)
            try:
                relation = source.register(con, location)
                total = con.execute(f"select count(*) from {relation}").fetchone()[0]
                if total > rows:
                    check.sampled = True
                    relation = f"(select * from {relation} where __row < {int(rows)})"
                renamed_relation(con, contract, relation, where=f"{role} ({location})")
                counts = load_with_contract(con, contract, relation, f"raw.{role}", f"quarantine.{role}", now=now)
            except MissingColumnsError as exc:
                check.error = str(exc)
                problems.append(str(exc))
                continue
            except Exception as exc:  # an unreadable or missing source
                check.error = f"{type(exc).__name__}: {exc}"
                problems.append(f"{role} ({location}): {check.error}")
                continue
            check.received, check.accepted, check.quarantined, check.rules = (
                counts.received,
                counts.accepted,
                counts.quarantined,
                counts.rules,
            )
            share = counts.quarantine_share
            limit = declaration.policy.max_quarantine_share
            if share > limit:
                problems.append(
                    f"{role}: {share:.1%} of the rows would be quarantined, over the limit {limit:.0%}: the run would stop"
                )
        features: list[tuple[str, str, str]] = []
        snapshots: list[dict[str, Any]] = []
        partitions = None
        if not any(c.error for c in checks):
            events = declaration.sources.events
            found = con.execute(EVENT_TYPES_SQL).fetchall() if events.shape == "events" and events.columns.type else []
            catalogue = build_catalogue(declaration, *event_types_from(declaration, found))
            features = [(f.name, f.kind, f.role) for f in catalogue.features]
            snapshots, partitions = _labelled_snapshots(con, declaration, contracts)
            mature = [s for s in snapshots if s["labelled"]]
            if len(mature) < MIN_MATURE_SNAPSHOTS:
                problems.append(
                    f"{len(mature)} snapshot(s) get labels: training needs at least {MIN_MATURE_SNAPSHOTS} (train, "
                    f"validation, test). The usage must cover history_days ({declaration.snapshots.history_days}) plus "
                    f"{MIN_MATURE_SNAPSHOTS} months plus the horizon ({declaration.label.horizon_days} days)"
                )
            else:
                for s in mature[-2:]:
                    if s["churners"] < MIN_CHURNERS:
                        warnings.append(
                            f"the snapshot of {s['snapshot']} has {s['churners']} churners among {s['customers']:,} "
                            f"customers: fewer than {MIN_CHURNERS} make its ROC-AUC noise"
                        )
                if sum(s["churners"] for s in mature) == 0:
                    problems.append(
                        "no labelled snapshot has a churner: check the cancellation column or the label rule"
                    )
            for c in checks:
                if c.sampled:
                    warnings.append(f"{c.role}: checked on its first {rows:,} rows of {c.location}")
    return CheckReport(declaration, checks, partitions, features, snapshots, problems, warnings)


def _labelled_snapshots(con, declaration: Declaration, contracts) -> tuple[list[dict[str, Any]], tuple]:
    """The snapshot calendar on the accepted rows, as the dbt models compute it: customers active
    at each snapshot and, for those whose horizon has been observed, how many churned within it."""
    time_column = contracts["events"].time_column
    first, last = con.execute(
        f"select cast(min({_q(time_column)}) as date), cast(max({_q(time_column)}) as date) from raw.events"
    ).fetchone()
    if first is None:
        return [], None
    horizon = declaration.label.horizon_days
    if declaration.label.cancellation == "subscriptions":
        churn = (
            "select customer_id, case when bool_and(ended_at is not null) then cast(max(ended_at) as date) end as churn_date "
            "from raw.subscriptions group by customer_id"
        )
    else:
        churn = (
            "select customer_id, cast(min(cancelled_at) as date) as churn_date from raw.accounts group by customer_id"
        )
    rows = con.execute(
        f"""
        with calendar as (
            select cast(t as date) as snapshot
            from generate_series(
                cast(date_trunc('month', date '{first}' + {declaration.snapshots.history_days} - 1) as timestamp) + interval '1 month',
                cast(date '{last}' + 1 as timestamp),
                interval '{declaration.snapshots.every_months} month'
            ) as g(t)
        ),
        customers as (select customer_id, cast(min(signup_at) as date) as signup from raw.accounts group by customer_id),
        churn as ({churn})
        select
            c.snapshot,
            count(*) as customers,
            count(*) filter (where ch.churn_date >= c.snapshot and ch.churn_date < c.snapshot + {horizon}) as churners,
            c.snapshot + {horizon} <= date '{last}' + 1 as labelled
        from calendar as c
        join customers as a on a.signup < c.snapshot
        left join churn as ch on ch.customer_id = a.customer_id
        where ch.churn_date is null or ch.churn_date >= c.snapshot
        group by c.snapshot
        order by c.snapshot
        """
    ).fetchall()
    snapshots = [
        {"snapshot": str(s), "customers": int(n), "churners": int(k) if labelled else None, "labelled": bool(labelled)}
        for s, n, k, labelled in rows
    ]
    return snapshots, (first, last)


def format_check(report: CheckReport) -> str:
    d = report.declaration
    lines = [f"Business {d.business}: {', '.join(d.present)}"]
    for c in report.sources:
        if c.error:
            lines.append(f"  {c.role:<13} {c.location}: ERROR {c.error}")
            continue
        share = c.quarantined / c.received if c.received else 0.0
        lines.append(
            f"  {c.role:<13} {c.location}: {c.received:,} rows, {c.accepted:,} accepted, {c.quarantined:,} "
            f"quarantined ({share:.1%})" + (" [sampled]" if c.sampled else "")
        )
        for rule, n in list(c.rules.items())[:6]:
            lines.append(f"      {n:>8,}  {rule}")
        if len(c.rules) > 6:
            lines.append(f"      ... and {len(c.rules) - 6} more rules")
    if report.partitions:
        first, last = report.partitions
        lines.append(f"Usage from {first} to {last}: the daily partitions follow these days unless set")
    if report.features:
        by_role: dict[str, list[str]] = {}
        for name, _, role in report.features:
            by_role.setdefault(role, []).append(name)
        lines.append(f"Features: {len(report.features)}")
        for role, names in by_role.items():
            shown = ", ".join(names[:12]) + (f", ... ({len(names) - 12} more)" if len(names) > 12 else "")
            lines.append(f"  {role} ({len(names)}): {shown}")
    if report.snapshots:
        mature = [s for s in report.snapshots if s["labelled"]]
        lines.append(
            f"Snapshots: {len(report.snapshots)}, {len(mature)} with labels "
            f"(churn within {d.label.horizon_days} days, from {d.label.cancellation})"
        )
        for s in report.snapshots:
            label = (
                f"{s['churners']:,} churned ({s['churners'] / s['customers']:.1%})"
                if s["labelled"]
                else "not yet labelled"
            )
            lines.append(f"  {s['snapshot']}: {s['customers']:,} customers, {label}")
    for w in report.warnings:
        lines.append(f"warning: {w}")
    for p in report.problems:
        lines.append(f"problem: {p}")
    lines.append(
        "Ready to run: churn-platform run --config ... --sources ... --home ..."
        if report.ok
        else f"Not ready: {len(report.problems)} problem(s) above."
    )
    return "\n".join(lines)
