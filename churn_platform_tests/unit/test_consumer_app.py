"""The second built-in business, a consumer app: its own shape, names and ground truth, and the
platform's contracts catch every fault injected into it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from churn_platform.simulation import retention
from churn_platform.simulation.consumer import user_key
from churn_platform.simulation.generator import SOURCES_OF, GeneratorConfig, generate
from churn_platform.sources.contracts import apply_contract, contracts_for
from churn_platform_tests.business import CONSUMER, CONSUMER_NAME

ROLE = {name: role for role, name in CONSUMER_NAME.items()}


@pytest.fixture(scope="module")
def data():
    return generate(GeneratorConfig(customers=800, days=365, seed=5, business="consumer_app"))


def test_it_is_deterministic_and_has_the_declared_sources():
    a = generate(GeneratorConfig(customers=100, days=120, seed=3, business="consumer_app"))
    b = generate(GeneratorConfig(customers=100, days=120, seed=3, business="consumer_app"))
    assert set(a.tables) == set(SOURCES_OF["consumer_app"]) == set(CONSUMER_NAME.values())
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name])


def test_its_shape_differs_from_the_b2b_example(data):
    users, events = data.users, data.app_events
    assert users.user_key.str.match(r"^usr_[0-9a-f]{8}$").all() and users.user_key.is_unique
    assert "cancelled_at" not in users.columns  # churn is the end of the last subscription
    assert set(events.event_name) == {"play", "playlist_add", "share", "skip", "offline_download", "cancel_flow_view"}
    assert events.loc[events.event_name != "play", "seconds_listened"].isna().all()
    assert set(data.subscriptions.billing_cycle) == {"monthly", "annual"}
    assert (data.subscriptions.discount_rate > 0).any()
    assert "status" not in data.payments.columns


def test_event_types_have_opposite_effects_on_churn(data):
    events = data.app_events.copy()
    events["day"] = events.event_ts.dt.floor("D")
    churned = set(data.churn_truth.loc[data.churn_truth.churn_date.notna(), "customer_id"])
    per_user = events.groupby(["user_key", "event_name"]).size().unstack(fill_value=0)
    share = per_user.div(per_user.sum(axis=1), axis=0)
    leaving = share.index.isin(churned)
    # Those who left skipped and opened the cancellation flow more, and saved and shared less.
    assert share.loc[leaving, "skip"].mean() > share.loc[~leaving, "skip"].mean()
    assert share.loc[leaving, "cancel_flow_view"].mean() > 2 * share.loc[~leaving, "cancel_flow_view"].mean()
    assert share.loc[leaving, "playlist_add"].mean() < share.loc[~leaving, "playlist_add"].mean()


def test_churn_is_the_end_of_the_last_subscription(data):
    subs = data.subscriptions
    last_end = subs.groupby("user_key").end_ts.apply(lambda s: s.max() if s.notna().all() else pd.NaT)
    truth = data.churn_truth.set_index("customer_id").churn_date
    ended = last_end.dropna()
    assert len(ended) > 50
    np.testing.assert_array_equal(ended.dt.floor("D").to_numpy(), truth.reindex(ended.index).to_numpy())
    probabilities = data.churn_probability_truth.churn_probability_30d
    assert probabilities.between(0, 1).all() and 0.01 < probabilities.mean() < 0.2


def test_the_contracts_quarantine_exactly_the_injected_faults():
    # A campaign on day 60, so that the offers sent have rows to break.
    users = user_key(np.arange(1, 301))
    arms = np.where(np.arange(300) % 10 == 0, "control", "treated")
    sent = retention.contacts("consumer_app", users, arms, "2025-03-02T10:00", "spring")
    faulty = generate(
        GeneratorConfig(customers=300, days=120, seed=8, fault_rate=0.03, business="consumer_app"), actions=sent
    )
    contracts = contracts_for(CONSUMER)
    as_reason = {"negative_value": "out_of_range", "duplicate": "duplicate_key"}
    for name, frame in faulty.tables.items():
        result = apply_contract(frame, contracts[ROLE[name]], now=dt.datetime(2026, 6, 1))
        injected = faulty.faults[faulty.faults.source == name]
        assert len(result.quarantined) == len(injected) > 0, name
        assert result.reasons() == injected.fault.map(lambda k: as_reason.get(k, k)).value_counts().to_dict(), name
