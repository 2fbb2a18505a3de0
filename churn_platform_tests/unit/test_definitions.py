"""The Definitions: the asset graph, freshness on every asset, automation, and validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from churn_platform.apps.location import platform_definitions
from churn_platform.settings import REPO_DIR, Settings

EXPECTED_GROUPS = {
    "accounts": "sources",
    "events": "sources",
    "invoices": "sources",
    "tickets": "sources",
    "actions": "sources",
    "stg_accounts": "staging",
    "stg_events": "staging",
    "stg_invoices": "staging",
    "stg_tickets": "staging",
    "stg_actions": "staging",
    "int_account_versions": "features",
    "int_customer_churn": "features",
    "int_daily_usage": "features",
    "int_billing_events": "features",
    "int_ticket_events": "features",
    "int_monthly_mrr": "features",
    "snapshot_dates": "features",
    "feature_catalogue": "features",
    "customer_features": "features",
    "churn_labels": "features",
    "training_set": "features",
    "scoring_features": "features",
    "survival_set": "features",
    "churn_model": "ml",
    "churn_scores": "ml",
    "churn_survival": "ml",
    "retention_worklist": "decisions",
    "campaign_outcomes": "decisions",
    "campaign_effect": "decisions",
    "uplift_training_set": "decisions",
    "uplift_model": "decisions",
    "feature_drift_report": "monitoring",
    "prediction_log": "monitoring",
    "prediction_drift_report": "monitoring",
    "churn_outcomes": "monitoring",
    "model_performance": "monitoring",
    "online_comparison": "monitoring",
    "estimated_performance": "monitoring",
    "segment_drift_report": "monitoring",
    "business_metrics_monthly": "business",
    "business_health": "business",
}


@pytest.fixture(scope="module")
def defs(tmp_path_factory) -> dg.Definitions:
    return platform_definitions(Settings(home=tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="module")
def graph(defs):
    return defs.resolve_asset_graph()


def test_asset_graph_has_every_asset_in_its_group(graph):
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == EXPECTED_GROUPS


def test_every_asset_has_a_freshness_policy(graph):
    missing = [k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).freshness_policy is None]
    assert missing == []


def test_lineage_runs_from_sources_to_model_and_drift(graph):
    def parents(name: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}

    # The usage's orphan test reads the raw accounts, so the accounts are loaded first.
    assert parents("stg_events") == {"events", "accounts"}
    assert parents("int_daily_usage") == {"stg_events"}
    assert parents("churn_model") == {"training_set"}
    assert parents("feature_drift_report") == {"training_set", "scoring_features"}
    assert {"customer_features", "churn_labels"} <= parents("training_set")
    # Business health comes from the sources alone, never from a model.
    assert parents("business_metrics_monthly") == {
        "stg_accounts",
        "int_monthly_mrr",
        "int_customer_churn",
        "int_daily_usage",
    }
    assert parents("business_health") == {"business_metrics_monthly"}


def test_usage_and_its_daily_models_are_partitioned_by_day(graph):
    partitioned = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is not None}
    assert partitioned == {"events", "stg_events", "int_daily_usage"}
    for key in partitioned:
        node = graph.get(dg.AssetKey(key))
        assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition)
        assert node.backfill_policy == dg.BackfillPolicy.single_run()


def test_dbt_tests_are_asset_checks(defs):
    check_keys = defs.resolve_asset_graph().asset_check_keys
    checked_assets = {k.asset_key.to_user_string() for k in check_keys}
    assert {"stg_accounts", "customer_features", "churn_labels", "scoring_features"} <= checked_assets
    assert len(check_keys) >= 30


def test_daily_schedule_and_drift_sensor(defs):
    schedule = defs.resolve_schedule_def("daily_pipeline_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    sensor = defs.resolve_sensor_def("retrain_on_drift")
    assert sensor.job_name == "retrain_churn_model"


def test_invalid_drift_threshold_is_refused(tmp_path):
    with pytest.raises(ValueError, match="between 0 and 1"):
        platform_definitions(Settings(home=tmp_path, drift_threshold=1.5))


def test_dagster_definitions_validate_passes(tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "CHURN_PLATFORM_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_dbt_relation_names_fit_postgres_identifiers():
    """PostgreSQL cuts identifiers at 63 characters and dbt refuses longer relation names: a unit
    test runs as a relation of its own name, and an incremental model's batches as the model's
    name with a date and ``__dbt_tmp`` after it."""
    import json

    from churn_platform.defs.dbt import dbt_project, prepare_manifest
    from churn_platform_tests.business import B2B

    project = dbt_project(B2B)
    if not project.manifest_path.exists():
        prepare_manifest(project, B2B)
    manifest = json.loads(project.manifest_path.read_text())
    too_long = [t["name"] for t in manifest.get("unit_tests", {}).values() if len(t["name"]) > 63]
    too_long += [
        n["name"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and len(n["name"] + "_20250101__dbt_tmp") > 63
    ]
    assert too_long == []
