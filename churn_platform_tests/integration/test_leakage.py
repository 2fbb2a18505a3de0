"""Point-in-time correctness, shown with the real dbt project: change only facts that became
known after a snapshot T, rebuild, and the features at T and before are unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_platform.simulation.generator import GeneratorConfig, generate
from churn_platform_tests.business import B2B, load_and_build

T = pd.Timestamp("2025-07-01")


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

    def upto(frame, include: bool):
        mask = pd.to_datetime(frame.snapshot_date) <= T
        return frame[mask if include else ~mask].reset_index(drop=True)

    assert len(upto(original, True)) > 1000
    pd.testing.assert_frame_equal(upto(original, True), upto(changed, True))
    # The rewrite did change later snapshots, so the comparison above could have failed.
    later_original, later_changed = upto(original, False), upto(changed, False)
    assert not later_original[["sessions_30d", "failed_payments_90d"]].equals(
        later_changed[["sessions_30d", "failed_payments_90d"]]
    )
