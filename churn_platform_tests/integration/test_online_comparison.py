"""A challenger against the champion on the same live records, from a prediction log with rollout
arms, and the asset's check when a challenger ranks worse once outcomes mature; the performance
estimated before outcomes mature, and its check."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from churn_platform.defs.monitoring import ESTIMATE_CHECK, estimated_performance, online_comparison
from churn_platform.defs.resources import DuckDBWarehouseResource, MLflowResource, MonitoringPolicy, Notifier
from churn_platform.monitoring.online import MIN_LABELLED_PAIRS, compare_online, pairs_of


def rollout_log(n: int = 2_000, seed: int = 0, challenger_noise: float = 0.3, mode: str = "shadow"):
    """A champion (v1) and a challenger (v2) scoring the same customers, each once, with their true
    outcome: the champion's log-odds follow the truth, the challenger's add ``challenger_noise``."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(-1.5, 1.2, n)
    churned = rng.random(n) < 1 / (1 + np.exp(-truth))

    def p(noise):
        return 1 / (1 + np.exp(-(truth + rng.normal(0, noise, n))))

    ids = [f"c{i}" for i in range(n)]
    common = {"request_id": [f"r{i}" for i in range(n)], "customer_id": ids, "as_of": pd.Timestamp("2025-10-01")}
    logged = pd.Timestamp("2025-10-01 10:00", tz="UTC")
    champion = pd.DataFrame(
        {**common, "model_version": "1", "arm": "champion", "served": mode != "canary", "churn_probability": p(0.05)}
    )
    challenger = pd.DataFrame(
        {
            **common,
            "model_version": "2",
            "arm": mode,
            "served": mode == "canary",
            "churn_probability": p(challenger_noise),
        }
    )
    log = pd.concat([champion, challenger], ignore_index=True).assign(logged_at=logged, endpoint="/v1/predict")
    # A record without an id cannot be paired.
    log = pd.concat([log, log.head(1).assign(customer_id=None, request_id="anonymous")], ignore_index=True)
    outcomes = pd.DataFrame(
        {"customer_id": ids, "as_of": pd.Timestamp("2025-10-01"), "matured": True, "churned": churned}
    )
    return log, outcomes


def test_the_versions_are_compared_on_the_same_records_and_on_their_outcomes():
    log, outcomes = rollout_log(challenger_noise=0.3)
    assert len(pairs_of(log)) == 2_000
    (c,) = compare_online(log)
    assert (c.challenger_version, c.champion_version, c.mode, c.pairs) == ("2", "1", "shadow", 2_000)
    assert 0.9 < c.rank_correlation < 1 and 0.5 < c.top_decile_agreement < 1 and c.mean_abs_difference > 0
    assert c.labelled_pairs == 0 and c.roc_auc_challenger is None  # no outcomes yet
    (judged,) = compare_online(log, outcomes)
    assert judged.labelled_pairs == 2_000
    assert judged.roc_auc_champion > judged.roc_auc_challenger and judged.roc_auc_difference < 0
    assert judged.ece_champion is not None and judged.ece_challenger is not None
    # Too few matured pairs: the performance is not compared yet.
    (few,) = compare_online(log, outcomes.head(MIN_LABELLED_PAIRS - 1))
    assert few.labelled_pairs == MIN_LABELLED_PAIRS - 1 and few.roc_auc_champion is None
    # Outcomes not yet matured do not count.
    (young,) = compare_online(log, outcomes.assign(matured=False, churned=None))
    assert young.labelled_pairs == 0
    # Without a rollout there is nothing to compare.
    assert compare_online(log[log["arm"] == "champion"]) == []


def test_a_rollout_is_judged_on_its_shadow_and_canary_pairs_pooled():
    """A version first in shadow, then in canary: reported by mode, and judged on both together,
    each customer and day once (the latest score)."""
    shadow, outcomes = rollout_log(1_000, seed=1, mode="shadow")
    canary, _ = rollout_log(1_000, seed=1, mode="canary")
    canary = canary.assign(
        request_id=canary["request_id"] + "-canary", logged_at=pd.Timestamp("2025-10-02 10:00", tz="UTC")
    )
    log = pd.concat([shadow, canary], ignore_index=True)
    by_mode = compare_online(log, outcomes)
    assert sorted((c.mode, c.pairs) for c in by_mode) == [("canary", 1_000), ("shadow", 1_000)]
    (pooled,) = compare_online(log, outcomes, by_mode=False)
    assert (pooled.challenger_version, pooled.mode, pooled.pairs) == ("2", "canary+shadow", 2_000)
    assert pooled.customers == 1_000 and pooled.labelled_pairs == 1_000
    # The latest pair of each customer and day is the one judged: the canary's.
    canary_only = next(c for c in by_mode if c.mode == "canary")
    assert pooled.roc_auc_challenger == pytest.approx(canary_only.roc_auc_challenger)


