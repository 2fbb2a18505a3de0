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
    The first day of the daily usage partitions and the day after the last one. They override
    the declaration's ``partitions``; without either, the partitions follow the usage data's
    first and last day. ``open`` makes the partitions open-ended, a new one each day, for a live feed.
``CHURN_PLATFORM_CONFIG``
    The business's declaration file (default: ``churn_platform.yaml`` in the working directory,
    else in the sources folder; with no sources named, the built-in simulated business's).
``CHURN_PLATFORM_BUSINESS``
    Which built-in simulated business runs when no sources are named: ``saas_b2b`` (default) or
    ``consumer_app``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from churn_platform import policy
from churn_platform.warehouse.postgres import PostgresLocation

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
DBT_PROJECT_DIR = Path(os.environ.get("CHURN_PLATFORM_DBT_PROJECT_DIR", REPO_DIR / "dbt_project"))

REGISTERED_MODEL_NAME = "churn_model"
EXPERIMENT_NAME = "churn_platform"
CHAMPION_ALIAS = "champion"
PLANNED_EVENTS_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
SETTLE_ENV = "DAGSTER_AUTOMATION_TICK_SETTLE_SECONDS"
"""Dagster's opt-in for automation ticks that each read the events up to one storage id, waiting
this long for in-flight writes first: without it, an event written while a tick evaluates can be
read as an update by one condition and not checked by another (who made it)."""
OPEN_ENDED = "open"


ENV_PREFIX = "CHURN_PLATFORM_"
PG_PASSWORD_ENV = f"{ENV_PREFIX}PG_PASSWORD"
"""Dagster's config reads the warehouse password from here when the resource is used (``dg.EnvVar``)."""


class Environment(BaseSettings):
    """Every ``CHURN_PLATFORM_*`` variable the platform reads, parsed and validated in one place
    (pydantic-settings). Empty variables count as unset; other ``CHURN_PLATFORM_*`` variables
    (the serving options, the simulation's size) belong to their own readers."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore")

    home: Path = Path(".churn_home")
    sources: str | None = None
    s3_endpoint_url: str | None = None
    days: int = Field(365, gt=0)
    drift_threshold: float = Field(policy.DRIFT_THRESHOLD, ge=0, le=1)
    drift_sample_rows: int = Field(policy.DRIFT_SAMPLE_ROWS, gt=0)
    target: str | None = None
    duckdb_memory_limit: str = "8GB"
    profile: str = "local"
    pg_host: str = "127.0.0.1"
    pg_port: int = Field(5432, gt=0, lt=65536)
    pg_user: str = "postgres"
    pg_password: SecretStr = SecretStr("")
    pg_database: str = "churn_platform"
    s3_landing: str | None = None
    s3_reports: str | None = None
    mlflow_tracking_uri: str | None = None
    ray_address: str | None = None
    partitions_start: dt.date | None = None
    partitions_end: dt.date | Literal["open"] | None = None
    alert_webhook_url: str | None = None
    config: Path | None = None
    business: str | None = None

    @field_validator("profile", "partitions_end", mode="before")
    @classmethod
    def _lower(cls, value):
        return value.strip().lower() if isinstance(value, str) else value


def describe_invalid(exc: ValidationError, prefix: str) -> str:
    """A pydantic-settings error as the variables at fault and what is wrong with each."""
    problems: dict[str, list[str]] = {}
    for error in exc.errors():
        name = f"{prefix}{str(error['loc'][0]).upper()}"
        problems.setdefault(f"{name}={error.get('input')!r}", []).append(error["msg"])
    return "; ".join(f"{where}: {' or '.join(dict.fromkeys(msgs))}" for where, msgs in problems.items())


def read_environment() -> Environment:
    """The environment's settings, or a ``ValueError`` naming each variable at fault and why."""
    try:
        return Environment()
    except ValidationError as exc:
        raise ValueError(f"invalid settings in the environment: {describe_invalid(exc, ENV_PREFIX)}") from None


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
    env = read_environment()
    return PostgresLocation(
        host=env.pg_host,
        port=env.pg_port,
        user=env.pg_user,
        password=env.pg_password.get_secret_value(),
        database=env.pg_database,
    )


