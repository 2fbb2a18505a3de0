"""The simulated business landed as source files, the way a company's export job would land them.

``ensure_generated`` writes the sources (and the ground truth the oracle reads) into a folder
once per configuration; ``config_from_env`` reads the simulation's size and seed."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from churn_platform.simulation.generator import GeneratorConfig, generate, write_sources

GROUND_TRUTH_DIR = "_ground_truth"
"""Beside the generated sources: each customer's true churn probability and the injected faults."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from exc


def config_from_env(days: int | None = None) -> GeneratorConfig:
    """The simulation's size and seed: ``CHURN_PLATFORM_CUSTOMERS`` (2000), ``CHURN_PLATFORM_SEED``
    (7) and ``days`` (the platform's daily partitions; else ``CHURN_PLATFORM_DAYS``, 365)."""
    defaults = GeneratorConfig()
    return GeneratorConfig(
        customers=_env_int("CHURN_PLATFORM_CUSTOMERS", defaults.customers),
        days=days if days is not None else _env_int("CHURN_PLATFORM_DAYS", defaults.days),
        seed=_env_int("CHURN_PLATFORM_SEED", defaults.seed),
    )


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
