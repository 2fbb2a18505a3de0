"""A built-in business lived month by month: what the scenarios on simulated time share."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pandas as pd


@dataclasses.dataclass(frozen=True)
class SimulatedBusiness:
    """A built-in simulated business (its size, window and seed), landed as known on a given day."""

    business: str = "saas_b2b"
    customers: int = 4_000
    days: int = 365
    seed: int = 7

    @property
    def start(self) -> dt.date:
        from churn_platform.simulation.generator import DEFAULT_START

        return DEFAULT_START

    def last_month_starts(self, count: int, every: int = 1) -> list[dt.date]:
        """The window's last month start and the ``count - 1`` before it, ``every`` months apart, oldest first."""
        end = self.start + dt.timedelta(days=self.days - 1)
        last = pd.Timestamp(end.replace(day=1))
        return [(last - pd.DateOffset(months=every * k)).date() for k in range(count - 1, -1, -1)]

    def until_day(self, month_start: dt.date) -> int:
        """The generator's ``until_day`` that lands the business as known on the eve of ``month_start``."""
        return (month_start - self.start).days

    def land(self, month_start: dt.date, folder: Path, actions: pd.DataFrame | None = None):
        """Write the sources (and the declaration) of the business as known on the eve of
        ``month_start`` to ``folder``, with these retention contacts made; returns the generated data."""
        from churn_platform.simulation.generator import GeneratorConfig, generate, write_sources

        config = GeneratorConfig(
            customers=self.customers,
            days=self.days,
            seed=self.seed,
            business=self.business,
            until_day=self.until_day(month_start),
        )
        data = generate(config, actions=actions)
        write_sources(data, folder)
        return data
