"""A source whose quarantine share exceeds the limit fails its blocking check and stops downstream assets."""

from __future__ import annotations

import dagster as dg

from churn_platform.defs.resources import DuckDBWarehouseResource, SourceResource
from churn_platform.defs.sources import build_source_asset
from churn_platform.simulation.generator import GeneratorConfig, generate, write_sources
from churn_platform_tests.business import B2B, b2b_contracts


def test_too_many_quarantined_rows_block_downstream(tmp_path):
    write_sources(generate(GeneratorConfig(customers=100, days=90, seed=5, fault_rate=0.04)), tmp_path / "src")
    usage = build_source_asset(b2b_contracts()["events"], B2B.sources.events.location, 0.05)

    @dg.asset(deps=[usage])
    def downstream_of_usage() -> None:
        return None

    resources = {
        "source": SourceResource(sources=str(tmp_path / "src")),
        "warehouse": DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb")),
    }

    def run(limit: float):
        return dg.materialize(
            [usage, downstream_of_usage],
            resources=resources,
            run_config={"ops": {"events": {"config": {"max_quarantine_share": limit}}}},
            raise_on_error=False,
            instance=dg.DagsterInstance.ephemeral(),
        )

    blocked = run(0.01)
    (check,) = blocked.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["quarantine_share"].value > 0.03
    materialized = {e.asset_key.to_user_string() for e in blocked.get_asset_materialization_events()}
    assert materialized == {"events"}  # downstream_of_usage did not run

    allowed = run(0.10)
    assert allowed.success
    materialized = {e.asset_key.to_user_string() for e in allowed.get_asset_materialization_events()}
    assert materialized == {"events", "downstream_of_usage"}
