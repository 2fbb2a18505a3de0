"""The warehouse: where raw sources land through their contracts and dbt builds the marts.

One interface (``Warehouse``), two homes: a DuckDB file (the local profile) and a PostgreSQL
database (the production profile). No Dagster here; ``defs/resources.py`` wraps these classes
as Dagster resources."""

from churn_platform.warehouse.base import RegistersSource, SourceLoad, Warehouse, check_contract
from churn_platform.warehouse.duckdb_file import DuckDBWarehouse, WarehouseLockedError
from churn_platform.warehouse.postgres import PostgresLocation, PostgresWarehouse, WarehouseConnectionError

__all__ = [
    "DuckDBWarehouse",
    "PostgresLocation",
    "PostgresWarehouse",
    "RegistersSource",
    "SourceLoad",
    "Warehouse",
    "WarehouseConnectionError",
    "WarehouseLockedError",
    "check_contract",
]
