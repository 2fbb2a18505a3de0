"""Model quality of the built-in businesses against their ground truth, the way the platform
builds and trains: generate the business, load every source through the contracts of its
declaration, build `training_set` with dbt, train the candidates, select and calibrate, and
compare the selected model's holdout ROC-AUC with the oracle's (the generator's true churn
probabilities ranking the same rows).

For the consumer app it also trains the same candidates on the same business with its event
log collapsed to one count per customer and day (a daily shape with one measure, `events`), the
shape a user without the event types would have: the per-event-type features must beat it.

    python benchmarks/business_quality.py                          # B2B and the app, 20,000 customers
    python benchmarks/business_quality.py --customers 5000 --businesses consumer_app

Prints a table and writes benchmarks/results/business_quality.json. Targets: the B2B example at
or above 0.97 of the oracle at 20,000 customers; the consumer app at or above 0.95; the app's
per-type features above the collapsed ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from churn_platform.business.catalogue import (  # noqa: E402
    build_catalogue,
    dbt_vars,
)
from churn_platform.business.declaration import Declaration, load_declaration, parse_declaration  # noqa: E402
from churn_platform.defs.dbt import dbt_executable, event_types_in  # noqa: E402
from churn_platform.defs.resources import DuckDBWarehouseResource, SourceResource  # noqa: E402
from churn_platform.ml.training import calibrate_best, features_frame, select_best, train_candidates  # noqa: E402
from churn_platform.settings import DBT_PROJECT_DIR  # noqa: E402
from churn_platform.simulation.businesses import declaration_path  # noqa: E402
from churn_platform.simulation.generator import DEFAULT_START, GeneratorConfig, generate_to_dir  # noqa: E402
from churn_platform.simulation.oracle import load_truth, oracle_metrics  # noqa: E402
from churn_platform.sources.contracts import PartitionSlice  # noqa: E402
from churn_platform.warehouse.base import check_declared_sources  # noqa: E402

COLLAPSED = """
business: consumer_app_collapsed
customer_id_type: text
sources:
  accounts:
    location: users
    columns: {customer_id: user_key, signup_time: created_at}
    attributes:
      country: {type: categorical}
      platform: {type: categorical}
      acquisition_source: {type: categorical}
  subscriptions:
    location: subscriptions
    columns: {subscription_id: subscription_ref, customer_id: user_key, start_time: start_ts, end_time: end_ts,
              mrr: price_eur_month, plan: plan_name, billing_period: billing_cycle, quantity: seats, discount: discount_rate}
  events:
    location: daily_events
    shape: daily
    columns: {customer_id: user_key, time: day}
    measures:
      events: {description: events of any type}
  invoices:
    location: payments
    columns: {invoice_id: payment_ref, customer_id: user_key, time: charged_at, amount: amount_eur}
