"""The generator: deterministic, realistic, and with churn that behaviour explains."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_platform.simulation.generator import SOURCE_NAMES, SOURCES_OF, GeneratorConfig, generate, write_sources
from churn_platform.sources.readers import read_source_file
from churn_platform_tests.business import GENERATED_NAME, b2b_contracts

ROLE = {name: role for role, name in GENERATED_NAME.items()}


@pytest.fixture(scope="module")
def data():
    return generate(GeneratorConfig(customers=3_000, days=365, seed=3))


def test_same_seed_gives_identical_sources():
    a = generate(GeneratorConfig(customers=300, days=120, seed=5))
    b = generate(GeneratorConfig(customers=300, days=120, seed=5))
    for name in SOURCE_NAMES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    pd.testing.assert_frame_equal(a.churn_truth, b.churn_truth)


def test_another_seed_gives_other_sources():
    a = generate(GeneratorConfig(customers=300, days=120, seed=5))
    b = generate(GeneratorConfig(customers=300, days=120, seed=6))
    assert not a.usage_events.equals(b.usage_events)


def test_sources_have_their_contract_columns_and_keys(data):
    for name in SOURCE_NAMES:
        frame = getattr(data, name)
        assert set(b2b_contracts()[ROLE[name]].source_columns) <= set(frame.columns)
        assert len(frame) > 0
    assert not data.crm_customers.duplicated(["customer_id", "updated_at"]).any()
    assert data.billing_invoices.invoice_id.is_unique
    assert data.support_tickets.ticket_id.is_unique
    assert not data.usage_events.duplicated(["customer_id", "event_date"]).any()
    known = set(data.crm_customers.customer_id)
    for name in ("usage_events", "billing_invoices", "support_tickets"):
        assert set(getattr(data, name).customer_id) <= known


def test_crm_keeps_a_history_of_versions(data):
    crm = data.crm_customers
    versions = crm.groupby("customer_id").size()
    assert versions.max() > 2  # signup state, changes, cancellation
    assert crm.groupby("customer_id").updated_at.is_monotonic_increasing.all()
    # Cancellation is written on the last version only, at the end of the day it happened.
    cancelled = crm[crm.cancelled_at.notna()]
    assert cancelled.customer_id.is_unique
    last = crm.groupby("customer_id").tail(1).set_index("customer_id")
    assert last.loc[cancelled.customer_id, "cancelled_at"].notna().all()
    assert (cancelled.updated_at.dt.normalize() == cancelled.cancelled_at).all()
    # Both upgrades and downgrades happen.
    crm = crm.assign(previous=crm.groupby("customer_id").seats.shift())
    changes = crm.dropna(subset=["previous"])
    assert (changes.seats > changes.previous).any() and (changes.seats < changes.previous).any()


def test_faults_are_recorded_and_the_contracts_quarantine_exactly_them():
    import datetime as dt

    from churn_platform.sources.contracts import apply_contract

    contracts = b2b_contracts()

    faulty = generate(GeneratorConfig(customers=400, days=120, seed=8, fault_rate=0.03))
    assert set(faulty.faults.fault) == {
        "duplicate",
        "null_key",
        "null_value",
        "negative_value",
        "unknown_category",
        "future_timestamp",
        "wrong_type",
    }
    for name in SOURCE_NAMES:
        frame = getattr(faulty, name)
        result = apply_contract(frame, contracts[ROLE[name]], now=dt.datetime(2026, 6, 1))
        injected = faulty.faults[faulty.faults.source == name]
        assert len(result.quarantined) == len(injected), name
        assert len(result.accepted) + len(result.quarantined) == len(frame)
        # Each kind of fault gets its own reason.
        as_reason = {"negative_value": "out_of_range", "duplicate": "duplicate_key"}
        assert (
            result.reasons()
            == injected.fault.map(lambda k, as_reason=as_reason: as_reason.get(k, k)).value_counts().to_dict()
        ), name


def test_price_increase_scenario_raises_invoice_amounts_from_its_start_day():
    base = generate(GeneratorConfig(customers=500, days=120, seed=9))
    drifted = generate(
        GeneratorConfig(customers=500, days=120, seed=9, drift_scenario="price_increase", drift_start_day=60)
    )
    start = pd.Timestamp("2025-01-01") + pd.Timedelta(days=60)

    def mean_amount(d, after):
        inv = d.billing_invoices
        return inv[(inv.invoice_date >= start) == after].amount.mean()

    assert mean_amount(drifted, False) == pytest.approx(mean_amount(base, False))
    assert mean_amount(drifted, True) > 1.15 * mean_amount(base, True)


def test_usage_shift_scenario_lowers_sessions_after_its_start_day():
    base = generate(GeneratorConfig(customers=500, days=120, seed=9))
    drifted = generate(
        GeneratorConfig(customers=500, days=120, seed=9, drift_scenario="usage_shift", drift_start_day=60)
    )
    start = pd.Timestamp("2025-01-01") + pd.Timedelta(days=60)
    after = lambda d: d.usage_events[d.usage_events.event_date >= start].sessions.sum()  # noqa: E731
    assert after(drifted) < 0.85 * after(base)


def test_churned_customers_stop_producing_data(data):
    churn = data.churn_truth.dropna(subset=["churn_date"]).set_index("customer_id").churn_date
    usage = data.usage_events.join(churn.rename("churn_date"), on="customer_id", how="inner")
    assert len(usage) > 0
    # Usage is drawn before churn on the day of churn, never after it.
    assert (usage.event_date <= usage.churn_date).all()
    invoices = data.billing_invoices.join(churn.rename("churn_date"), on="customer_id", how="inner")
    assert (invoices.invoice_date <= invoices.churn_date).all()


def test_churn_rate_is_plausible_for_a_subscription_business(data):
    share = data.churn_truth.churn_date.notna().mean()
    assert 0.15 < share < 0.6, share


def test_usage_declines_before_churn(data):
    """Sessions in the 30 days before churn are clearly below the 30 days before those."""
    churn = data.churn_truth.dropna(subset=["churn_date"]).set_index("customer_id").churn_date
    u = data.usage_events.join(churn.rename("churn_date"), on="customer_id", how="inner")
    days_before = (u.churn_date - u.event_date).dt.days
    last = u[days_before.between(0, 29)].groupby("customer_id").sessions.sum()
    prior = u[days_before.between(30, 59)].groupby("customer_id").sessions.sum()
    both = pd.concat([last, prior], axis=1, keys=["last", "prior"]).fillna(0)
    both = both[both.prior > 0]
    assert len(both) > 100
    assert both["last"].sum() / both["prior"].sum() < 0.85


def test_failed_payments_and_monthly_contracts_raise_churn(data):
    crm = data.crm_customers.groupby("customer_id").first()
    churned = data.churn_truth.set_index("customer_id").churn_date.notna()
    failed = data.billing_invoices.assign(failed=lambda d: d.status == "failed").groupby("customer_id").failed.any()
    frame = pd.DataFrame({"churned": churned, "failed": failed.reindex(churned.index, fill_value=False)})
    frame["contract"] = crm.contract_type
    assert frame[frame.failed].churned.mean() > frame[~frame.failed].churned.mean() + 0.05
    by_contract = frame.groupby("contract").churned.mean()
    assert by_contract["monthly"] > by_contract["annual"] + 0.05


def test_ground_truth_probabilities_are_probabilities(data):
    p = data.churn_probability_truth.churn_probability_30d
    assert p.between(0, 1).all()
    assert 0.01 < p.mean() < 0.2


def test_written_files_read_back_identically(tmp_path, data):
    counts = write_sources(data, tmp_path / "parquet")
    assert counts == {name: len(getattr(data, name)) for name in SOURCES_OF["saas_b2b"]}
    for name in SOURCES_OF["saas_b2b"]:
        pd.testing.assert_frame_equal(read_source_file(tmp_path / "parquet", name), getattr(data, name))
    assert (tmp_path / "parquet" / "_ground_truth" / "churn_truth.parquet").exists()


def test_csv_sources_are_readable(tmp_path):
    small = generate(GeneratorConfig(customers=50, days=90, seed=1))
    write_sources(small, tmp_path, fmt="csv")
    frame = read_source_file(tmp_path, "billing_invoices")
    assert len(frame) == len(small.billing_invoices)
    # Read as text (the data contract types every column, the same way for every format).
    assert np.allclose(frame.amount.astype(float), small.billing_invoices.amount)


@pytest.mark.parametrize(
    "kwargs",
    [{"customers": 0}, {"days": 30}, {"drift_scenario": "meteor"}, {"fault_rate": 0.7}, {"drift_start_day": 400}],
)
def test_invalid_config_is_refused_with_the_reason(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        GeneratorConfig(**kwargs)


def test_streamed_generation_writes_the_same_sources(tmp_path):
    from churn_platform.simulation.generator import generate_to_dir

    config = GeneratorConfig(customers=300, days=100, seed=13)
    _, counts = generate_to_dir(config, tmp_path / "streamed")
    in_memory = generate(config)
    write_sources(in_memory, tmp_path / "memory")
    for name in SOURCE_NAMES:
        pd.testing.assert_frame_equal(
            read_source_file(tmp_path / "streamed", name), read_source_file(tmp_path / "memory", name)
        )
        assert counts[name] == len(getattr(in_memory, name))