def materialize(tmp_path, log, outcomes, mlflow_store=None):
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    warehouse.write_table("monitoring", "prediction_log", log)
    warehouse.write_table("monitoring", "churn_outcomes", outcomes)
    tmp_path.mkdir(parents=True, exist_ok=True)
    result = dg.materialize(
        [online_comparison],
        resources={
            "warehouse": warehouse,
            "policy": MonitoringPolicy(),
            "mlflow_store": mlflow_store
            or MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment_name="online"),
            "notifier": Notifier(),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    (check,) = result.get_asset_check_evaluations()
    return result.get_asset_materialization_events()[0].materialization.metadata, check, warehouse


@pytest.mark.parametrize("mode", ["shadow", "canary"])
def test_a_challenger_that_ranks_worse_on_live_customers_is_a_warning(tmp_path, mode):
    log, outcomes = rollout_log(challenger_noise=2.0, mode=mode)
    meta, check, warehouse = materialize(tmp_path, log, outcomes)
    table = warehouse.read_table("monitoring", "online_comparison")
    assert list(table["mode"]) == [mode] and table["labelled_pairs"].iloc[0] == 2_000
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert f"challenger v2 ({mode})" in check.description and "below champion v1" in check.description
    assert meta["dagster/row_count"].value == 1


def test_a_challenger_as_good_passes_and_no_rollout_says_so(tmp_path):
    log, outcomes = rollout_log(challenger_noise=0.05, seed=1)
    _, check, _ = materialize(tmp_path, log, outcomes)
    assert check.passed and "none worse than the champion" in check.description
    _, check, warehouse = materialize(tmp_path / "none", log[log["arm"] == "champion"], outcomes)
    assert check.passed and check.description == "no challenger in the prediction log"
    assert warehouse.read_table("monitoring", "online_comparison").empty


def registry_with_a_rollout(tmp_path, mode: str = "shadow"):
    """A registry whose churn_model has version 1 @champion and version 2 @rollout (tagged as the gate
    stages it); the versions' artifacts are never loaded here."""
    from mlflow import MlflowClient

    store = MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment_name="online")
    store.location.activate()
    client = MlflowClient()
    client.create_registered_model(store.registered_model_name)
    for _ in range(2):
        client.create_model_version(store.registered_model_name, source=str(tmp_path))
    client.set_registered_model_alias(store.registered_model_name, "champion", "1")
    client.set_registered_model_alias(store.registered_model_name, "rollout", "2")
    client.set_model_version_tag(store.registered_model_name, "2", "rollout_mode", mode)
    client.set_model_version_tag(store.registered_model_name, "2", "rollout_share", "0.5")
    return store, client


def aliases(client, name: str = "churn_model") -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}


@pytest.mark.parametrize(
    ("noise", "matured", "expected", "aliases_after"),
    [
        (0.05, 2_000, "promote", {"champion": "2"}),
        (2.0, 2_000, "roll back", {"champion": "1", "challenger": "2"}),
        (0.05, 100, "wait", {"champion": "1", "rollout": "2"}),
    ],
)
def test_a_staged_rollout_is_promoted_rolled_back_or_kept_waiting(tmp_path, noise, matured, expected, aliases_after):
    store, client = registry_with_a_rollout(tmp_path)
    log, outcomes = rollout_log(challenger_noise=noise, seed=2)
    meta, _, _ = materialize(tmp_path, log, outcomes.head(matured), mlflow_store=store)
    assert meta["rollout"].value == f"version 2: {expected}", meta["rollout_reason"].value
    assert aliases(client) == aliases_after
    if expected != "wait":
        tags = client.get_model_version("churn_model", "2").tags
        assert tags["rollout_decision"] == ("promoted" if expected == "promote" else "rolled back")
        assert "live ROC-AUC" in tags["rollout_reason"]
    else:
        assert "100 of 200" in meta["rollout_reason"].value


def test_the_estimate_of_a_month_without_outcomes_warns_below_the_floor(tmp_path):
    rng = np.random.default_rng(3)
    n = 3_000
    ids = [f"c{i}" for i in range(n)]
    months = ("2025-09-01", "2025-10-01", "2025-11-01")
    # September and October are scored well; November's scores are nearly uninformative.
    spreads = (1.4, 1.4, 0.2)
    history, outcomes = [], []
    for month, spread in zip(months, spreads):
        p = 1 / (1 + np.exp(-rng.normal(-1.8, spread, n)))
        history.append(
            pd.DataFrame(
                {
                    "customer_id": ids,
                    "snapshot_date": pd.Timestamp(month),
                    "churn_probability": p,
                    "model_version": "2",
                    "scored_at": pd.Timestamp(month) + pd.Timedelta(hours=6),
                }
            )
        )
        matured = month != "2025-11-01"
        outcomes.append(
            pd.DataFrame(
                {
                    "source": "batch",
                    "customer_id": ids,
                    "as_of": pd.Timestamp(month),
                    "model_version": "2",
                    "churn_probability": p,
                    "matured": matured,
                    "churned": (rng.random(n) < p) if matured else None,
                }
            )
        )
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    warehouse.write_table("scores", "churn_scores_history", pd.concat(history, ignore_index=True))
    warehouse.write_table("monitoring", "churn_outcomes", pd.concat(outcomes, ignore_index=True))
    result = dg.materialize(
        [estimated_performance],
        resources={"warehouse": warehouse, "policy": MonitoringPolicy(roc_auc_floor=0.7)},
        instance=dg.DagsterInstance.ephemeral(),
    )
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == ESTIMATE_CHECK and not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "2025-11: estimated ROC-AUC" in check.description and "is below the floor 0.70" in check.description
    assert meta["month"].value == "2025-11" and meta["model_version"].value == "2"
    assert meta["months_realised"].value == 2 and meta["mean_abs_estimate_error"].value < 0.03
    table = warehouse.read_table("monitoring", "estimated_performance")
    assert len(table) == 3 and table["estimate_error"].notna().sum() == 2
