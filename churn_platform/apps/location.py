"""The code location's Definitions as the drivers build them: the platform's definitions over the
sources the settings name or, when they name none, over the built-in simulated business.

The simulation enters the graph only here, as two resources: ``SimulatedSources`` (the simulation
landed as files under the home, generated on first read) and ``SimulatedGroundTruth`` (the true
churn probabilities the generator wrote beside any sources it produced, for the oracle line)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from churn_platform.defs import build_definitions
from churn_platform.defs.resources import GroundTruth, SourceResource
from churn_platform.settings import Settings
from churn_platform.simulation.generator import GeneratorConfig
from churn_platform.simulation.landing import config_from_env, ensure_generated, ground_truth_dir
from churn_platform.simulation.oracle import load_truth, oracle_metrics


class SimulatedSources(SourceResource):
    """The built-in simulation (``customers``, ``days``, ``seed``), generated into ``sources`` (a
    folder under the home) the first time a source is read, then read as files."""

    customers: int = 2_000
    days: int = 365
    seed: int = 7

    @property
    def origin(self) -> str:
        return f"generator(customers={self.customers}, days={self.days}, seed={self.seed})"

    def directory(self) -> Path:
        config = GeneratorConfig(customers=self.customers, days=self.days, seed=self.seed)
        return ensure_generated(Path(self.sources), config)


class SimulatedGroundTruth(GroundTruth):
    """The generator's true churn probabilities (``<folder>/_ground_truth``)."""

    folder: str

    def oracle_metrics(self, holdout: pd.DataFrame, proba) -> dict[str, float]:
        return oracle_metrics(load_truth(ground_truth_dir(self.folder)), holdout, proba)


def simulation_resources(settings: Settings) -> tuple[SourceResource | None, GroundTruth | None]:
    """The source and ground truth resources the simulation provides for ``settings``: both when no
    sources are named; the ground truth alone when the named folder was written by the generator."""
    sources = settings.effective_sources
    if sources is None:
        config = config_from_env(days=settings.days)
        landing = str(settings.landing_dir)
        return (
            SimulatedSources(sources=landing, customers=config.customers, days=config.days, seed=config.seed),
            SimulatedGroundTruth(folder=landing),
        )
    if "://" not in sources and ground_truth_dir(sources) is not None:
        return None, SimulatedGroundTruth(folder=sources)
    return None, None


def platform_definitions(settings: Settings) -> dg.Definitions:
    """The platform's Definitions for ``settings``, with the simulation where it applies."""
    source, ground_truth = simulation_resources(settings)
    return build_definitions(settings, source=source, ground_truth=ground_truth)
