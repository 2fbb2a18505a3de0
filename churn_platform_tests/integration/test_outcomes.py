"""The feedback loop: the real performance of matured predictions, with its check. (Which
predictions have matured, and how they turned out, is the dbt model churn_outcomes, with its
dbt unit test.)"""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from churn_platform.defs.monitoring import model_performance
from churn_platform.defs.resources import DuckDBWarehouseResource, MonitoringPolicy
from churn_platform.monitoring.outcomes import latest_judgeable, performance


def synthetic_outcomes(informative: bool, n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.6, n)
    y = rng.random(n) < (p if informative else 0.3)
    return pd.DataFrame(
        {
            "source": "batch",
            "customer_id": [str(i) for i in range(n)],
            "as_of": pd.Timestamp("2025-09-01"),
            "model_version": "4",
            "churn_probability": p,
            "matured": True,
            "churned": pd.array(y, dtype="boolean"),
        }
    )


def test_performance_per_version_and_month():
    perf = performance(synthetic_outcomes(True))
    (row,) = perf.to_dict("records")
    assert row["model_version"] == "4" and row["predictions"] == 600
    assert 0.65 < row["roc_auc"] < 0.9 and row["top_decile_lift"] > 1.3
    assert abs(row["mean_predicted"] - row["observed_rate"]) < 0.05 and row["ece"] < 0.08
    assert latest_judgeable(perf, min_rows=601) is None


@pytest.mark.parametrize(("informative", "passed"), [(True, True), (False, False)])
def test_the_performance_check_fails_below_the_floor(tmp_path, informative, passed):
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    warehouse.write_table("monitoring", "churn_outcomes", synthetic_outcomes(informative))
    result = dg.materialize(
        [model_performance],
        resources={"warehouse": warehouse, "policy": MonitoringPolicy()},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    (check,) = result.get_asset_check_evaluations()
    assert check.passed is passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert ("reaches the floor" if passed else "is below the floor") in check.description
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["model_version"].value == "4" and meta["matured_predictions"].value == 600


def test_nothing_matured_is_nothing_to_judge(tmp_path):
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    warehouse.write_table("monitoring", "churn_outcomes", synthetic_outcomes(True).assign(matured=False))
    result = dg.materialize(
        [model_performance],
        resources={"warehouse": warehouse, "policy": MonitoringPolicy()},
        instance=dg.DagsterInstance.ephemeral(),
    )
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and "nothing to judge yet" in check.description
