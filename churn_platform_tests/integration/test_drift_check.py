"""The feature drift report's check: within the threshold it passes, over it it warns."""

from __future__ import annotations

import dagster as dg
import pytest

from churn_platform.business.catalogue import TIME_COLUMN
from churn_platform.defs.monitoring import feature_drift_report
from churn_platform.defs.resources import DuckDBWarehouseResource, MonitoringPolicy, ReportStore
from churn_platform_tests.business import CATALOGUE
from churn_platform_tests.unit.test_training import make_training_set


def run(tmp_path, current, threshold: float) -> dg.AssetCheckEvaluation:
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    reference = make_training_set(rows_per_snapshot=400, seed=5)
    warehouse.write_table("marts", "training_set", reference)
    warehouse.write_table("marts", "scoring_features", current(reference))
    result = dg.materialize(
        [feature_drift_report],
        resources={
            "warehouse": warehouse,
            "reports": ReportStore(reports_dir=str(tmp_path)),
            "policy": MonitoringPolicy(drift_threshold=threshold),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    (check,) = result.get_asset_check_evaluations()
    return check


def latest(frame):
    return frame[frame[TIME_COLUMN] == frame[TIME_COLUMN].max()]


def shifted(frame):
    out = latest(frame).copy()
    for col in CATALOGUE.numeric:
        out[col] = out[col] * 3 + 5
    return out


@pytest.mark.parametrize(("current", "passed"), [(latest, True), (shifted, False)])
def test_drift_over_the_threshold_warns(tmp_path, current, passed):
    check = run(tmp_path, current, threshold=0.3)
    assert check.passed is passed and check.severity == dg.AssetCheckSeverity.WARN
    assert ("within" if passed else "over") in check.description
    assert (tmp_path / "feature_drift_report.html").exists()
