"""The warehouse as a DuckDB file (the local profile)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from churn_platform.warehouse.base import RegistersSource, SourceLoad, Warehouse, check_contract


class WarehouseLockedError(RuntimeError):
    """The DuckDB file stayed locked by another process for longer than the wait allowed."""


@dataclasses.dataclass
class DuckDBWarehouse(Warehouse):
    """A DuckDB file.

    DuckDB allows one writing process at a time. When two runs overlap, a connection waits
    for the other process's lock for up to ``lock_timeout_s`` seconds, saying so in ``logger``
    every 30 s, before it fails with a clear error."""

    path: str
    lock_timeout_s: float = 600.0
    memory_limit: str = "8GB"
    """DuckDB spills to disk beyond this (the dbt profile has the same limit)."""
    logger: logging.Logger | None = None

    @property
    def location(self) -> str:
        return self.path

    @property
    def _log(self) -> logging.Logger:
        return self.logger or logging.getLogger(__name__)

    def _open(self, read_only: bool):
        import duckdb

        started = time.monotonic()
        delay, told = 0.2, None
        while True:
            try:
                connection = duckdb.connect(self.path, read_only=read_only, config={"memory_limit": self.memory_limit})
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                waited = time.monotonic() - started
                if waited > self.lock_timeout_s:
                    raise WarehouseLockedError(
                        f"the warehouse {self.path} stayed locked by another process for "
                        f"{self.lock_timeout_s:.0f}s: {exc}"
                    ) from exc
                if told is None or waited - told >= 30:
                    holder = re.search(r"PID (\d+)", str(exc))
                    self._log.warning(
                        f"the warehouse {self.path} is locked by another process"
                        + (f" (PID {holder.group(1)})" if holder else "")
                        + f": waiting for it, {waited:.0f}s so far, for up to {self.lock_timeout_s:.0f}s "
                        "(another run or a program holding the DuckDB file open; it is released when that ends)"
                    )
                    told = waited
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                if told is not None:
                    self._log.info(f"the warehouse {self.path} is free after {time.monotonic() - started:.0f}s")
                return connection

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:  # noqa: F821
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = self._open(read_only)
        try:
            yield con
        finally:
            con.close()

    def load_source(self, source: RegistersSource, contract, location: str, partition=None) -> SourceLoad:
        name = contract.source
        with self.connect() as con:
            counts = check_contract(con, source, contract, location, partition)
            schema = [(str(r[0]), str(r[1])) for r in con.execute(f"describe raw.{name}").fetchall()]
            table_rows = int(con.execute(f"select count(*) from raw.{name}").fetchone()[0])
            preview = con.execute(f"select * from raw.{name} limit 5").df()
        return SourceLoad(counts, schema, table_rows, preview)

    def write_table(self, schema: str, table: str, frame: pd.DataFrame) -> None:
        with self.connect() as con:
            con.execute(f'create schema if not exists "{schema}"')
            con.register("incoming_frame", frame)
            con.execute(f'create or replace table "{schema}"."{table}" as select * from incoming_frame')
            con.unregister("incoming_frame")
            # A text column with no value yet (an empty frame) has DuckDB's NULL type, which nothing
            # can be cast to: make it text, as PostgreSQL's copy does.
            for name, kind, *_ in con.execute(f'describe "{schema}"."{table}"').fetchall():
                if str(kind).strip('"').upper() == "NULL":
                    con.execute(f'alter table "{schema}"."{table}" alter column "{name}" type varchar')

    def query(self, sql: str) -> pd.DataFrame:
        with self.connect(read_only=True) as con:
            return con.execute(sql).df()

    def replace_rows(self, schema: str, table: str, frame: pd.DataFrame, keys: list[str]) -> int:
        target = f'"{schema}"."{table}"'
        match = " and ".join(f'h."{k}" = n."{k}"' for k in keys)
        with self.connect() as con:
            con.execute(f'create schema if not exists "{schema}"')
            con.register("incoming_rows", frame)
            con.execute(f"create table if not exists {target} as select * from incoming_rows limit 0")
            con.execute(
                f"delete from {target} h using (select distinct {', '.join(keys)} from incoming_rows) n where {match}"
            )
            con.execute(f"insert into {target} by name select * from incoming_rows")
            con.unregister("incoming_rows")
            return int(con.execute(f"select count(*) from {target}").fetchone()[0])

    def dbt_vars(self) -> dict[str, str]:
        return {"warehouse_path": self.path, "duckdb_memory_limit": self.memory_limit}
