"""Point-in-time correctness, shown with the real dbt project: change only facts that became
known after a snapshot T, rebuild, and the features at T and before are unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_platform.simulation.generator import GeneratorConfig, generate
from churn_platform_tests.business import B2B, load_and_build

T = pd.Timestamp("2025-07-01")


def assert_unchanged_up_to_t(original: pd.DataFrame, changed: pd.DataFrame, min_rows: int, moved: list[str]) -> None:
    """The features of every snapshot at or before T are identical in both builds, and the rewrite
    did change the ``moved`` columns of later snapshots, so the comparison could have failed."""

    def upto(frame, include: bool):
        mask = pd.to_datetime(frame.snapshot_date) <= T
        return frame[mask if include else ~mask].reset_index(drop=True)

    assert len(upto(original, True)) > min_rows
    pd.testing.assert_frame_equal(upto(original, True), upto(changed, True))
    assert not upto(original, False)[moved].equals(upto(changed, False)[moved])


def rewrite_the_future(data) -> dict[str, pd.DataFrame]:
    """Change every fact that became known at or after T; leave everything known before T alone."""
    rng = np.random.default_rng(0)
    usage = data.usage_events.copy()
    later = usage.event_date >= T
    usage.loc[later, "sessions"] = usage.loc[later, "sessions"] * 3 + 1
    usage.loc[later, "minutes"] = 0.5
    usage = pd.concat([usage[~later], usage[later].sample(frac=0.5, random_state=1)], ignore_index=True)

    invoices = data.billing_invoices.copy()
    later = invoices.invoice_date >= T
    invoices.loc[later, "status"] = "failed"
    invoices.loc[later, "amount"] *= 7
    # Payments that arrived at or after T may move, as long as they stay at or after T.
    paid_later = ~later & (invoices.paid_at >= T)
    invoices.loc[paid_later, "paid_at"] += pd.Timedelta(days=5)

    tickets = data.support_tickets.copy()
    later = tickets.created_at >= T
    tickets.loc[later, "priority"] = "urgent"
    tickets.loc[later, "satisfaction_score"] = 1
    resolved_later = ~later & (tickets.resolved_at >= T)
    tickets.loc[resolved_later, "resolved_at"] += pd.Timedelta(days=3)
    tickets.loc[resolved_later, "satisfaction_score"] = 5

    crm = data.crm_customers.copy()
    later = crm.updated_at >= T
    crm.loc[later, "plan"] = rng.choice(["basic", "pro", "enterprise"], size=int(later.sum()))
    crm.loc[later, "seats"] = crm.loc[later, "seats"] * 2
    return {"crm_customers": crm, "usage_events": usage, "billing_invoices": invoices, "support_tickets": tickets}


@pytest.mark.slow
def test_features_at_a_snapshot_ignore_everything_known_after_it(tmp_path):
    data = generate(GeneratorConfig(customers=400, days=365, seed=21))
    original = load_and_build(B2B, data.sources(), tmp_path / "original.duckdb", tmp_path)
    changed = load_and_build(B2B, rewrite_the_future(data), tmp_path / "changed.duckdb", tmp_path)
    assert_unchanged_up_to_t(original, changed, 1000, ["sessions_30d", "failed_payments_90d"])


def rewrite_the_consumer_future(data) -> dict[str, pd.DataFrame]:
    """The consumer app's facts known at or after T, changed: events, payments, subscription ends and
    plans, users who signed up later."""
    events = data.app_events.copy()
    later = events.event_ts >= T
    events.loc[later, "event_name"] = "cancel_flow_view"
    events.loc[later, "seconds_listened"] = 1.0
    events = pd.concat([events[~later], events[later].sample(frac=0.5, random_state=2)], ignore_index=True)

    payments = data.payments.copy()
    payments.loc[payments.charged_at >= T, "amount_eur"] *= 7

    subs = data.subscriptions.copy()
    ends_later = subs.end_ts >= T
    subs.loc[ends_later, "end_ts"] += pd.Timedelta(days=5)
    starts_later = subs.start_ts >= T
    subs.loc[starts_later, ["plan_name", "price_eur_month"]] = ["family", 99.0]

    users = data.users.copy()
    users.loc[users.created_at >= T, "country"] = "zz"
    return {"users": users, "app_events": events, "payments": payments, "subscriptions": subs}


@pytest.mark.slow
def test_the_consumer_apps_features_at_a_snapshot_ignore_everything_known_after_it(tmp_path):
    from churn_platform.simulation.consumer import EVENT_TYPES
    from churn_platform_tests.business import CONSUMER

    data = generate(GeneratorConfig(customers=300, days=365, seed=21, business="consumer_app"))
    types = list(EVENT_TYPES)
    original = load_and_build(
        CONSUMER, data.sources(), tmp_path / "original.duckdb", tmp_path, event_types=types, valued_types=["play"]
    )
    changed = load_and_build(
        CONSUMER,
        rewrite_the_consumer_future(data),
        tmp_path / "changed.duckdb",
        tmp_path,
        event_types=types,
        valued_types=["play"],
    )
    assert_unchanged_up_to_t(original, changed, 500, ["play_events_30d", "mrr"])
