"""Freshness policies per group: one place to read and change them."""

from __future__ import annotations

import datetime as dt

import dagster as dg

DAILY = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=26), warn_window=dt.timedelta(hours=24))
WEEKLY = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(days=8), warn_window=dt.timedelta(days=7))

FRESHNESS_BY_GROUP: dict[str, dg.FreshnessPolicy] = {
    "sources": DAILY,
    "staging": DAILY,
    "features": DAILY,
    "ml": WEEKLY,
    "decisions": WEEKLY,
    "monitoring": DAILY,
    "business": DAILY,
}


def freshness_for(group: str) -> dg.FreshnessPolicy:
    try:
        return FRESHNESS_BY_GROUP[group]
    except KeyError:
        raise KeyError(f"no freshness policy for group {group!r}; add one to FRESHNESS_BY_GROUP") from None
