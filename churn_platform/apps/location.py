"""The code location's Definitions as the drivers build them: the platform's definitions over the
sources the settings name or, when they name none, over the built-in simulated business.

The simulation enters the graph only here, as two resources: ``SimulatedSources`` (the simulation
landed as files under the home, generated on first read) and ``SimulatedGroundTruth`` (the true
churn probabilities the generator wrote beside any sources it produced, for the oracle line)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd

from churn_platform.business.declaration import Declaration, DeclarationError, load_declaration
from churn_platform.defs import build_definitions
from churn_platform.defs.resources import GroundTruth, SourceResource
from churn_platform.settings import Settings
from churn_platform.simulation.businesses import BUSINESSES, declaration_path
from churn_platform.simulation.generator import GeneratorConfig
from churn_platform.simulation.landing import config_from_env, ensure_generated, ground_truth_dir
from churn_platform.simulation.oracle import load_truth, load_uplift_truth, oracle_metrics, uplift_oracle_metrics

DECLARATION_FILE = "churn_platform.yaml"
"""The declaration's file name where the platform looks for one (the sources folder, the working directory)."""


class SimulatedSources(SourceResource):
    """The built-in simulation (``customers``, ``days``, ``seed``), generated into ``sources`` (a
    folder under the home) the first time a source is read, then read as files."""

    customers: int = 2_000
    days: int = 365
    seed: int = 7
    business: str = "saas_b2b"

    def config(self) -> GeneratorConfig:
        return GeneratorConfig(customers=self.customers, days=self.days, seed=self.seed, business=self.business)

    @property
    def origin(self) -> str:
        return f"generator(business={self.business}, customers={self.customers}, days={self.days}, seed={self.seed})"

    def directory(self) -> Path:
        return ensure_generated(Path(self.sources), self.config())

    def date_range(self, location: str, column: str) -> tuple[dt.date, dt.date] | None:
        # Known without generating: the simulation's first and last day.
        config = self.config()
        return config.start_date, config.end_date


class SimulatedGroundTruth(GroundTruth):
    """The generator's true churn probabilities (``<folder>/_ground_truth``)."""

    folder: str

    def oracle_metrics(self, holdout: pd.DataFrame, proba) -> dict[str, float]:
        return oracle_metrics(load_truth(ground_truth_dir(self.folder)), holdout, proba)

    def uplift_oracle_metrics(self, holdout: pd.DataFrame, estimate) -> dict[str, float]:
        return uplift_oracle_metrics(load_uplift_truth(ground_truth_dir(self.folder)), holdout, estimate)

    def survival_oracle_metrics(self, holdout: pd.DataFrame, model_metrics: dict) -> dict[str, float]:
        from churn_platform.simulation.oracle import oracle_survival_metrics

        return oracle_survival_metrics(load_truth(ground_truth_dir(self.folder)), holdout, model_metrics)


def simulation_resources(settings: Settings) -> tuple[SourceResource | None, GroundTruth | None]:
    """The source and ground truth resources the simulation provides for ``settings``: both when no
    sources are named; the ground truth alone when the named folder was written by the generator."""
    sources = settings.effective_sources
    if sources is None:
        config = config_from_env(days=settings.days)
        business = settings.business or BUSINESSES[0]
        landing = str(settings.landing_dir / business)
        return (
            SimulatedSources(
                sources=landing, customers=config.customers, days=config.days, seed=config.seed, business=business
            ),
            SimulatedGroundTruth(folder=landing),
        )
    if "://" not in sources and ground_truth_dir(sources) is not None:
        return None, SimulatedGroundTruth(folder=sources)
    return None, None


def find_declaration(settings: Settings) -> Declaration:
    """The business's declaration: ``settings.config`` (``--config``, ``CHURN_PLATFORM_CONFIG``);
    else ``churn_platform.yaml`` in the sources folder; else, when sources are named, in the working
    directory; else (no sources: the built-in simulation) the simulated business's own. An S3 prefix
    is looked into as a folder is."""
    if settings.config is not None:
        return load_declaration(settings.config)
    sources = settings.effective_sources
    if sources is not None and "://" not in sources and (Path(sources) / DECLARATION_FILE).exists():
        return load_declaration(Path(sources) / DECLARATION_FILE)
    if sources is not None and sources.startswith("s3://"):
        landed = _declaration_in_s3(settings, sources)
        if landed is not None:
            return landed
    if sources is None:
        return load_declaration(declaration_path(settings.business or BUSINESSES[0]))
    if Path(DECLARATION_FILE).exists():
        return load_declaration(Path(DECLARATION_FILE))
    raise DeclarationError(
        f"no declaration of the business for the sources at {sources}: write one with "
        f"`churn-platform init --sources {sources}` (it writes {DECLARATION_FILE}), check it, and pass it "
        "with --config (or CHURN_PLATFORM_CONFIG), or put it beside the source files"
    )


def _declaration_in_s3(settings: Settings, uri: str) -> Declaration | None:
    """``churn_platform.yaml`` under an S3 prefix (landed with the sources), if there is one."""
    from churn_platform.business.declaration import parse_declaration

    client = SourceResource(sources=uri, s3_endpoint_url=settings.s3_endpoint_url).s3_client()
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    key = f"{prefix.strip('/')}/{DECLARATION_FILE}" if prefix.strip("/") else DECLARATION_FILE
    try:
        text = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except Exception:
        return None
    return parse_declaration(text, f"s3://{bucket}/{key}")


def platform_definitions(settings: Settings) -> dg.Definitions:
    """The platform's Definitions for ``settings``, with the simulation where it applies."""
    source, ground_truth = simulation_resources(settings)
    return build_definitions(settings, find_declaration(settings), source=source, ground_truth=ground_truth)
