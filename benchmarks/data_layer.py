"""Data-layer benchmark: wall time and peak memory per stage, from generation to scoring_features.

Both usage shapes are measured, each on its built-in business:

  saas_b2b       usage as daily measures (one row per customer and active day)
  consumer_app   usage as a raw event log (one row per event: time, type, value, user)

For each business and size (customers over 365 days) it runs, each stage in its own
process so that its peak resident memory is its own:

  generate        the seeded simulation, written as Parquet (usage streamed by month)
  load_sources    what the source assets do: read, apply the data contracts,
                  write raw and quarantine tables into a DuckDB warehouse
  dbt_features    `dbt run` of every model (up to training_set and scoring_features, the feature
                  catalogue and the business metrics) but the monitoring ones, for the year's
                  days as the platform builds its daily partitions
  dbt_tests       `dbt test` (the tests that run as Dagster asset checks)
  floor_query     one hand-written DuckDB query computing the same point-in-time
                  snapshot features straight from the raw Parquet files

The floor is what the feature computation costs without orchestration, staging
views or intermediate tables; the report gives dbt_features as a multiple of it.
At the smallest size the floor's output is compared with dbt's customer_features
row for row, so the two compute the same thing.

    python benchmarks/data_layer.py                       # both shapes, 10k and 100k customers
    python benchmarks/data_layer.py --business saas_b2b --sizes 10000 100000 1000000
    python benchmarks/data_layer.py --sizes 1000000 --memory-limit 10GB
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_results import add_runs, code_version

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
DBT = str(Path(sys.executable).parent / "dbt")

B2B_FEATURE_COLUMNS = (
    "plan, contract_type, region, segment, acquisition_channel, seats, tenure_days, mrr, sessions_7d, "
    "sessions_30d, sessions_90d, minutes_30d, feature_uses_30d, sessions_trend, days_since_last_activity, "
    "failed_payments_90d, late_payments_90d, tickets_90d, open_tickets, avg_satisfaction_90d, "
    "plan_changes_90d, seats_change_90d"
)
"""The B2B example's features the floor computes and compares with dbt's: 22 of its catalogue's 36
(dbt computes the rest as well, so its multiple of the floor is an upper bound)."""

# The same features as dbt's customer_features, in one statement over the raw files.
B2B_FLOOR_SQL = """
create or replace table floor_features as
with usage as (select * from read_parquet('{src}/usage_events.parquet')),
crm as (select * from read_parquet('{src}/crm_customers.parquet')),
inv as (select * from read_parquet('{src}/billing_invoices.parquet')),
tix as (select * from read_parquet('{src}/support_tickets.parquet')),
bounds as (select min(cast(event_date as date)) as data_start, max(cast(event_date as date)) as data_end from usage),
snaps as (
    select cast(m as date) as snapshot_date, cast(m as timestamp) as snapshot_at
    from bounds, generate_series(
        cast(date_trunc('month', data_start + 89) as timestamp) + interval '1 month',
        cast(data_end + 1 as timestamp), interval '1 month') as g(m)
),
versions as (
    select *, updated_at as valid_from,
        lead(updated_at) over (partition by customer_id order by updated_at) as valid_to,
        lag(plan) over (partition by customer_id order by updated_at) as previous_plan,
        lag(seats) over (partition by customer_id order by updated_at) as previous_seats,
        row_number() over (partition by customer_id order by updated_at) as version_number
    from crm
),
churn as (
    select customer_id, min(case when cancelled_at is not null then updated_at end) as recorded_at
    from crm group by customer_id
),
pop as (
    select s.snapshot_date, s.snapshot_at, v.customer_id, v.plan, v.contract_type, v.region, v.segment,
        v.acquisition_channel, v.seats, s.snapshot_date - cast(v.signup_date as date) as tenure_days
    from snaps s
    join versions v on v.valid_from < s.snapshot_at and (v.valid_to is null or v.valid_to >= s.snapshot_at)
    join churn c on c.customer_id = v.customer_id
    where cast(v.signup_date as date) < s.snapshot_date and v.cancelled_at is null
      and (c.recorded_at is null or c.recorded_at >= s.snapshot_at)
),
u as (
    select p.snapshot_date, p.customer_id,
        sum(case when cast(x.event_date as date) >= p.snapshot_date - 7 then x.sessions else 0 end) as s7,
        sum(case when cast(x.event_date as date) >= p.snapshot_date - 30 then x.sessions else 0 end) as s30,
        sum(x.sessions) as s90,
        sum(case when cast(x.event_date as date) >= p.snapshot_date - 60
                  and cast(x.event_date as date) < p.snapshot_date - 30 then x.sessions else 0 end) as sp30,
        sum(case when cast(x.event_date as date) >= p.snapshot_date - 30 then x.minutes else 0 end) as m30,
        sum(case when cast(x.event_date as date) >= p.snapshot_date - 30 then x.feature_uses else 0 end) as f30,
        max(cast(x.event_date as date)) as last_active
    from pop p join usage x on x.customer_id = p.customer_id
        and cast(x.event_date as date) >= p.snapshot_date - 90 and cast(x.event_date as date) < p.snapshot_date
    group by 1, 2
),
b as (
    select p.snapshot_date, p.customer_id,
        sum(case when i.status = 'failed' and cast(i.invoice_date as date) >= p.snapshot_date - 90 then 1 else 0 end) as failed,
        sum(case when i.status <> 'failed' and cast(i.invoice_date as date) >= p.snapshot_date - 90
                  and cast(i.invoice_date as date) + 8 <= p.snapshot_date
                  and (i.paid_at is null or cast(i.paid_at as date) > cast(i.invoice_date as date) + 7)
                 then 1 else 0 end) as late,
        arg_max(i.amount, [epoch(i.invoice_date), i.invoice_id]) as mrr
    from pop p join inv i on i.customer_id = p.customer_id and cast(i.invoice_date as date) < p.snapshot_date
    group by 1, 2
),
t as (
    select p.snapshot_date, p.customer_id,
        sum(case when k.created_at >= p.snapshot_at - interval '90 days' then 1 else 0 end) as tickets,
        sum(case when k.resolved_at is null or k.resolved_at >= p.snapshot_at then 1 else 0 end) as open_t,
        avg(case when k.resolved_at >= p.snapshot_at - interval '90 days' and k.resolved_at < p.snapshot_at
                 then k.satisfaction_score end) as csat
    from pop p join tix k on k.customer_id = p.customer_id and k.created_at < p.snapshot_at
    group by 1, 2
),
c as (
    select p.snapshot_date, p.customer_id,
        sum(case when w.plan <> w.previous_plan then 1 else 0 end) as plan_changes,
        sum(w.seats - w.previous_seats) as seat_change
    from pop p join versions w on w.customer_id = p.customer_id and w.version_number > 1
        and w.valid_from < p.snapshot_at and w.valid_from >= p.snapshot_at - interval '90 days'
    group by 1, 2
)
select p.customer_id, p.snapshot_date, p.plan, p.contract_type, p.region, p.segment, p.acquisition_channel,
    p.seats, p.tenure_days, coalesce(b.mrr, 0) as mrr,
    coalesce(u.s7, 0) as sessions_7d, coalesce(u.s30, 0) as sessions_30d, coalesce(u.s90, 0) as sessions_90d,
    coalesce(u.m30, 0) as minutes_30d, coalesce(u.f30, 0) as feature_uses_30d,
    cast(coalesce(u.s30, 0) + 1 as double) / (coalesce(u.sp30, 0) + 1) as sessions_trend,
    coalesce(p.snapshot_date - u.last_active, 91) as days_since_last_activity,
    coalesce(b.failed, 0) as failed_payments_90d, coalesce(b.late, 0) as late_payments_90d,
    coalesce(t.tickets, 0) as tickets_90d, coalesce(t.open_t, 0) as open_tickets, t.csat as avg_satisfaction_90d,
    coalesce(c.plan_changes, 0) as plan_changes_90d, coalesce(c.seat_change, 0) as seats_change_90d