label: {horizon_days: 30, cancellation: subscriptions}
"""


def build_training_set(declaration: Declaration, sources: Path, work: Path):
    """Load the sources through their contracts and build `training_set` with dbt: the frame, the
    catalogue and the seconds each step took."""
    started = time.perf_counter()
    warehouse_path = work / f"{declaration.business}.duckdb"
    warehouse = DuckDBWarehouseResource(path=str(warehouse_path))
    source = SourceResource(sources=str(sources))
    year = PartitionSlice(
        DEFAULT_START, DEFAULT_START + dt.timedelta(days=365), DEFAULT_START, DEFAULT_START + dt.timedelta(days=365)
    )
    with warehouse.connect() as con:
        check_declared_sources(con, source, declaration, partition=year)
    loaded = time.perf_counter()
    # The event types the platform would take (its rule, in one place), from the loaded usage.
    catalogue = build_catalogue(declaration, *event_types_in(warehouse, declaration))
    variables = {"warehouse_path": str(warehouse_path), **dbt_vars(declaration, catalogue, DEFAULT_START.isoformat())}
    subprocess.run(
        [
            dbt_executable(),
            "run",
            "--select",
            "+training_set",
            "--target-path",
            str(work / "target"),
            "--quiet",
            "--vars",
            json.dumps(variables),
        ],
        cwd=DBT_PROJECT_DIR,
        env={**os.environ, "DBT_LOG_PATH": str(work / "dbt_logs")},
        check=True,
    )
    built = time.perf_counter()
    return warehouse.read_table("marts", "training_set"), catalogue, {"load": loaded - started, "dbt": built - loaded}


def build_and_train(declaration: Declaration, sources: Path, work: Path) -> dict:
    """Load, build `training_set`, train; the selected model's and the oracle's ROC-AUC."""
    frame, catalogue, seconds = build_training_set(declaration, sources, work)
    built = time.perf_counter()
    split, results = train_candidates(frame, catalogue)
    best = select_best(results)
    selected = calibrate_best(split, best, catalogue)
    proba = selected.model.predict_proba(features_frame(split.test, catalogue))[:, 1]
    oracle = oracle_metrics(load_truth(sources / "_ground_truth"), split.test, proba)
    return {
        "business": declaration.business,
        "features": len(catalogue),
        "training_rows": len(frame),
        "selected": best.name,
        "roc_auc": selected.test_metrics["roc_auc"],
        "oracle_roc_auc": oracle["oracle_roc_auc"],
        "model_over_oracle": oracle["model_over_oracle"],
        "candidates": {r.name: r.test_metrics["roc_auc"] for r in results},
        "seconds": {**seconds, "train": time.perf_counter() - built},
    }


def collapse_events(sources: Path) -> None:
    """Write the app's events as one count per customer and day (``daily_events.parquet``)."""
    import duckdb

    with duckdb.connect() as con:
        con.execute(
            f"copy (select user_key, cast(event_ts as date) as day, count(*) as events "
            f"from read_parquet('{sources / 'app_events.parquet'}') group by 1, 2 order by 2, 1) "
            f"to '{sources / 'daily_events.parquet'}' (format parquet)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--businesses", nargs="+", default=["saas_b2b", "consumer_app"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "business_quality.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="quality_") as tmp:
        for business in args.businesses:
            work = Path(tmp) / business
            sources = work / "sources"
            t = time.perf_counter()
            generate_to_dir(GeneratorConfig(customers=args.customers, days=365, seed=7, business=business), sources)
            generated = time.perf_counter() - t
            result = build_and_train(load_declaration(declaration_path(business)), sources, work)
            result["seconds"]["generate"] = generated
            rows.append(result)
            print(json.dumps(result), flush=True)
            if business == "consumer_app":
                collapse_events(sources)
                collapsed = build_and_train(parse_declaration(COLLAPSED, "collapsed"), sources, work)
                rows.append(collapsed)
                print(json.dumps(collapsed), flush=True)
    print(f"\n{args.customers:,} customers, 365 days, seed 7 ({platform.processor() or platform.machine()})")
    print(f"{'business':<26} {'features':>8} {'rows':>9} {'selected':<20} {'ROC-AUC':>8} {'oracle':>7} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['business']:<26} {r['features']:>8} {r['training_rows']:>9,} {r['selected']:<20} "
            f"{r['roc_auc']:>8.4f} {r['oracle_roc_auc']:>7.4f} {r['model_over_oracle']:>6.3f}"
        )
    by_name = {r["business"]: r for r in rows}
    if "consumer_app" in by_name and "consumer_app_collapsed" in by_name:
        full, flat = by_name["consumer_app"], by_name["consumer_app_collapsed"]
        print(
            f"per-event-type features over one daily count, same candidates: ROC-AUC {full['roc_auc']:.4f} vs "
            f"{flat['roc_auc']:.4f} ({full['roc_auc'] - flat['roc_auc']:+.4f})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"customers": args.customers, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
