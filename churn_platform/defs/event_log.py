"""The local Dagster instance's event log: Dagster's SQLite storage, with cheaper writes.

Dagster's SQLite event log opens a new database connection for every event it stores and closes
it afterwards; closing the last connection to a WAL database checkpoints it, and every commit is
synced to disk. A run over a year of daily partitions stores a materialization per partition and
model, so those per-event costs add up to seconds on every run. This storage keeps one engine (a
small pool of open connections) for the index database and the few most recent run databases,
and syncs WAL commits at checkpoints only (``synchronous=NORMAL``: an application crash loses
nothing; a power loss may lose the last transactions of a local, development instance). The
tables, their files and everything Dagster reads stay Dagster's own.

Not enabled by default: with it, declarative automation evaluated while a run is in progress
(``churn_platform_tests/integration/test_automation.py``, on a loaded machine) requested daily
partitions that the run itself was about to build. A ``dagster.yaml`` can name it
(``event_log_storage: {module: churn_platform.defs.event_log, class: LocalEventLogStorage,
config: {base_dir: ...}}``) where automation does not run.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as db
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData

OPEN_RUN_DATABASES = 4
"""Run databases kept open besides the index: the runs being written now (a daemon or the UI
may follow several); older ones are closed and reopened when needed."""


class LocalEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` whose connections outlive one event (see the module's text)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: collections.OrderedDict[str, db.Engine] = collections.OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> LocalEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> db.Engine:
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = db.create_engine(
            self.conn_string_for_shard(shard), connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
        )

        @db.event.listens_for(engine, "connect")
        def _sync_at_checkpoints(dbapi_connection, _record) -> None:
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        self._engines[shard] = engine
        runs = [name for name in self._engines if name != INDEX_SHARD_NAME]
        for name in runs[: max(0, len(runs) - OPEN_RUN_DATABASES)]:
            self._engines.pop(name).dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[db.Connection]:  # type: ignore[override]
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _close_all(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._close_all()
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()