from pop p
left join u using (snapshot_date, customer_id)
left join b using (snapshot_date, customer_id)
left join t using (snapshot_date, customer_id)
left join c using (snapshot_date, customer_id)
"""

LOAD_SNIPPET = """
import datetime as dt, sys
from churn_platform.business.declaration import load_declaration
from churn_platform.defs.resources import SourceResource, DuckDBWarehouseResource
from churn_platform.simulation.businesses import declaration_path
from churn_platform.sources.contracts import PartitionSlice
from churn_platform.warehouse.base import check_declared_sources
from churn_platform.simulation.generator import DEFAULT_START
declaration = load_declaration(declaration_path(sys.argv[4]))
source = SourceResource(sources=sys.argv[1])
warehouse = DuckDBWarehouseResource(path=sys.argv[2], memory_limit=sys.argv[3])
# The usage is loaded as churn-platform run does it: every daily partition in one run.
year = PartitionSlice(DEFAULT_START, DEFAULT_START + dt.timedelta(days=365), DEFAULT_START, DEFAULT_START + dt.timedelta(days=365))
with warehouse.connect() as con:  # what the source assets do, one after the other
    check_declared_sources(con, source, declaration, partition=year)
"""

GENERATE_SNIPPET = """
import sys
from pathlib import Path
from churn_platform.simulation.generator import GeneratorConfig, generate_to_dir
generate_to_dir(GeneratorConfig(customers=int(sys.argv[1]), days=365, seed=7, business=sys.argv[3]), Path(sys.argv[2]))
"""

FLOOR_SNIPPET = """
import sys, duckdb
con = duckdb.connect(sys.argv[2], config={'memory_limit': sys.argv[4]})  # the same limit as the warehouse and dbt
con.execute(open(sys.argv[3]).read().replace('{src}', sys.argv[1]))
print(con.execute('select count(*) from floor_features').fetchone()[0])
"""


def run_stage(name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> dict:
    """Run one stage as a child process; return its wall time and its own peak RSS."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(output.decode(errors="replace")[-4000:])
        raise SystemExit(f"stage {name} failed")
    return {"stage": name, "seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def dbt_environment(warehouse: Path, target: Path, memory_limit: str) -> dict[str, str]:
    """What dbt's profile reads to build on a benchmark's warehouse, and the usage's batches a run over
    the year's partitions builds (months)."""
    return {
        "CHURN_PLATFORM_USAGE_BATCH_SIZE": "month",
        "CHURN_PLATFORM_WAREHOUSE": str(warehouse),
        "CHURN_PLATFORM_DUCKDB_MEMORY_LIMIT": memory_limit,
        "DBT_LOG_PATH": str(target),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    }


def platform_modules():
    """The platform's modules the parent process needs (imported late: the stages run as children)."""
    sys.path.insert(0, str(REPO))
    from churn_platform.business import catalogue, declaration
    from churn_platform.simulation import businesses, generator

    return catalogue, declaration, businesses, generator


def declared(business: str):
    _, declaration, businesses, _ = platform_modules()
    return declaration.load_declaration(businesses.declaration_path(business))


def loaded_catalogue(business: str, warehouse: Path):
    """The catalogue the platform derives for ``business`` from its loaded usage (event types included)."""
    import duckdb

    catalogue, _, _, _ = platform_modules()
    decl = declared(business)
    rows = []
    if decl.sources.events.shape == "events":
        with duckdb.connect(str(warehouse), read_only=True) as con:
            rows = con.execute(catalogue.EVENT_TYPES_SQL).fetchall()
    return catalogue.build_catalogue(decl, *catalogue.event_types_from(decl, rows))


def dbt_arguments(business: str, warehouse: Path) -> list[str]:
    """``--vars`` with the business's declaration and catalogue, as the platform passes them to dbt,
    then the year's days, as the platform builds its daily partitions (``dbt run`` only)."""
    catalogue, _, _, generator = platform_modules()
    start = generator.DEFAULT_START
    decl = declared(business)
    variables = catalogue.dbt_vars(decl, loaded_catalogue(business, warehouse), start.isoformat())
    return [
        "--vars",
        json.dumps(variables),
        "--event-time-start",
        start.isoformat(),
        "--event-time-end",
        (start + dt.timedelta(days=365)).isoformat(),
    ]


EVENT_AGGREGATES = {
    # The floor's aggregate for each usage feature of the catalogue, over the events counted per
    # customer, day and type (x: n events, v their value) or their distinct users per day and type
    # (y): {f} is the filter of the feature's event type and window, {prior} the 30 days before it.
    "type_count": "sum(x.n) filter (where {f})",
    "total_count": "sum(x.n) filter (where {f})",
    "type_value": "cast(sum(x.v) filter (where {f}) as double)",
    "total_value": "cast(sum(x.v) filter (where {f}) as double)",
    # One row per customer, day and type: its rows are the type's active days.
    "type_active_days": "count(case when {f} then 1 end)",
    "total_active_days": "count(distinct case when {f} then x.d end)",
    # y: each user's last day per type and over all types; a user counts when it is in the window.
    "type_users": "count(case when {f} then 1 end)",
    "total_users": "count(case when {f} then 1 end)",
    "type_trend": "cast(coalesce(sum(x.n) filter (where {f}), 0) + 1 as double) / (coalesce(sum(x.n) filter (where {prior}), 0) + 1)",
    "total_trend": "cast(coalesce(sum(x.n) filter (where {f}), 0) + 1 as double) / (coalesce(sum(x.n) filter (where {prior}), 0) + 1)",
    "type_recency": "max(x.d) filter (where {f})",
    "recency": "max(x.d) filter (where {f})",
}


def event_floor(business: str, warehouse: Path) -> tuple[str, list[str]]:
    """For a business whose usage is an event log: one statement over the raw files computing its
    population, tenure, attributes and every usage feature (counts, value sums, active days, distinct
    users, trends and recency, per event type and window, and over all types); and those columns."""
    decl = declared(business)
    s = decl.sources
    ev, acc = s.events.columns, s.accounts.columns
    catalogue = loaded_catalogue(business, warehouse)
    usage = [f for f in catalogue.features if f.agg in EVENT_AGGREGATES]
    trend = decl.features.trend_days
    aggregates: dict[str, list[str]] = {"x": [], "y": []}
    columns = []
    for f in usage:
        w = f.param("window")
        alias = "y" if f.agg.endswith("users") else "x"
        is_type = f"{alias}.t = '{f.param('event_type')}'" if f.agg.startswith("type_") else "true"
        if alias == "y":
            is_type = f"y.all_types = 0 and {is_type}" if f.agg.startswith("type_") else "y.all_types = 1"
        window = f"{alias}.d >= {'y' if alias == 'y' else 'p'}.snapshot_date - {w}"
        prior = f"{alias}.d >= p.snapshot_date - {2 * trend} and {alias}.d < p.snapshot_date - {trend}"
        recency = "recency" in f.agg
        expression = EVENT_AGGREGATES[f.agg].format(
            f=is_type if recency else f"{is_type} and {window}", prior=f"{is_type} and {prior}"
        )
        aggregates[alias].append(f'{expression} as "{f.name}"')
        if recency:
            columns.append(f'coalesce(p.snapshot_date - {alias}."{f.name}", {w + 1}) as "{f.name}"')
        else:
            default = "1.0" if "trend" in f.agg else "0"
            columns.append(f'coalesce({alias}."{f.name}", {default}) as "{f.name}"')
    attributes = list(s.accounts.attributes)
    churn_end = f"max(coalesce(s.\"{s.subscriptions.columns.end_time}\", timestamp '9999-12-31'))"
    look_back = max(decl.features.longest, 2 * trend)
    sep = "," + chr(10) + "        "

    def per_snapshot(alias: str, relation: str) -> str:
        return f"""{alias} as (
    select p.snapshot_date, p.customer_id,
        {sep.join(aggregates[alias])}
    from pop as p join {relation} as {alias} on {alias}.customer_id = p.customer_id
        and {alias}.d >= p.snapshot_date - {look_back} and {alias}.d < p.snapshot_date
    group by p.snapshot_date, p.customer_id
)"""

    sql = f"""
create or replace table floor_features as
with events as (
    select "{ev.customer_id}" as customer_id, cast("{ev.time}" as date) as d, coalesce("{ev.type}", '') as t,
        "{ev.value}" as v, "{ev.user}" as usr
    from read_parquet('{{src}}/{s.events.location}.parquet')
),
daily as (
    select customer_id, d, t, count(*) as n, sum(cast(v as decimal(18, 4))) as v from events group by all
),
daily_users as (select distinct customer_id, d, t, usr from events where usr is not null),
acc as (select * from read_parquet('{{src}}/{s.accounts.location}.parquet')),
subs as (select * from read_parquet('{{src}}/{s.subscriptions.location}.parquet')),
bounds as (select min(d) as data_start, max(d) as data_end from daily),
snaps as (
    select cast(m as date) as snapshot_date, cast(m as timestamp) as snapshot_at
    from bounds, generate_series(
        cast(date_trunc('month', data_start + {decl.snapshots.history_days - 1}) as timestamp) + interval '1 month',
        cast(data_end + 1 as timestamp), interval '{decl.snapshots.every_months} month') as g(m)
),
churn as (
    select a."{acc.customer_id}" as customer_id, {churn_end} as last_end
    from (select distinct "{acc.customer_id}" from acc) as a
    left join subs as s on s."{s.subscriptions.columns.customer_id}" = a."{acc.customer_id}"
    group by 1
),
pop as (
    select s.snapshot_date, s.snapshot_at, a."{acc.customer_id}" as customer_id,
        {"".join(f'a."{name}", ' for name in attributes)}
        s.snapshot_date - cast(a."{acc.signup_time}" as date) as tenure_days
    from snaps as s
    join acc as a on cast(a."{acc.signup_time}" as timestamp) < s.snapshot_at
    join churn as c on c.customer_id = a."{acc.customer_id}"
    where c.last_end = timestamp '9999-12-31' or c.last_end >= s.snapshot_at
),
{per_snapshot("x", "daily")},
user_last as (
    select p.snapshot_date, p.customer_id, u.t, u.usr, grouping(u.t) as all_types, max(u.d) as d
    from pop as p join daily_users as u on u.customer_id = p.customer_id
        and u.d >= p.snapshot_date - {look_back} and u.d < p.snapshot_date
    group by grouping sets ((p.snapshot_date, p.customer_id, u.t, u.usr), (p.snapshot_date, p.customer_id, u.usr))
),
y as (
    select y.snapshot_date, y.customer_id,
        {sep.join(aggregates["y"])}
    from user_last as y
    group by y.snapshot_date, y.customer_id
)
select p.customer_id, p.snapshot_date, {"".join(f'p."{name}", ' for name in attributes)}p.tenure_days,
    {("," + chr(10) + "    ").join(columns)}
from pop as p
left join x using (snapshot_date, customer_id)
left join y using (snapshot_date, customer_id)
"""
    return sql, [*attributes, "tenure_days", *(f.name for f in usage)]


def floor_of(business: str, warehouse: Path) -> tuple[str, list[str], set[str]]:
    """The floor query of ``business``, the feature columns it computes, and those compared rounded
    (sums of floats may differ in the last bits with the order of summation)."""
    if declared(business).sources.events.shape == "daily":
        return (
            B2B_FLOOR_SQL,
            B2B_FEATURE_COLUMNS.split(", "),
            {"mrr", "minutes_30d", "sessions_trend", "avg_satisfaction_90d"},
        )
    sql, columns = event_floor(business, warehouse)
    return sql, columns, {c for c in columns if "value" in c or "trend" in c}


def bench_size(business: str, customers: int, work: Path, check_equal: bool, memory_limit: str) -> dict:
    src, wh = work / "sources", work / "warehouse.duckdb"
    target = work / "dbt_target"
    dbt_env = dbt_environment(wh, target, memory_limit)
    work.mkdir(parents=True, exist_ok=True)
    stages = [
        run_stage("generate", [PYTHON, "-c", GENERATE_SNIPPET, str(customers), str(src), business]),
        run_stage("load_sources", [PYTHON, "-c", LOAD_SNIPPET, str(src), str(wh), memory_limit, business]),
    ]
    arguments = dbt_arguments(business, wh)
    floor_sql_text, feature_columns, rounded = floor_of(business, wh)
    floor_sql = work / "floor.sql"
    floor_sql.write_text(floor_sql_text)
    stages += [
        run_stage(
            "dbt_features",
            # Every model but the monitoring ones, which read what the Python assets write.
            [DBT, "run", "--exclude", "tag:monitoring", "--target-path", str(target), "--quiet", *arguments],
            env=dbt_env,
            cwd=REPO / "dbt_project",
        ),
        run_stage(
            "dbt_tests",
            # The monitoring models read what the Python assets write (scores, the prediction log): not built here.
            [DBT, "test", "--exclude", "tag:monitoring", "--target-path", str(target), "--quiet", *arguments[:2]],
            env=dbt_env,
            cwd=REPO / "dbt_project",
        ),
        run_stage(
            "floor_query",
            [PYTHON, "-c", FLOOR_SNIPPET, str(src), str(work / "floor.duckdb"), str(floor_sql), memory_limit],
        ),
    ]
    import duckdb

    with duckdb.connect(str(wh), read_only=True) as con:
        rows = {
            "usage_rows": con.execute("select count(*) from raw.events").fetchone()[0],
            "customer_features": con.execute("select count(*) from marts.customer_features").fetchone()[0],
            "scoring_features": con.execute("select count(*) from marts.scoring_features").fetchone()[0],
            "features": con.execute("select count(*) from marts.feature_catalogue").fetchone()[0],
        }
    same = None
    compared = ", ".join(f'round("{c}", 6)' if c in rounded else f'"{c}"' for c in feature_columns)
    if check_equal:
        with duckdb.connect(str(work / "floor.duckdb")) as con:
            con.execute(f"attach '{wh}' as wh (read_only)")
            diff = con.execute(
                f"""select count(*) from (
                    (select customer_id, snapshot_date, {compared} from floor_features
                     except all select customer_id, snapshot_date, {compared} from wh.marts.customer_features)
                    union all
                    (select customer_id, snapshot_date, {compared} from wh.marts.customer_features
                     except all select customer_id, snapshot_date, {compared} from floor_features))"""
            ).fetchone()[0]
        same = diff == 0
        if not same:
            raise SystemExit(f"the floor query and dbt disagree on {diff} rows: the comparison would be meaningless")
    by = {s["stage"]: s for s in stages}
    pipeline = ("generate", "load_sources", "dbt_features")
    return {
        "business": business,
        "usage_shape": declared(business).sources.events.shape,
        "customers": customers,
        "rows": rows,
        "floor_features": len(feature_columns),
        "stages": stages,
        "pipeline_seconds": round(sum(by[s]["seconds"] for s in pipeline), 1),
        "pipeline_peak_rss_mib": max(by[s]["peak_rss_mib"] for s in pipeline),
        "dbt_over_floor": round(by["dbt_features"]["seconds"] / by["floor_query"]["seconds"], 2),
        "floor_equals_dbt": same,
    }


def markdown(results: list[dict]) -> str:
    lines = [
        "| business (usage shape) | customers | usage rows | features (floor) | generate | load + contracts | dbt features | dbt tests | floor query | dbt / floor | generation → scoring_features | peak memory |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        by = {s["stage"]: s for s in r["stages"]}

        def cell(s: str, by: dict = by) -> str:
            return f"{by[s]['seconds']:.1f} s, {by[s]['peak_rss_mib'] / 1024:.1f} GiB"

        lines.append(
            f"| {r['business']} ({r['usage_shape']}) | {r['customers']:,} | {r['rows']['usage_rows']:,} | "
            f"{r['rows']['features']} ({r['floor_features']}) | {cell('generate')} | {cell('load_sources')} | "
            f"{cell('dbt_features')} | {cell('dbt_tests')} | {cell('floor_query')} | {r['dbt_over_floor']:.2f}× | "
            f"{r['pipeline_seconds']:.0f} s | {r['pipeline_peak_rss_mib'] / 1024:.1f} GiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--business", nargs="+", default=["saas_b2b", "consumer_app"], help="built-in businesses to measure"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed afterwards)")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "benchmarks" / "results" / "data_layer.json",
        help="results file; the runs are added to the earlier ones it holds",
    )
    parser.add_argument(
        "--memory-limit",
        default=os.environ.get("CHURN_PLATFORM_DUCKDB_MEMORY_LIMIT", "8GB"),
        help="DuckDB memory limit for every stage (the platform's CHURN_PLATFORM_DUCKDB_MEMORY_LIMIT)",
    )
    args = parser.parse_args()
    work_root = args.work or Path(tempfile.mkdtemp(prefix="churn-bench-"))
    code = code_version()
    results = []
    try:
        for business in args.business:
            for i, n in enumerate(sorted(args.sizes)):
                print(f"== {business}: {n:,} customers x 365 days", flush=True)
                work = work_root / f"{business}-{n}"
                result = bench_size(business, n, work, check_equal=(i == 0), memory_limit=args.memory_limit)
                result.update(code=code, duckdb_memory_limit=args.memory_limit)
                for s in result["stages"]:
                    print(f"  {s['stage']:<14} {s['seconds']:>8.1f} s   peak {s['peak_rss_mib']:>9.1f} MiB", flush=True)
                print(f"  dbt features / floor: {result['dbt_over_floor']:.2f}x", flush=True)
                results.append(result)
                shutil.rmtree(work, ignore_errors=True)
    finally:
        if args.work is None:
            shutil.rmtree(work_root, ignore_errors=True)
    for business in args.business:
        mine = [r for r in results if r["business"] == business]
        if len(mine) > 1:
            a, b = mine[0], mine[-1]
            growth = (b["pipeline_seconds"] / a["pipeline_seconds"]) / (b["customers"] / a["customers"])
            print(f"{business}: time growth {a['customers']:,} → {b['customers']:,}: {growth:.2f} of linear")
    add_runs(
        args.out,
        results,
        "each row one run of benchmarks/data_layer.py; the memory limit applies to the load, dbt and floor "
        "stages; 'code' says which version of the platform was measured",
    )
    print("\n" + markdown(results))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
