"""End to end: the real CLI materialized the whole graph; check what it left behind."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from churn_platform.ml.registry import MLflowLocation, load_by_alias
from churn_platform.settings import CHAMPION_ALIAS, EXPERIMENT_NAME, REGISTERED_MODEL_NAME
from churn_platform_tests.business import B2B, CATALOGUE, GENERATED_NAME

pytestmark = pytest.mark.slow


def test_report_counts_match_the_source_files(e2e):
    for role in B2B.present:
        assert e2e.report["sources"][role] == len(pd.read_parquet(e2e.sources / f"{GENERATED_NAME[role]}.parquet"))
    assert e2e.report["status"] == "SUCCESS" and e2e.report["failures"] == []
    assert e2e.report["business_name"] == "saas_b2b"


def test_the_simulations_ground_truth_reaches_the_model_asset(e2e):
    # The sources were generated, so the simulation's ground-truth resource gives churn_model its oracle line.
    model = e2e.report["model"]
    assert 0.5 < model["oracle_roc_auc"] <= 1.0
    assert model["model_over_oracle"] == pytest.approx(model["roc_auc"] / model["oracle_roc_auc"], rel=0.05)


def test_contracts_quarantine_exactly_the_injected_faults_and_counts_reconcile(e2e):
    faults = pd.read_parquet(e2e.sources / "_ground_truth" / "faults.parquet")
    with duckdb.connect(str(e2e.settings.warehouse_path), read_only=True) as con:
        for role in B2B.present:
            c = e2e.report["contracts"][role]
            assert c["received"] == c["accepted"] + c["quarantined"]
            injected = int((faults.source == GENERATED_NAME[role]).sum())
            # The contacts are empty before a first campaign: nothing to break.
            assert c["quarantined"] == injected and (injected > 0 or (role == "actions" and c["received"] == 0))
            assert con.execute(f"select count(*) from raw.{role}").fetchone()[0] == c["accepted"]
            rules = con.execute(
                "select r, count(*) from (select unnest(string_split(quarantine_reason, '; ')) as r "
                f"from quarantine.{role}) group by r"
            ).fetchall()
            assert dict(rules) == c["rules"]
            # Each injected fault breaks one rule: as many reasons as quarantined rows.
            assert sum(c["reasons"].values()) == c["quarantined"]


def test_warehouse_holds_raw_and_feature_tables(e2e):
    with duckdb.connect(str(e2e.settings.warehouse_path), read_only=True) as con:
        for table, rows in e2e.report["tables"].items():
            schema = {"churn_scores": "scores", "business_metrics_monthly": "business"}.get(table, "marts")
            assert rows > 0
            assert con.execute(f"select count(*) from {schema}.{table}").fetchone()[0] == rows
        # Every active customer at the latest snapshot is scored, by the champion.
        assert e2e.report["tables"]["churn_scores"] == e2e.report["tables"]["scoring_features"]
        versions = con.execute("select distinct model_version from scores.churn_scores").fetchall()
        assert versions == [(str(e2e.report["model"]["model_version"]),)]
        columns = {r[0] for r in con.execute("describe marts.scoring_features").fetchall()}
        assert set(CATALOGUE.names) <= columns
        # The scored population is active at the latest snapshot.
        cancelled_before = con.execute(
            """select count(*) from marts.scoring_features f join intermediate.int_customer_churn c using (customer_id)
               where c.churn_date < f.snapshot_date"""
        ).fetchone()[0]
        assert cancelled_before == 0
        label_rate = con.execute("select avg(churned_within_horizon) from marts.training_set").fetchone()[0]
        assert 0.01 < label_rate < 0.3


def test_dbt_tests_ran_as_asset_checks_and_passed(e2e):
    assert e2e.report["checks"]["failed"] == 0, e2e.report["failed_checks"]
    assert e2e.report["checks"]["passed"] >= 45


def test_champion_in_the_registry_is_the_version_the_run_registered(e2e):
    location = MLflowLocation(e2e.settings.mlflow_tracking_uri, EXPERIMENT_NAME)
    loaded = load_by_alias(location, REGISTERED_MODEL_NAME, CHAMPION_ALIAS)
    assert loaded.version == str(e2e.report["model"]["model_version"])
    assert e2e.report["model"]["registered_model"] == REGISTERED_MODEL_NAME
    # The model learned the generator's signal on the time-based holdout.
    assert e2e.report["model"]["roc_auc"] > 0.7
    with duckdb.connect(str(e2e.settings.warehouse_path), read_only=True) as con:
        scoring = con.execute("select * from marts.scoring_features").df()
    proba = loaded.predict_proba(scoring)
    assert len(proba) == len(scoring)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert proba.std() > 0.01


def test_mlflow_has_a_parent_run_with_one_child_per_candidate(e2e):
    import mlflow

    MLflowLocation(e2e.settings.mlflow_tracking_uri, EXPERIMENT_NAME).activate()
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT_NAME])
    children = runs[runs["tags.mlflow.parentRunId"].notna()]
    assert set(children["params.candidate"]) == {"lightgbm", "logistic_regression", "random_forest"}
    assert children["metrics.test_roc_auc"].notna().all()
    # One more child holds the selected candidate, calibrated: the registered version.
    selected = children[children["tags.churn_platform.kind"] == "selected"]
    assert len(selected) == 1 and selected["run_id"].iloc[0] == e2e.report["model"]["mlflow_run_id"]


def test_the_first_version_passed_the_promotion_gate(e2e):
    model = e2e.report["model"]
    assert model["gate_decision"] == "promoted" and model["alias"] == "champion"
    assert "first model version" in model["gate_reason"]
    assert model["champion_version"] == "none"
    assert model["calibration"].startswith("sigmoid") and 0 <= model["ece"] < 0.1


def test_the_model_is_compared_with_the_oracle(e2e):
    # Generated sources carry the true churn probabilities: the run reports how much of the
    # achievable ranking the model found on the holdout.
    model = e2e.report["model"]
    assert 0.5 < model["oracle_roc_auc"] <= 1.0
    assert model["model_over_oracle"] > 0.85, model


def test_drift_report_is_saved_and_its_share_is_metadata(e2e):
    drift = e2e.report["drift"]
    path = Path(drift["report_path"])
    assert path.exists() and path.stat().st_size > 10_000
    assert "<html" in path.read_text(errors="ignore")[:2000].lower()
    assert 0.0 <= drift["drift_share"] <= 1.0
    # Every feature is compared, but those empty or constant on a side (listed with the reason).
    assert drift["total_columns"] + len(drift["skipped_columns"]) == len(CATALOGUE.names)
    assert all("constant" in why or "empty" in why for why in drift["skipped_columns"].values())


def test_every_asset_was_materialized_in_the_instance(e2e):
    from churn_platform.apps.location import platform_definitions

    graph = platform_definitions(e2e.settings).resolve_asset_graph()
    with dg.DagsterInstance.from_config(str(e2e.settings.dagster_home)) as instance:
        missing = [
            k.to_user_string()
            for k in graph.get_all_asset_keys()
            if instance.get_latest_materialization_event(k) is None
        ]
        run = instance.get_run_by_id(e2e.report["dagster_run_id"])
    assert missing == []
    assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS


DBT_INVOCATIONS_PER_RUN = 3
"""The daily usage models, the other models, the monitoring models: one ``dbt build`` each."""
FULL_PARSES_PER_NEW_HOME = 1
"""Only a home's first dbt invocation parses the project; the others reuse its saved parse."""
EVENTS_PER_PARTITION = 3
"""A materialization per usage partition of the events source and of the two daily dbt models."""
EVENTS_BESIDES_PARTITIONS = 462
"""Everything else a run writes: planned events, steps, outputs, checks, the other assets (the
survival model and its dbt table, the online comparison, the estimated performance and the segment drift among them), logs."""


