"""Data contracts: every row is accepted or quarantined with a reason, and the counts reconcile."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from churn_platform.simulation.generator import SOURCE_NAMES, GeneratorConfig, generate
from churn_platform.sources.contracts import CONTRACTS, QUARANTINE_REASON, ContractError, apply_contract

NOW = dt.datetime(2026, 6, 1)


@pytest.fixture(scope="module")
def clean():
    return generate(GeneratorConfig(customers=200, days=120, seed=4))


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_clean_generated_sources_pass_their_contracts(clean, name):
    frame = getattr(clean, name)
    result = apply_contract(frame, CONTRACTS[name], now=NOW)
    assert result.quarantined.empty, result.quarantined.head()
    assert len(result.accepted) == len(frame)


def test_each_kind_of_fault_is_quarantined_with_its_reason(clean):
    invoices = clean.billing_invoices.head(10).copy()
    invoices = invoices.astype({"amount": "object", "invoice_id": "object"})
    invoices.loc[0, "amount"] = -5.0
    invoices.loc[1, "status"] = "refunded"
    invoices.loc[2, "invoice_id"] = None
    invoices.loc[3, "invoice_date"] = pd.Timestamp("2099-01-01")
    invoices.loc[4, "amount"] = "twelve"
    duplicate = invoices.iloc[[5]]
    batch = pd.concat([invoices, duplicate], ignore_index=True)

    result = apply_contract(batch, CONTRACTS["billing_invoices"], now=NOW)

    assert result.received == len(batch) == len(result.accepted) + len(result.quarantined)
    reasons = result.quarantined[QUARANTINE_REASON].tolist()
    assert reasons == [
        "out_of_range: amount below 0",
        "unknown_category: status not in paid/late/failed/open",
        "null_key: invoice_id is empty",
        "future_timestamp: invoice_date after the load time (2026-06-01 UTC)",
        "wrong_type: amount is not a float",
        "duplicate_key: invoice_id",
    ]
    assert result.reasons() == {
        "out_of_range": 1,
        "unknown_category": 1,
        "null_key": 1,
        "future_timestamp": 1,
        "wrong_type": 1,
        "duplicate_key": 1,
    }
    # The quarantined rows keep what was received, as text.
    assert result.quarantined.loc[4, "amount"] == "twelve"
    # Accepted rows are typed as the contract says.
    assert result.accepted["invoice_id"].dtype == "int64"
    assert result.accepted["amount"].dtype == "float64"


def test_categories_are_normalised_not_rejected_for_case_and_spaces(clean):
    crm = clean.crm_customers.head(3).copy()
    crm.loc[0, "plan"] = " Pro "
    result = apply_contract(crm, CONTRACTS["crm_customers"], now=NOW)
    assert result.quarantined.empty
    assert result.accepted.loc[0, "plan"] == "pro"


def test_text_numbers_and_dates_from_csv_are_accepted(clean):
    usage = clean.usage_events.head(5).astype(str)
    result = apply_contract(usage, CONTRACTS["usage_events"], now=NOW)
    assert result.quarantined.empty
    assert result.accepted["sessions"].dtype == "int64"
    np.testing.assert_allclose(result.accepted["minutes"], clean.usage_events.head(5)["minutes"])


def test_a_missing_contract_column_is_an_error_that_names_it(clean):
    with pytest.raises(ContractError, match="feature_uses"):
        apply_contract(clean.usage_events.drop(columns=["feature_uses"]), CONTRACTS["usage_events"], now=NOW)
