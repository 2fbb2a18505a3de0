"""Where the platform keeps its state, resolved from the environment in one place.

Every piece of state (the warehouse, the Dagster instance, the MLflow store, the
raw landing zone and the reports) lives under one *home* folder, so that a run is
reproducible and a home can be thrown away. Assets never ask which environment
they run in: they receive resources built from these settings.

Environment variables:

``CHURN_PLATFORM_HOME``
    The home folder (default ``.churn_home`` in the working directory).
``CHURN_PLATFORM_SOURCES``
    Where the raw sources are: a folder of Parquet or CSV files, an S3 prefix
    (``s3://bucket/prefix``) or PostgreSQL tables
    (``postgresql://user@host:5432/database?schema=raw``). When unset, the drivers land
    the built-in simulation (``churn_platform.simulation``, sized by
    ``CHURN_PLATFORM_CUSTOMERS``, ``CHURN_PLATFORM_DAYS`` and ``CHURN_PLATFORM_SEED``).
``CHURN_PLATFORM_DAYS``
    How many daily usage partitions there are by default (365), and the simulation's length.
``CHURN_PLATFORM_S3_ENDPOINT_URL``
    An S3-compatible endpoint (MinIO, a moto server); unset for AWS S3.
``CHURN_PLATFORM_DRIFT_THRESHOLD``
    The share of drifted features above which the drift sensor asks for retraining
    (default 0.3).
``CHURN_PLATFORM_TARGET``
    The dbt target (``duckdb`` by default).
``CHURN_PLATFORM_DUCKDB_MEMORY_LIMIT``
    DuckDB's memory limit for the warehouse and dbt (default ``8GB``); beyond it, DuckDB spills to disk.
``CHURN_PLATFORM_PROFILE``
    ``local`` (default: everything embedded under the home) or ``production``: the
    warehouse and dbt on PostgreSQL (``CHURN_PLATFORM_PG_HOST``, ``_PORT``, ``_USER``,
    ``_PASSWORD``, ``_DATABASE``), raw files landing under ``CHURN_PLATFORM_S3_LANDING``
    (``s3://bucket/prefix``) and reports under ``CHURN_PLATFORM_S3_REPORTS``, MLflow at
    ``CHURN_PLATFORM_MLFLOW_TRACKING_URI`` (an ``mlflow server``) and Ray Serve on the Ray
    cluster at ``CHURN_PLATFORM_RAY_ADDRESS``. The Dagster instance is whatever
    ``DAGSTER_HOME/dagster.yaml`` says (``deploy/dagster.yaml``: PostgreSQL). Secrets come
    only from these variables; the AWS SDK reads its own (``AWS_ACCESS_KEY_ID``, ...).
``CHURN_PLATFORM_PARTITIONS_START`` / ``CHURN_PLATFORM_PARTITIONS_END``
    The first day of the daily usage partitions (default 2025-01-01, the generator's first
    day) and the day after the last one (default: ``CHURN_PLATFORM_DAYS`` days after the
    start); ``open`` makes the partitions open-ended, a new one each day, for a live feed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path

from churn_platform import policy
from churn_platform.warehouse.postgres import PostgresLocation

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
DBT_PROJECT_DIR = Path(os.environ.get("CHURN_PLATFORM_DBT_PROJECT_DIR", REPO_DIR / "dbt_project"))

REGISTERED_MODEL_NAME = "churn_model"
EXPERIMENT_NAME = "churn_platform"
CHAMPION_ALIAS = "champion"
LABEL_HORIZON_DAYS = 30
"""Churn within this many days after a snapshot is the label (dbt var ``label_horizon_days``; a test keeps them equal)."""
DEFAULT_PARTITIONS_START = dt.date(2025, 1, 1)
PLANNED_EVENTS_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
SETTLE_ENV = "DAGSTER_AUTOMATION_TICK_SETTLE_SECONDS"
"""Dagster's opt-in for automation ticks that each read the events up to one storage id, waiting
this long for in-flight writes first: without it, an event written while a tick evaluates can be
read as an update by one condition and not checked by another (who made it)."""
OPEN_ENDED = "open"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _env_date(name: str, default: dt.date) -> dt.date:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a date as YYYY-MM-DD, got {raw!r}") from exc


def _env_partitions_end(name: str) -> dt.date | str | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    if raw.strip().lower() == OPEN_ENDED:
        return OPEN_ENDED
    return _env_date(name, DEFAULT_PARTITIONS_START)


LOCAL = "local"
PRODUCTION = "production"
PROFILES = (LOCAL, PRODUCTION)
PRODUCTION_REQUIRED = (
    "CHURN_PLATFORM_PG_HOST",
    "CHURN_PLATFORM_PG_DATABASE",
    "CHURN_PLATFORM_S3_LANDING",
    "CHURN_PLATFORM_MLFLOW_TRACKING_URI",
)
"""What the production profile cannot run without (the rest have defaults)."""


def postgres_from_env() -> PostgresLocation:
    """The PostgreSQL warehouse of ``CHURN_PLATFORM_PG_*`` (the dbt profile reads the same)."""
    return PostgresLocation(
        host=os.environ.get("CHURN_PLATFORM_PG_HOST") or PostgresLocation.host,
        port=_env_int("CHURN_PLATFORM_PG_PORT", PostgresLocation.port),
        user=os.environ.get("CHURN_PLATFORM_PG_USER") or PostgresLocation.user,
        password=os.environ.get("CHURN_PLATFORM_PG_PASSWORD", ""),
        database=os.environ.get("CHURN_PLATFORM_PG_DATABASE") or PostgresLocation.database,
    )


def postgres_from_url(url: str) -> PostgresLocation:
    """``postgresql://user[:password]@host:port/database``; without a password in it, the
    password comes from ``CHURN_PLATFORM_PG_PASSWORD``."""
    return PostgresLocation.from_url(url, default_password=os.environ.get("CHURN_PLATFORM_PG_PASSWORD", ""))


def normalise_sources(sources: str | os.PathLike | None) -> str | None:
    """A URI stays as it is; a folder becomes an absolute path; empty means the generator."""
    if sources is None or str(sources) == "":
        return None
    text = str(sources)
    if "://" in text:
        return text
    return str(Path(text).resolve())


@dataclasses.dataclass(frozen=True)
class Settings:
    home: Path
    sources: str | None = None
    s3_endpoint_url: str | None = None
    days: int = 365
    """How many daily usage partitions there are by default (and how long the simulation runs)."""
    drift_threshold: float = policy.DRIFT_THRESHOLD
    dbt_target: str = "duckdb"
    duckdb_memory_limit: str = "8GB"
    partitions_start: dt.date = DEFAULT_PARTITIONS_START
    partitions_end_setting: dt.date | str | None = None
    """A date, ``"open"``, or None for ``days`` days after ``partitions_start``."""
    profile: str = LOCAL
    postgres: PostgresLocation | None = None
    """The warehouse in the production profile."""
    s3_landing: str | None = None
    """Production: where raw source files land (``s3://bucket/prefix``); the default sources."""
    s3_reports: str | None = None
    """Production: where HTML reports are published (``s3://bucket/prefix``)."""
    mlflow_server_uri: str | None = None
    """Production: the MLflow tracking server (``http://host:5000``)."""
    ray_address: str | None = None
    """Production: the Ray cluster Serve runs on (``ray://host:10001`` or ``host:6379``)."""

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"CHURN_PLATFORM_PROFILE must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        if self.profile == PRODUCTION and (self.postgres is None or not self.mlflow_server_uri or not self.s3_landing):
            raise ValueError(
                "the production profile needs a PostgreSQL warehouse, an S3 landing zone and an MLflow "
                f"server: set {', '.join(PRODUCTION_REQUIRED)}"
            )
        if self.s3_landing is not None and not self.s3_landing.startswith("s3://"):
            raise ValueError(f"CHURN_PLATFORM_S3_LANDING must be an s3:// URI, got {self.s3_landing!r}")
        end = self.partitions_end
        if end is not None and end <= self.partitions_start:
            raise ValueError(f"the usage partitions end ({end}) must come after their start ({self.partitions_start})")

    @property
    def partitions_end(self) -> dt.date | None:
        """The day after the last daily partition; None when the partitions are open-ended."""
        if self.partitions_end_setting == OPEN_ENDED:
            return None
        if self.partitions_end_setting is None:
            return self.partitions_start + dt.timedelta(days=self.days)
        return self.partitions_end_setting  # type: ignore[return-value]

    @property
    def is_production(self) -> bool:
        return self.profile == PRODUCTION

    @property
    def effective_sources(self) -> str | None:
        """Where the source assets read: the given sources, else (production) the landing zone."""
        if self.sources is not None:
            return self.sources
        return self.s3_landing if self.is_production else None

    @classmethod
    def from_env(cls) -> Settings:
        profile = (os.environ.get("CHURN_PLATFORM_PROFILE") or LOCAL).strip().lower()
        production: dict = {}
        if profile == PRODUCTION:
            missing = [name for name in PRODUCTION_REQUIRED if not os.environ.get(name)]
            if missing:
                raise ValueError(f"CHURN_PLATFORM_PROFILE=production needs {', '.join(missing)} in the environment")
            production = {
                "postgres": postgres_from_env(),
                "s3_landing": os.environ["CHURN_PLATFORM_S3_LANDING"].rstrip("/"),
                "s3_reports": (os.environ.get("CHURN_PLATFORM_S3_REPORTS") or "").rstrip("/") or None,
                "mlflow_server_uri": os.environ["CHURN_PLATFORM_MLFLOW_TRACKING_URI"],
                "ray_address": os.environ.get("CHURN_PLATFORM_RAY_ADDRESS") or None,
            }
        return cls(
            profile=profile,
            **production,
            home=Path(os.environ.get("CHURN_PLATFORM_HOME", ".churn_home")).resolve(),
            sources=normalise_sources(os.environ.get("CHURN_PLATFORM_SOURCES")),
            s3_endpoint_url=os.environ.get("CHURN_PLATFORM_S3_ENDPOINT_URL") or None,
            days=_env_int("CHURN_PLATFORM_DAYS", cls.days),
            drift_threshold=_env_float("CHURN_PLATFORM_DRIFT_THRESHOLD", cls.drift_threshold),
            dbt_target=os.environ.get("CHURN_PLATFORM_TARGET")
            or ("postgres" if profile == PRODUCTION else cls.dbt_target),
            duckdb_memory_limit=os.environ.get("CHURN_PLATFORM_DUCKDB_MEMORY_LIMIT", cls.duckdb_memory_limit),
            partitions_start=_env_date("CHURN_PLATFORM_PARTITIONS_START", DEFAULT_PARTITIONS_START),
            partitions_end_setting=_env_partitions_end("CHURN_PLATFORM_PARTITIONS_END"),
        )

    def export(self) -> None:
        """Put these settings into the environment, for child processes (dbt, Ray, Dagster)."""
        # A run over a range of daily partitions records one "planned" event per asset rather than
        # one per asset and day (thousands of SQLite writes for a year of history).
        os.environ.setdefault(PLANNED_EVENTS_ENV, "true")
        os.environ.setdefault(SETTLE_ENV, "1")
        os.environ["CHURN_PLATFORM_HOME"] = str(self.home)
        os.environ["CHURN_PLATFORM_PROFILE"] = self.profile
        if not (self.is_production and os.environ.get("DAGSTER_HOME")):
            os.environ["DAGSTER_HOME"] = str(self.dagster_home)
        os.environ["CHURN_PLATFORM_WAREHOUSE"] = str(self.warehouse_path)
        os.environ["CHURN_PLATFORM_TARGET"] = self.dbt_target
        os.environ["CHURN_PLATFORM_DUCKDB_MEMORY_LIMIT"] = self.duckdb_memory_limit
        if self.sources is not None:
            os.environ["CHURN_PLATFORM_SOURCES"] = self.sources
        else:
            os.environ.pop("CHURN_PLATFORM_SOURCES", None)
        os.environ["CHURN_PLATFORM_DAYS"] = str(self.days)
        os.environ["CHURN_PLATFORM_DRIFT_THRESHOLD"] = str(self.drift_threshold)
        os.environ["CHURN_PLATFORM_PARTITIONS_START"] = self.partitions_start.isoformat()
        end = self.partitions_end_setting
        os.environ["CHURN_PLATFORM_PARTITIONS_END"] = "" if end is None else str(end)

    # ---- locations under the home -------------------------------------------------------
    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance's folder. Production: ``DAGSTER_HOME`` (its ``dagster.yaml`` puts
        the instance on PostgreSQL); local: under the home, with SQLite storage."""
        if self.is_production and os.environ.get("DAGSTER_HOME"):
            return Path(os.environ["DAGSTER_HOME"]).resolve()
        return self.home / "dagster"

    @property
    def landing_dir(self) -> Path:
        """Where generated sources land when no source folder is given."""
        return self.home / "landing"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def mlflow_tracking_uri(self) -> str:
        if self.mlflow_server_uri:
            return self.mlflow_server_uri
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def mlflow_artifact_location(self) -> str | None:
        """Local: a folder under the home. With a server: None, the server's artifact root decides."""
        if self.mlflow_server_uri:
            return None
        return (self.mlflow_dir / "artifacts").as_uri()

    @property
    def features_uri(self) -> str:
        """Where the serving API reads ``marts.scoring_features`` for scoring by customer id."""
        if self.postgres is not None and self.dbt_target == "postgres":
            # No password in it: a replica reads CHURN_PLATFORM_PG_PASSWORD from its own environment.
            return self.postgres.display()
        return str(self.warehouse_path)

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def prediction_log_dir(self) -> Path:
        """Parquet files of every prediction the API served (read by monitoring)."""
        return self.home / "prediction_log"

    def ensure_dirs(self) -> None:
        for d in (self.home, self.dagster_home, self.mlflow_dir, self.reports_dir):
            d.mkdir(parents=True, exist_ok=True)
        instance_yaml = self.dagster_home / "dagster.yaml"
        if not instance_yaml.exists() and not self.is_production:
            # SQLite storage under the home (Dagster's default); no usage statistics leave the machine.
            instance_yaml.write_text("telemetry:\n  enabled: false\n")
