"""Retention offers in the simulations: a contact changes the treated customers' hazards by their
true effect (helping most, driving sleeping dogs away), nothing before it, and the ground truth
gives every customer's true uplift and revenue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_platform.simulation import retention
from churn_platform.simulation.consumer import user_key
from churn_platform.simulation.generator import GeneratorConfig, generate

CONTACT_DAY = 180
WHEN = np.datetime64("2025-01-01") + np.timedelta64(CONTACT_DAY, "D")


def keys_of(business: str, n: int) -> np.ndarray:
    return np.arange(1, n + 1) if business == "saas_b2b" else user_key(np.arange(1, n + 1))


def churned_within(data, days: int) -> pd.Series:
    """By customer: churned in the ``days`` after the contact day."""
    truth = data.churn_truth.set_index("customer_id").churn_date
    start, end = pd.Timestamp(WHEN), pd.Timestamp(WHEN) + pd.Timedelta(days=days)
    return (truth >= start) & (truth < end)


@pytest.mark.parametrize("business", ["saas_b2b", "consumer_app"])
def test_every_customer_has_a_true_effect_and_the_truth_gives_uplift_and_revenue(business):
    data = generate(GeneratorConfig(customers=3_000, business=business))
    effect = data.retention_effect
    assert len(effect) == len(data.churn_truth) and set(effect.customer_id) == set(data.churn_truth.customer_id)
    shares = effect.segment.value_counts(normalize=True)
    assert shares["helped_a_little"] > 0.4 and 0.05 < shares["sleeping_dog"] < 0.2 and shares["persuadable"] > 0.15
    for segment, (low, high) in zip(retention.SEGMENTS, retention.RATIO_RANGES):
        assert effect.hazard_ratio[effect.segment == segment].between(low - 1e-6, high + 1e-6).all()
    truth = data.churn_probability_truth.merge(effect, on="customer_id")
    # Without contacts, what happened is the untreated world.
    np.testing.assert_allclose(truth.churn_probability_30d, truth.churn_probability_30d_untreated, rtol=1e-6)
    dogs = truth.segment == "sleeping_dog"
    assert (truth.uplift_30d[dogs] < 0).all() and (truth.uplift_30d[~dogs] >= 0).all()
    assert (truth.mrr > 0).all()


@pytest.mark.parametrize("business", ["saas_b2b", "consumer_app"])
def test_a_contact_changes_nothing_before_it_and_moves_each_segment_its_way(business):
    n = 4_000
    config = GeneratorConfig(customers=n, business=business)
    before = generate(config)
    # Everybody treated, except a control arm of every tenth customer.
    arms = np.where(np.arange(n) % 10 == 0, "control", "treated")
    actions = retention.contacts(business, keys_of(business, n), arms, WHEN, "all_in")
    after = generate(config, actions=actions)

    name, columns, treated_value, control_value = retention.actions_source(business)
    landed = after.tables[name]
    assert len(landed) == n and set(landed[columns["arm"]]) == {treated_value, control_value}
    assert before.tables[name].empty and list(before.tables[name].columns) == list(landed.columns)

    # The sources up to the day before the contact are the same.
    usage = "usage_events" if business == "saas_b2b" else "app_events"
    time = "event_date" if business == "saas_b2b" else "event_ts"
    cut = pd.Timestamp(WHEN)
    pd.testing.assert_frame_equal(
        before.tables[usage][before.tables[usage][time] < cut].reset_index(drop=True),
        after.tables[usage][after.tables[usage][time] < cut].reset_index(drop=True),
    )

    # After it, persuadable customers leave less and sleeping dogs more, over the effect's days.
    segment = after.retention_effect.set_index("customer_id").segment
    treated = pd.Series(arms == "treated", index=keys_of(business, n))
    alive = before.churn_truth.set_index("customer_id").churn_date
    alive = alive.isna() | (alive >= cut)
    rates = {}
    for label, data in (("without", before), ("with", after)):
        left = churned_within(data, retention.EFFECT_DAYS)
        for kind in ("persuadable", "sleeping_dog"):
            who = alive & treated.reindex(alive.index, fill_value=False) & (segment.reindex(alive.index) == kind)
            rates[label, kind] = left[who].mean()
    assert rates["with", "persuadable"] < 0.75 * rates["without", "persuadable"], rates
    assert rates["with", "sleeping_dog"] > 1.3 * rates["without", "sleeping_dog"], rates


def test_until_day_lands_the_window_as_known_that_day():
    full = generate(GeneratorConfig(customers=1_500, days=200))
    part = generate(GeneratorConfig(customers=1_500, days=200, until_day=120))
    last = pd.Timestamp("2025-01-01") + pd.Timedelta(days=119)
    usage = full.usage_events[full.usage_events.event_date <= last].reset_index(drop=True)
    pd.testing.assert_frame_equal(part.usage_events, usage)
    assert part.support_tickets.created_at.max() < last + pd.Timedelta(days=1)
    assert part.crm_customers.updated_at.max() < last + pd.Timedelta(days=1)
    # A churn the full window saw after the cut-off is not known yet.
    churned = part.churn_truth.churn_date.dropna()
    assert (churned <= last).all()
    assert part.churn_probability_truth.snapshot_date.max() <= last


def test_contacts_after_the_cut_off_are_not_landed_yet():
    config = GeneratorConfig(customers=200, days=200, until_day=100)
    late = retention.contacts("saas_b2b", np.arange(1, 11), ["treated"] * 10, "2025-06-01T09:00", "late")
    early = retention.contacts("saas_b2b", np.arange(11, 21), ["control"] * 10, "2025-03-01T09:00", "early")
    landed = generate(config, actions=pd.concat([late, early])).retention_actions
    assert set(landed.campaign) == {"early"} and (landed.cost == 0).all()


def test_bad_actions_are_refused_with_the_reason():
    config = GeneratorConfig(customers=100, days=120)
    unknown = retention.contacts("saas_b2b", np.array([5, 999]), ["treated", "treated"], "2025-02-01", "c")
    with pytest.raises(ValueError, match=r"do(es)? not have: \[999\]"):
        generate(config, actions=unknown)
    wrong_arm = retention.contacts("saas_b2b", np.array([5]), ["treated"], "2025-02-01", "c").assign(arm="maybe")
    with pytest.raises(ValueError, match="not maybe"):
        generate(config, actions=wrong_arm)
    with pytest.raises(ValueError, match="lack columns cost"):
        generate(config, actions=wrong_arm.drop(columns="cost").assign(arm="treated"))
    with pytest.raises(ValueError, match="until_day must lie in the window"):
        GeneratorConfig(days=120, until_day=121)