def test_a_run_stays_within_its_dbt_parse_and_event_budget(e2e):
    """The counts benchmarks/overhead.py reports (and the README's overhead table documents), held
    as a budget: a change that adds a dbt parse or a per-partition event fails here, whatever the
    machine's speed."""
    run_id = e2e.report["dagster_run_id"]
    artifacts = e2e.home / "reports" / "dbt" / run_id
    invocations = list(artifacts.rglob("run_results.json"))
    full_parses = sum(
        "Starting full parse" in line
        for log in artifacts.rglob("dbt.log*")
        for line in log.read_text(errors="replace").splitlines()
    )
    assert len(invocations) == DBT_INVOCATIONS_PER_RUN
    assert full_parses <= FULL_PARSES_PER_NEW_HOME, f"{full_parses} full dbt parses in one run"
    with dg.DagsterInstance.from_config(str(e2e.settings.dagster_home)) as instance:
        written = len(instance.all_logs(run_id))
        partitions = len(instance.get_materialized_partitions(dg.AssetKey("events")))
    budget = EVENTS_PER_PARTITION * partitions + EVENTS_BESIDES_PARTITIONS
    assert partitions >= 300
    assert written <= budget, f"the run wrote {written} events, over its budget of {budget}"


def test_dbt_docs_generate_and_every_model_and_column_is_described(e2e, tmp_path):
    """`dbt docs generate` (what `make docs` serves) works on the warehouse the run built, and
    every model, source and column that exists in the warehouse (from the catalog) is described."""
    import json

    from churn_platform.apps.docs_site import generate_docs
    from churn_platform.business.catalogue import build_catalogue, dbt_vars

    business = dbt_vars(B2B, build_catalogue(B2B), "2025-01-01")
    target = generate_docs(e2e.settings.warehouse_path, tmp_path / "docs", business, B2B)
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    assert (target / "index.html").exists()
    undescribed = []
    for uid, node in manifest["nodes"].items():
        if node["resource_type"] != "model":
            continue
        if not node.get("description"):
            undescribed.append(node["name"])
        documented = {c: v.get("description") for c, v in node["columns"].items()}
        for column in catalog["nodes"][uid]["columns"]:
            if not documented.get(column.lower()):
                undescribed.append(f"{node['name']}.{column}")
    for uid, source in manifest["sources"].items():
        if not source.get("description"):
            undescribed.append(f"source {source['name']}")
        documented = {c: v.get("description") for c, v in source["columns"].items()}
        for column in catalog["sources"][uid]["columns"]:
            if not documented.get(column.lower()):
                undescribed.append(f"source {source['name']}.{column}")
    assert undescribed == []
    assert {e["name"] for e in manifest["exposures"].values()} == {
        "churn_model",
        "prediction_api",
        "feature_drift_report",
        "churn_risk_worklist",
    }


