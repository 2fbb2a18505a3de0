"""The feature drift report's check: within the threshold it passes, over it it warns."""

from __future__ import annotations

import dagster as dg
import pytest

from churn_platform.business.catalogue import TIME_COLUMN
from churn_platform.defs.monitoring import feature_drift_report
from churn_platform.defs.resources import DuckDBWarehouseResource, MonitoringPolicy, ReportStore
from churn_platform_tests.business import CATALOGUE, business_resource, write_catalogue
from churn_platform_tests.unit.test_training import make_training_set


def run(tmp_path, current, threshold: float, sample_rows: int = MonitoringPolicy().drift_sample_rows):
    tmp_path.mkdir(parents=True, exist_ok=True)
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    reference = make_training_set(rows_per_snapshot=400, seed=5)
    warehouse.write_table("marts", "training_set", reference)
    warehouse.write_table("marts", "scoring_features", current(reference))
    write_catalogue(warehouse)
    result = dg.materialize(
        [feature_drift_report],
        resources={
            "warehouse": warehouse,
            "reports": ReportStore(reports_dir=str(tmp_path)),
            "policy": MonitoringPolicy(drift_threshold=threshold, drift_sample_rows=sample_rows),
            "business": business_resource(),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    (check,) = result.get_asset_check_evaluations()
    return check, result.get_asset_materialization_events()[0].materialization.metadata


def latest(frame):
    return frame[frame[TIME_COLUMN] == frame[TIME_COLUMN].max()]


def shifted(frame):
    out = latest(frame).copy()
    for col in CATALOGUE.numeric:
        out[col] = out[col] * 3 + 5
    return out


@pytest.mark.parametrize(("current", "passed"), [(latest, True), (shifted, False)])
def test_drift_over_the_threshold_warns(tmp_path, current, passed):
    check, _ = run(tmp_path, current, threshold=0.3)
    assert check.passed is passed and check.severity == dg.AssetCheckSeverity.WARN
    assert ("within" if passed else "over") in check.description
    assert (tmp_path / "feature_drift_report.html").exists()


def test_a_side_over_the_sample_size_is_compared_through_a_seeded_sample(tmp_path):
    """The training set (many snapshots) is sampled down; the latest snapshot (fewer rows than the
    sample) is compared whole; the verdict still tells a shift from none, and a second run compares
    the same rows (the same scores)."""
    reference_rows = len(make_training_set(rows_per_snapshot=400, seed=5))
    check, meta = run(tmp_path / "a", latest, threshold=0.3, sample_rows=1_000)
    assert check.passed
    assert meta["reference_rows"].value == reference_rows > 1_000
    assert meta["reference_rows_compared"].value == 1_000
    assert meta["current_rows_compared"].value == meta["current_rows"].value == 400
    _, meta_again = run(tmp_path / "b", latest, threshold=0.3, sample_rows=1_000)
    assert meta_again["column_drift"].value == meta["column_drift"].value
    shifted_check, _ = run(tmp_path / "c", shifted, threshold=0.3, sample_rows=1_000)
    assert not shifted_check.passed


def test_empty_and_constant_columns_are_skipped_and_listed(tmp_path):
    def degenerate(frame):
        out = latest(frame).copy()
        out["avg_satisfaction_90d"] = None  # a business without ratings, or none this month
        return out

    def constant(reference):
        out = degenerate(reference)
        out["open_tickets"] = 0.0
        return out

    def run_with_constant(tmp_path):
        warehouse = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
        reference = make_training_set(rows_per_snapshot=400, seed=5).assign(open_tickets=0.0)
        warehouse.write_table("marts", "training_set", reference)
        warehouse.write_table("marts", "scoring_features", constant(reference))
        write_catalogue(warehouse)
        return dg.materialize(
            [feature_drift_report],
            resources={
                "warehouse": warehouse,
                "reports": ReportStore(reports_dir=str(tmp_path)),
                "policy": MonitoringPolicy(drift_threshold=0.3),
                "business": business_resource(),
            },
            instance=dg.DagsterInstance.ephemeral(),
        )

    result = run_with_constant(tmp_path)
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    skipped = meta["skipped_columns"].value
    assert skipped["avg_satisfaction_90d"] == "empty in the current data"
    assert skipped["open_tickets"].startswith("constant")
    assert meta["total_columns"].value == len(CATALOGUE) - 2
