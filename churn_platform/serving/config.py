"""Serving settings: one place for what `serve deploy` reads from YAML and local runs read from the environment.

Two groups:

- `ServingOptions` is the deployment's ``user_config``: batching, request limits, the
  prediction log and how often a replica checks which model it should serve. Changing it
  with ``serve deploy`` reaches running replicas through ``reconfigure()``, without a restart.
- Secrets (the bearer tokens) are read by each replica from its own environment and never
  travel in a config: ``CHURN_PLATFORM_SERVING_ADMIN_TOKEN`` enables the admin endpoints,
  ``CHURN_PLATFORM_SERVING_API_TOKEN`` (optional) makes the prediction endpoints require a token.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from churn_platform.serving.rollout import Rollout
from churn_platform.settings import describe_invalid

ADMIN_TOKEN_ENV = "CHURN_PLATFORM_SERVING_ADMIN_TOKEN"
API_TOKEN_ENV = "CHURN_PLATFORM_SERVING_API_TOKEN"
PROXY_ENV = "CHURN_PLATFORM_SERVING_PROXY"
"""``haproxy`` (default: Serve's HAProxy ingress, measured fastest here) or ``python`` (Serve's own proxy)."""

ENV_PREFIX = "CHURN_PLATFORM_SERVING_"


def _from_env(model: type[BaseModel], overrides: dict[str, Any]) -> Any:
    """``model`` from ``CHURN_PLATFORM_SERVING_<FIELD>`` variables (read by pydantic-settings, as the
    platform's settings are), then the non-None ``overrides``; a bad value is a ``ValueError`` naming
    the variable."""
    reader = type(
        f"{model.__name__}FromEnvironment",
        (BaseSettings, model),
        {"model_config": SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore")},
    )
    try:
        values = reader(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ValueError(f"invalid serving options: {describe_invalid(exc, ENV_PREFIX)}") from None
    return model.model_validate(values.model_dump())


class ServingOptions(BaseModel):
    """The ``user_config`` of the ChurnPredictor deployment (every field has a working default)."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(32, ge=1, le=1024, description="Requests scored together in one model call.")
    batch_wait_timeout_s: float = Field(0.002, ge=0, le=1, description="Longest wait for a batch to fill.")
    max_records_per_request: int = Field(
        1000, ge=1, description="Records (or customer ids) one request may carry; more is a 413."
    )
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest request body; larger is a 413.")
    sync_interval_s: float = Field(1.0, gt=0, description="How often a replica asks which version it should serve.")
    prediction_log_dir: str | None = Field(
        None, description="Directory of the Parquet prediction log; none disables the log."
    )
    prediction_log_flush_s: float = Field(
        2.0, gt=0, description="Buffered predictions are written at least this often."
    )
    prediction_log_max_buffer: int = Field(
        200_000, ge=1000, description="Rows held in memory at most; beyond, new rows are dropped and counted."
    )
    features_uri: str | None = Field(
        None,
        description="Where /v1/predict/customers reads the latest scoring features: a DuckDB warehouse file or a Parquet file.",
    )

    @classmethod
    def from_env(cls, **overrides: Any) -> ServingOptions:
        """Options from ``CHURN_PLATFORM_SERVING_<FIELD>`` variables (for local runs), then ``overrides``."""
        return _from_env(cls, overrides)


class PointerOptions(BaseModel):
    """The ``user_config`` of the ChampionPointer deployment."""

    model_config = ConfigDict(extra="forbid")

    pinned_version: str | None = Field(None, description="Serve this version instead of following the alias.")
    poll_interval_s: float = Field(5.0, gt=0, description="How often the registry's alias is resolved.")
    challenger: Rollout | None = Field(
        None, description="A challenger version served beside the champion, in shadow or canary (none: no challenger)."
    )
    follow_rollout: bool = Field(
        True,
        description="Without a challenger here or from an admin, serve the registry's @rollout version (a version "
        "the gate staged, policy.rollout) as the challenger, in the mode and share of its tags.",
    )


class Autoscaling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_replicas: int = 1
    max_replicas: int = 2
    target_ongoing_requests: float = 16
    upscale_delay_s: float = 5
    downscale_delay_s: float = 60

    @classmethod
    def from_env(cls) -> Autoscaling:
        return _from_env(cls, {})


MAX_ONGOING_REQUESTS = 256
"""Requests one replica accepts at once; the batcher turns them into few model calls."""


def token_from_env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None
