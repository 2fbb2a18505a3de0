"""A DuckDB warehouse held by another process: the wait is announced, with what it waits on and
for how long, and ends with a clear error at the limit."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

from churn_platform.defs.resources import DuckDBWarehouseResource
from churn_platform.warehouse import WarehouseLockedError


@pytest.fixture
def held(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    yield path, holder
    holder.kill()
    holder.wait()


def test_a_locked_warehouse_says_it_waits_and_fails_clearly_at_the_limit(held, caplog):
    path, holder = held
    warehouse = DuckDBWarehouseResource(path=str(path), lock_timeout_s=2)
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    with pytest.raises(WarehouseLockedError, match="stayed locked by another process for 2s"), warehouse.connect():
        pass
    assert time.monotonic() - started < 15
    waiting = [r.getMessage() for r in caplog.records if "is locked by another process" in r.getMessage()]
    assert waiting, [r.getMessage() for r in caplog.records]
    assert str(path) in waiting[0] and f"PID {holder.pid}" in waiting[0] and "for up to 2s" in waiting[0]


def test_the_wait_ends_when_the_lock_is_released(held, caplog):
    path, holder = held
    caplog.set_level(logging.INFO)
    warehouse = DuckDBWarehouseResource(path=str(path), lock_timeout_s=60)
    import threading

    threading.Timer(1.5, holder.kill).start()
    with warehouse.connect() as con:
        assert con.execute("select 1").fetchone() == (1,)
    assert any("is free after" in r.getMessage() for r in caplog.records)