def postgres_from_url(url: str) -> PostgresLocation:
    """``postgresql://user[:password]@host:port/database``; without a password in it, the
    password comes from ``CHURN_PLATFORM_PG_PASSWORD``."""
    return PostgresLocation.from_url(url, default_password=read_environment().pg_password.get_secret_value())


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
    """How many days the built-in simulation runs."""
    drift_threshold: float = policy.DRIFT_THRESHOLD
    drift_sample_rows: int = policy.DRIFT_SAMPLE_ROWS
    """The most rows of each side the feature drift report compares."""
    dbt_target: str = "duckdb"
    duckdb_memory_limit: str = "8GB"
    partitions_start: dt.date | None = None
    """The first usage partition; None: the declaration's, else the data's first day."""
    partitions_end_setting: dt.date | str | None = None
    """A date, ``"open"``, or None: the declaration's, else the day after the data's last day."""
    config: Path | None = None
    """The declaration file (None: looked for, see ``CHURN_PLATFORM_CONFIG``)."""
    business: str | None = None
    """The built-in simulated business to run when no sources are named (None: saas_b2b)."""
    roc_auc_floor: float | None = None
    """Overrides the declaration's policy.roc_auc_floor (``run --roc-auc-floor``)."""
    gate_tolerance: float | None = None
    """Overrides the declaration's policy.gate_tolerance (``run --gate-tolerance``)."""
    max_quarantine_share: float | None = None
    """Overrides the declaration's policy.max_quarantine_share (``run --max-quarantine-share``)."""
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
    alert_webhook_url: str | None = None
    """Where alerts are posted (Slack's incoming-webhook format) besides the log."""

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
        end = self.partitions_end_setting
        if isinstance(end, dt.date) and self.partitions_start is not None and end <= self.partitions_start:
            raise ValueError(f"the usage partitions end ({end}) must come after their start ({self.partitions_start})")

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
        env = read_environment()
        profile = env.profile
        production: dict = {}
        if profile == PRODUCTION:
            missing = [
                name
                for name in PRODUCTION_REQUIRED
                if name.removeprefix(ENV_PREFIX).lower() not in env.model_fields_set
            ]
            if missing:
                raise ValueError(f"CHURN_PLATFORM_PROFILE=production needs {', '.join(missing)} in the environment")
            production = {
                "postgres": postgres_from_env(),
                "s3_landing": env.s3_landing.rstrip("/"),
                "s3_reports": (env.s3_reports or "").rstrip("/") or None,
                "mlflow_server_uri": env.mlflow_tracking_uri,
                "ray_address": env.ray_address,
            }
        return cls(
            profile=profile,
            **production,
            home=env.home.resolve(),
            sources=normalise_sources(env.sources),
            s3_endpoint_url=env.s3_endpoint_url,
            days=env.days,
            drift_threshold=env.drift_threshold,
            drift_sample_rows=env.drift_sample_rows,
            dbt_target=env.target or ("postgres" if profile == PRODUCTION else cls.dbt_target),
            duckdb_memory_limit=env.duckdb_memory_limit,
            partitions_start=env.partitions_start,
            partitions_end_setting=env.partitions_end,
            alert_webhook_url=env.alert_webhook_url,
            config=env.config.resolve() if env.config is not None else None,
            business=env.business,
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
        os.environ["CHURN_PLATFORM_DRIFT_SAMPLE_ROWS"] = str(self.drift_sample_rows)
        start, end = self.partitions_start, self.partitions_end_setting
        os.environ["CHURN_PLATFORM_PARTITIONS_START"] = "" if start is None else start.isoformat()
        os.environ["CHURN_PLATFORM_PARTITIONS_END"] = "" if end is None else str(end)
        os.environ["CHURN_PLATFORM_CONFIG"] = "" if self.config is None else str(self.config)
        os.environ["CHURN_PLATFORM_BUSINESS"] = self.business or ""

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
            write_local_instance_yaml(self.dagster_home)


def write_local_instance_yaml(dagster_home: Path) -> None:
    """The local Dagster instance's ``dagster.yaml``: Dagster's SQLite storage under ``dagster_home``;
    no usage statistics leave the machine."""
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
