"""The built-in simulated businesses, each described by a declaration file beside this module."""

from __future__ import annotations

from pathlib import Path

BUSINESSES: tuple[str, ...] = ("saas_b2b", "consumer_app")
"""The simulated businesses (the first is the default)."""


def declaration_path(business: str) -> Path:
    if business not in BUSINESSES:
        raise ValueError(f"unknown built-in business {business!r}: choose one of {', '.join(BUSINESSES)}")
    return Path(__file__).resolve().parent / f"{business}.yaml"
