"""The built-in businesses' declarations and feature catalogues, for tests that need a concrete business."""

from __future__ import annotations

from churn_platform.business.catalogue import build_catalogue
from churn_platform.business.declaration import load_declaration
from churn_platform.simulation.businesses import declaration_path

B2B = load_declaration(declaration_path("saas_b2b"))
"""The built-in B2B example's declaration."""
CATALOGUE = build_catalogue(B2B)
"""Its feature catalogue (no event types: its usage comes as daily measures)."""

GENERATED_NAME = {role: B2B.source(role).location for role in B2B.present}
"""The generator's file (and ``GeneratedData`` attribute) of each B2B source role."""


def b2b_contracts():
    from churn_platform.sources.contracts import contracts_for

    return contracts_for(B2B)


def dbt_vars_json(declaration, warehouse_path, usage_begin: str, event_types=(), valued_types=None) -> str:
    """``dbt --vars`` for a build of ``declaration``'s features into the DuckDB file ``warehouse_path``."""
    import json

    from churn_platform.business.catalogue import dbt_vars

    catalogue = build_catalogue(declaration, event_types, valued_types)
    business = dbt_vars(declaration, catalogue, usage_begin=usage_begin)
    return json.dumps({"warehouse_path": str(warehouse_path), **business})


def load_and_build(
    declaration,
    frames: dict,
    path,
    tmp_path,
    select: str = "+customer_features",
    event_types=(),
    valued_types=None,
    read_features: bool = True,
):
    """Check ``frames`` (by the generator's source name or by role) against ``declaration``'s contracts,
    write the accepted rows as the raw tables and build ``select`` with dbt (the usage from its first
    day up to today, in month batches, as a long run builds it); returns the ``customer_features``
    rows (by snapshot and customer), or None with ``read_features`` False."""
    import datetime as dt
    import os
    import subprocess

    import duckdb

    from churn_platform.defs.dbt import USAGE_BATCH_SIZE_ENV, dbt_executable
    from churn_platform.defs.resources import DuckDBWarehouseResource
    from churn_platform.settings import DBT_PROJECT_DIR
    from churn_platform.sources.contracts import apply_contract, contracts_for

    warehouse = DuckDBWarehouseResource(path=str(path))
    contracts = contracts_for(declaration)
    for role, contract in contracts.items():
        frame = frames.get(role, frames.get(declaration.source(role).location))
        if frame is None:  # a source the test does not give (contacts, for the leakage tests)
            continue
        accepted = apply_contract(frame, contract, now=dt.datetime(2026, 6, 1)).accepted
        warehouse.write_table("raw", role, accepted)
    time_column = contracts["events"].time_column
    first_day = warehouse.query(f'select cast(min("{time_column}") as date) as d from raw.events')["d"].iloc[0]
    target = tmp_path / f"target-{path.stem}"
    result = subprocess.run(
        [
            dbt_executable(),
            "run",
            "--select",
            select,
            "--target-path",
            str(target),
            "--quiet",
            "--vars",
            dbt_vars_json(declaration, path, str(first_day)[:10], event_types, valued_types),
        ],
        cwd=DBT_PROJECT_DIR,
        env={**os.environ, "DBT_LOG_PATH": str(target), USAGE_BATCH_SIZE_ENV: "month"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if not read_features:
        return None
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("select * from marts.customer_features order by snapshot_date, customer_id").df()


def write_catalogue(warehouse, catalogue=CATALOGUE) -> None:
    """``marts.feature_catalogue`` as dbt writes it, for tests that run assets without a dbt build."""
    import json

    import pandas as pd

    warehouse.write_table(
        "marts",
        "feature_catalogue",
        pd.DataFrame(
            {
                "position": range(1, len(catalogue) + 1),
                "name": list(catalogue.names),
                "kind": [f.kind for f in catalogue.features],
                "source_role": [f.role for f in catalogue.features],
                "spec": [
                    json.dumps({"name": f.name, "kind": f.kind, "role": f.role, "agg": f.agg, **dict(f.params)})
                    for f in catalogue.features
                ],
            }
        ),
    )


CONSUMER = load_declaration(declaration_path("consumer_app"))
"""The built-in consumer app's declaration (text ids, an event log, subscriptions, no tickets)."""
CONSUMER_NAME = {role: CONSUMER.source(role).location for role in CONSUMER.present}
"""The generator's file of each consumer-app source role."""


def business_resource(declaration=B2B):
    """The ``business`` resource of the assets that read the catalogue, for ``declaration``."""
    from churn_platform.defs.resources import BusinessResource

    return BusinessResource.of(declaration)
