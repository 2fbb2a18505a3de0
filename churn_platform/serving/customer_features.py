"""The latest scoring features of every active customer, for scoring by customer id.

A replica reads `marts.scoring_features` from the warehouse (a DuckDB file, a Parquet
export of it, or PostgreSQL as ``postgresql://user@host:port/database``, the password from
``CHURN_PLATFORM_PG_PASSWORD``) into memory, and reads it again when the file changes (for
PostgreSQL: every ``POSTGRES_REFRESH_S`` seconds). The warehouse is opened read-only and only
for the read; if it cannot be read (a pipeline run holding its lock, for example) the previous
copy keeps serving and the error is reported in `/health`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from churn_platform.business.catalogue import ID_COLUMN, TIME_COLUMN

log = logging.getLogger("ray.serve")
POSTGRES_REFRESH_S = 60.0


class CustomerFeatures:
    def __init__(self, uri: str | None):
        self.uri = uri
        self.frame: pd.DataFrame | None = None
        self.as_of = None
        self.error: str | None = None if uri else "no features_uri configured"
        self._mtime: float | None = None

    def refresh(self) -> bool:
        """Read the features again if the file changed; returns whether a new copy was loaded."""
        if not self.uri:
            return False
        if self.uri.startswith(("postgresql://", "postgres://")):
            return self._refresh_postgres()
        path = Path(self.uri)
        try:
            mtime = os.stat(path).st_mtime
        except OSError as exc:
            self.error = f"cannot read scoring features at {path}: {exc}"
            return False
        if mtime == self._mtime and self.frame is not None:
            return False
        try:
            frame = self._read(path)
        except Exception as exc:  # keep the previous copy
            self.error = f"cannot read scoring features at {path}: {type(exc).__name__}: {exc}"
            log.warning(self.error)
            return False
        self._mtime = mtime
        self._install(frame)
        return True

    def _install(self, frame: pd.DataFrame) -> None:
        frame[ID_COLUMN] = frame[ID_COLUMN].astype(str)
        self.frame = frame.drop_duplicates(ID_COLUMN, keep="last").set_index(ID_COLUMN, drop=False)
        self.as_of = pd.to_datetime(frame[TIME_COLUMN]).max().date() if len(frame) else None
        self.error = None
        log.info("scoring features: %d customers as of %s", len(self.frame), self.as_of)

    def _refresh_postgres(self) -> bool:
        import time

        from churn_platform.settings import postgres_from_url
        from churn_platform.warehouse.postgres import connect, read_query

        now = time.monotonic()
        if self.frame is not None and self._mtime is not None and now - self._mtime < POSTGRES_REFRESH_S:
            return False
        location = postgres_from_url(self.uri)
        self._mtime = now
        try:
            with connect(location) as con:
                frame = read_query(con, "select * from marts.scoring_features")
        except Exception as exc:  # keep the previous copy
            self.error = f"cannot read scoring features from {location.display()}: {type(exc).__name__}: {exc}"
            log.warning(self.error)
            return False
        self._install(frame)
        return True

    @staticmethod
    def _read(path: Path) -> pd.DataFrame:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        import duckdb

        with duckdb.connect(str(path), read_only=True) as con:
            return con.execute("select * from marts.scoring_features").df()

    def lookup(self, ids: list[str]) -> tuple[pd.DataFrame, list[bool]]:
        """The rows of the known ids (in request order) and, per id, whether it was found."""
        if self.frame is None:
            raise LookupError(self.error or "scoring features are not loaded")
        found = [i in self.frame.index for i in ids]
        known = [i for i, ok in zip(ids, found) if ok]
        return self.frame.loc[known].reset_index(drop=True), found
