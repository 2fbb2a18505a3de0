"""What the platform asks of a warehouse, whatever it is, and the contract check both share."""

from __future__ import annotations

import abc
import dataclasses
from typing import Protocol

import pandas as pd

from churn_platform.business.declaration import PARTITIONED_ROLE, Declaration
from churn_platform.sources.contracts import ContractCounts, contracts_for, load_with_contract


class RegistersSource(Protocol):
    """A source of raw rows: makes the source at ``location`` queryable on a DuckDB connection
    (with a ``__row`` column in input order) and returns the relation to select from."""

    def register(self, con, location: str) -> str: ...


@dataclasses.dataclass
class SourceLoad:
    """What loading one source (or a slice of its days) into the warehouse did."""

    counts: ContractCounts
    schema: list[tuple[str, str]]
    table_rows: int
    preview: pd.DataFrame


def check_contract(con, source: RegistersSource, contract, location: str, partition=None) -> ContractCounts:
    """Check the source at ``location`` against its contract on DuckDB connection ``con``, into
    ``raw.<role>`` (accepted) and ``quarantine.<role>`` (rejected, with the reasons) on that connection."""
    name = contract.source
    relation = source.register(con, location)
    con.execute("create schema if not exists raw")
    con.execute("create schema if not exists quarantine")
    return load_with_contract(con, contract, relation, f"raw.{name}", f"quarantine.{name}", partition=partition)


def check_declared_sources(
    con, source: RegistersSource, declaration: Declaration, partition=None
) -> dict[str, ContractCounts]:
    """Every source ``declaration`` declares, checked against its contract on ``con`` one after the
    other, as the source assets do in a run; ``partition`` (the usage's days) applies to the events."""
    return {
        role: check_contract(
            con,
            source,
            contract,
            declaration.source(role).location,
            partition=partition if role == PARTITIONED_ROLE else None,
        )
        for role, contract in contracts_for(declaration).items()
    }


class Warehouse(abc.ABC):
    """The analytical warehouse that dbt builds on.

    ``DuckDBWarehouse`` is a DuckDB file (the local profile); ``PostgresWarehouse`` is a
    PostgreSQL database (the production profile). Data contracts are checked by DuckDB in
    both (in memory for PostgreSQL), so both accept and quarantine exactly the same rows."""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where it is, never a password."""

    @abc.abstractmethod
    def load_source(self, source: RegistersSource, contract, location: str, partition=None) -> SourceLoad:
        """Check the source at ``location`` against ``contract`` into ``raw.<role>`` and ``quarantine.<role>``;
        with a ``partition`` (a time window), only that window's rows are replaced."""

    @abc.abstractmethod
    def write_table(self, schema: str, table: str, frame: pd.DataFrame) -> None:
        """Replace ``schema.table`` with ``frame``."""

    def read_table(self, schema: str, table: str) -> pd.DataFrame:
        return self.query(f'select * from "{schema}"."{table}"')

    @abc.abstractmethod
    def query(self, sql: str) -> pd.DataFrame:
        """The rows of ``sql``."""

    @abc.abstractmethod
    def replace_rows(self, schema: str, table: str, frame: pd.DataFrame, keys: list[str]) -> int:
        """Insert ``frame`` into ``schema.table`` (created on first use), first deleting the rows
        whose ``keys`` match one of the frame's; returns the table's rows."""

    @abc.abstractmethod
    def dbt_vars(self) -> dict[str, str]:
        """This warehouse's location as the dbt profile's variables (``dbt --vars``; the profile falls
        back to the ``CHURN_PLATFORM_*`` environment without them). Never a password."""
