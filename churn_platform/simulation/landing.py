"""The simulated business landed as source files, the way a company's export job would land them.

``ensure_generated`` writes the sources (and the ground truth the oracle reads) into a folder
once per configuration; ``config_from_env`` reads the simulation's size and seed."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from churn_platform.settings import ENV_PREFIX, describe_invalid
from churn_platform.simulation.generator import GeneratorConfig, generate, write_sources

GROUND_TRUTH_DIR = "_ground_truth"
"""Beside the generated sources: each customer's true churn probability and the injected faults."""


class SimulationEnvironment(BaseSettings):
    """The simulation's size and seed from ``CHURN_PLATFORM_CUSTOMERS``, ``_DAYS`` and ``_SEED``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore")

    customers: int = Field(GeneratorConfig.customers, gt=0)
    days: int = Field(GeneratorConfig.days, gt=0)
    seed: int = GeneratorConfig.seed


def config_from_env(days: int | None = None) -> GeneratorConfig:
    """The simulation's size and seed: ``CHURN_PLATFORM_CUSTOMERS`` (2000), ``CHURN_PLATFORM_SEED``
    (7) and ``days`` (the platform's daily partitions; else ``CHURN_PLATFORM_DAYS``, 365)."""
    try:
        env = SimulationEnvironment()
    except ValidationError as exc:
        raise ValueError(f"invalid simulation settings: {describe_invalid(exc, ENV_PREFIX)}") from None
    return GeneratorConfig(customers=env.customers, days=days if days is not None else env.days, seed=env.seed)


def ground_truth_dir(folder: str | os.PathLike) -> Path | None:
    """Where sources generated into ``folder`` keep their ground truth, if they have any."""
    candidate = Path(folder) / GROUND_TRUTH_DIR
    return candidate if candidate.is_dir() else None


def ensure_generated(landing_dir: Path, config: GeneratorConfig) -> Path:
    """Generate the sources into ``landing_dir`` unless the same config is already there.

    Safe to call from several assets at once: a file lock serialises generation,
    and a manifest of the config makes the call idempotent.
    """
    landing_dir = Path(landing_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    manifest = landing_dir / "_generator.json"
    wanted = config.as_dict()
    with open(landing_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if manifest.exists() and json.loads(manifest.read_text()).get("config") == wanted:
            return landing_dir
        counts = write_sources(generate(config), landing_dir)
        manifest.write_text(json.dumps({"config": wanted, "rows": counts}, indent=2))
    return landing_dir