def test_predictions_do_not_depend_on_row_order(e2e):
    location = MLflowLocation(e2e.settings.mlflow_tracking_uri, EXPERIMENT_NAME)
    champion = load_by_alias(location, REGISTERED_MODEL_NAME, CHAMPION_ALIAS)
    with duckdb.connect(str(e2e.settings.warehouse_path), read_only=True) as con:
        scoring = con.execute("select * from marts.scoring_features order by customer_id").df()
    shuffled = scoring.sample(frac=1.0, random_state=5)
    in_order = pd.Series(champion.predict_proba(scoring), index=scoring["customer_id"])
    reordered = pd.Series(champion.predict_proba(shuffled), index=shuffled["customer_id"]).loc[in_order.index]
    np.testing.assert_array_equal(reordered.to_numpy(), in_order.to_numpy())


@pytest.mark.parametrize(("feature", "step"), [("failed_payments_90d", 1), ("days_since_last_activity", 14)])
def test_known_effects_have_the_right_direction(e2e, feature, step):
    # The generator's hazard rises with payment failures and with disengagement: raising either,
    # all else equal, never lowers the champion's predicted risk, for any customer.
    location = MLflowLocation(e2e.settings.mlflow_tracking_uri, EXPERIMENT_NAME)
    champion = load_by_alias(location, REGISTERED_MODEL_NAME, CHAMPION_ALIAS)
    with duckdb.connect(str(e2e.settings.warehouse_path), read_only=True) as con:
        scoring = con.execute("select * from marts.scoring_features order by customer_id").df()
    before = champion.predict_proba(scoring)
    after = champion.predict_proba(scoring.assign(**{feature: scoring[feature] + step}))
    assert (after >= before - 1e-12).all(), f"{int((after < before - 1e-12).sum())} customers got a lower risk"
    assert after.mean() > before.mean()


def test_business_metrics_match_an_independent_computation(e2e):
    with duckdb.connect(str(e2e.settings.warehouse_path), read_only=True) as con:
        mart = con.execute("select * from business.business_metrics_monthly order by month").df()
        crm = con.execute(
            "select customer_id, cast(signup_at as date) as signup_date, cast(cancelled_at as date) as cancelled_at "
            "from staging.stg_accounts"
        ).df()
        invoices = con.execute("select customer_id, invoice_date, amount from staging.stg_invoices").df()
    assert len(mart) >= 6 and mart["is_complete_month"].iloc[:-1].all()
    signup = crm.groupby("customer_id")["signup_date"].min().pipe(pd.to_datetime)
    churn = crm.groupby("customer_id")["cancelled_at"].min().pipe(pd.to_datetime)
    invoices["month"] = pd.to_datetime(invoices["invoice_date"]).dt.to_period("M").dt.to_timestamp()
    mrr = invoices.groupby(["customer_id", "month"])["amount"].sum()
    for _, row in mart.iloc[[1, len(mart) // 2, -2]].iterrows():
        month = pd.Timestamp(row["month"])
        after = month + pd.DateOffset(months=1)
        active = signup.index[
            (signup < month) & (churn.reindex(signup.index).isna() | (churn.reindex(signup.index) >= month))
        ]
        churned = [c for c in active if pd.notna(churn.get(c)) and month <= churn[c] < after]
        previous = mrr.xs(month - pd.DateOffset(months=1), level="month").reindex(active).fillna(0)
        current = mrr.xs(month, level="month").reindex(active).fillna(0)
        assert row["customers_at_start"] == len(active)
        assert row["churned_customers"] == len(churned)
        assert row["churn_rate"] == pytest.approx(len(churned) / len(active), abs=1e-12)
        assert row["mrr_churn_rate"] == pytest.approx(previous[churned].sum() / previous.sum(), rel=1e-9)
        paying = previous.index[previous > 0]
        assert row["net_revenue_retention"] == pytest.approx(current[paying].sum() / previous.sum(), rel=1e-9)
    business = e2e.report["business"]
    latest = mart[mart["is_complete_month"]].iloc[-1]
    assert business["latest_complete_month"] == str(latest["month"])[:10]
    assert business["churn_rate"] == pytest.approx(latest["churn_rate"])
    assert Path(business["chart_path"]).stat().st_size > 10_000
