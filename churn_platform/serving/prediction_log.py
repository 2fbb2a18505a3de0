"""The prediction log: every served prediction, appended to Parquet files that monitoring reads.

Each replica buffers its predictions in memory and a background task writes the buffer
to a new Parquet file at least every ``flush_interval_s`` seconds (and when the replica
shuts down), under ``<dir>/date=YYYY-MM-DD/``. A file is written under a temporary name
and renamed, so a reader never sees half a file.

Logging never blocks or fails a request: ``append`` only adds to the buffer, and a write
that fails keeps the rows for the next attempt. What can be lost is bounded: on a crash,
the rows of the last ``flush_interval_s`` seconds; if writes keep failing, rows beyond
``max_buffer_rows`` are dropped and counted (``dropped``), never silently.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import threading
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churn_platform.business.catalogue import Catalogue
from churn_platform.serving.rollout import CHAMPION

log = logging.getLogger("ray.serve")

META_COLUMNS = (
    "request_id",
    "logged_at",
    "endpoint",
    "customer_id",
    "as_of",
    "model_name",
    "model_version",
    "churn_probability",
    "arm",
    "served",
)
"""``as_of`` is the day the features describe: the snapshot date when scored by customer id, else the
day served. ``arm`` is the rollout arm of the version that scored (``champion``, ``canary`` or
``shadow``) and ``served`` whether its score was the answer returned: during a canary the champion
also scores the canary's customers, and a shadow's scores are never returned. The features the model
scored follow, one column each (its catalogue's)."""


def log_schema(catalogue: Catalogue | None = None) -> pa.Schema:
    """The log's columns: the metadata, then the features of ``catalogue`` (the serving model's)."""
    fields = [
        pa.field("request_id", pa.string()),
        pa.field("logged_at", pa.timestamp("us", tz="UTC")),
        pa.field("endpoint", pa.string()),
        pa.field("customer_id", pa.string()),
        pa.field("as_of", pa.date32()),
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("churn_probability", pa.float64()),
        pa.field("arm", pa.string()),
        pa.field("served", pa.bool_()),
    ]
    if catalogue is not None:
        fields += [
            pa.field(f.name, pa.string() if f.kind == "categorical" else pa.float64()) for f in catalogue.features
        ]
    return pa.schema(fields)


class PredictionLogWriter:
    def __init__(
        self,
        directory: str | os.PathLike,
        flush_interval_s: float = 2.0,
        max_buffer_rows: int = 200_000,
        writer_id: str | None = None,
        catalogue: Catalogue | None = None,
    ):
        self.directory = Path(directory)
        self.schema = log_schema(catalogue)
        self.flush_interval_s = flush_interval_s
        self.max_buffer_rows = max_buffer_rows
        self.writer_id = writer_id or uuid.uuid4().hex[:12]
        self._buffer: list[dict] = []
        self._lock = threading.Lock()
        self._sequence = 0
        self.dropped = 0
        self.written = 0
        self.last_error: str | None = None
        self._task: asyncio.Task | None = None

    def use_catalogue(self, catalogue: Catalogue) -> None:
        """Log the features of ``catalogue`` from now on (a new model serving): rows buffered so far
        are written first, with the columns they were logged with."""
        new = log_schema(catalogue)
        if new.equals(self.schema):
            return
        self.flush()
        self.schema = new

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def append(self, rows: list[dict]) -> int:
        """Add rows (dicts with the log's columns) to the buffer; returns how many were dropped for lack of room."""
        with self._lock:
            room = self.max_buffer_rows - len(self._buffer)
            dropped = max(0, len(rows) - max(room, 0))
            if dropped:
                rows = rows[: max(room, 0)]
                self.dropped += dropped
            self._buffer.extend(rows)
            return dropped

    def flush(self) -> int:
        """Write the buffered rows to one new file; returns the rows written. Safe to call from any thread."""
        with self._lock:
            rows, self._buffer = self._buffer, []
        if not rows:
            return 0
        try:
            table = pa.Table.from_pylist(rows, schema=self.schema)
            day = dt.datetime.now(dt.UTC).date().isoformat()
            folder = self.directory / f"date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            self._sequence += 1
            name = f"part-{self.writer_id}-{self._sequence:08d}.parquet"
            tmp = folder / f".{name}.tmp"
            pq.write_table(table, tmp)
            os.replace(tmp, folder / name)
        except Exception as exc:  # keep the rows for the next attempt (bounded by max_buffer_rows)
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("prediction log write failed, %d rows kept for retry: %s", len(rows), self.last_error)
            self.append(rows)
            return 0
        self.last_error = None
        self.written += len(rows)
        return len(rows)

    def start(self) -> None:
        """Start the background flush loop on the running event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            if self._buffer:
                await asyncio.to_thread(self.flush)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.flush()


def read_prediction_log(directory: str | os.PathLike) -> pd.DataFrame:
    """Every logged prediction under ``directory`` (an empty frame with the log's columns if none).

    Files are unioned by column name, so a file written by another version of the API (a column
    more or less, or another type) is read rather than refused; monitoring's schema check then
    reports the difference."""
    root = Path(directory)
    files = sorted(str(p) for p in root.glob("date=*/part-*.parquet")) if root.exists() else []
    if not files:
        return log_schema().empty_table().to_pandas()
    import duckdb

    with duckdb.connect() as con:
        frame = con.execute(
            "select * from read_parquet(?, union_by_name = true, hive_partitioning = false) order by logged_at, request_id",
            [files],
        ).df()
    if "logged_at" in frame.columns:
        frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True)
    # Written before rollouts: every row was the champion's answer.
    frame["arm"] = frame["arm"].fillna(CHAMPION) if "arm" in frame.columns else CHAMPION
    frame["served"] = frame["served"].fillna(True).astype(bool) if "served" in frame.columns else True
    return frame
