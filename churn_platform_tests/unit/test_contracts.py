"""Data contracts from the declaration: every row is accepted or quarantined with every rule it
breaks, under the business's own column names, and the counts reconcile."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from churn_platform.business.declaration import parse_declaration
from churn_platform.simulation.generator import GeneratorConfig, generate
from churn_platform.sources.contracts import QUARANTINE_REASON, ContractError, apply_contract, contracts_for
from churn_platform_tests.business import B2B, GENERATED_NAME, b2b_contracts

NOW = dt.datetime(2026, 6, 1)
CONTRACTS = b2b_contracts()


@pytest.fixture(scope="module")
def clean():
    return generate(GeneratorConfig(customers=200, days=120, seed=4))


@pytest.mark.parametrize("role", B2B.present)
def test_clean_generated_sources_pass_their_contracts(clean, role):
    frame = getattr(clean, GENERATED_NAME[role])
    result = apply_contract(frame, CONTRACTS[role], now=NOW)
    assert result.quarantined.empty, result.quarantined.head()
    assert len(result.accepted) == len(frame)


def test_each_kind_of_fault_is_quarantined_with_its_reason_in_the_business_names(clean):
    invoices = clean.billing_invoices.head(10).copy()
    invoices = invoices.astype({"amount": "object", "invoice_id": "object"})
    invoices.loc[0, "amount"] = -5.0
    invoices.loc[1, "status"] = "refunded"
    invoices.loc[2, "invoice_id"] = None
    invoices.loc[3, "invoice_date"] = pd.Timestamp("2099-01-01")
    invoices.loc[4, "amount"] = "twelve"
    duplicate = invoices.iloc[[5]]
    batch = pd.concat([invoices, duplicate], ignore_index=True)

    result = apply_contract(batch, CONTRACTS["invoices"], now=NOW)

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
    # Accepted rows are typed as the contract says, under the platform's names.
    assert result.accepted["invoice_id"].dtype == object
    assert result.accepted["amount"].dtype == "float64"
    assert "issued_at" in result.accepted.columns and "invoice_date" not in result.accepted.columns


def test_every_rule_a_row_breaks_is_recorded(clean):
    crm = clean.crm_customers.head(4).copy().astype({"seats": "object"})
    crm.loc[0, "plan"] = "platinum"
    crm.loc[0, "region"] = "mars"
    crm.loc[0, "seats"] = -2
    result = apply_contract(crm, CONTRACTS["accounts"], now=NOW)
    assert len(result.quarantined) == 1
    reason = result.quarantined[QUARANTINE_REASON].iloc[0]
    assert reason.split("; ") == [
        "out_of_range: seats below 1",
        "unknown_category: plan not in basic/pro/enterprise",
        "unknown_category: region not in na/emea/apac/latam",
    ] or sorted(reason.split("; ")) == sorted(
        [
            "out_of_range: seats below 1",
            "unknown_category: plan not in basic/pro/enterprise",
            "unknown_category: region not in na/emea/apac/latam",
        ]
    )
    assert result.reasons() == {"unknown_category": 2, "out_of_range": 1}


def test_categories_are_normalised_not_rejected_for_case_and_spaces(clean):
    crm = clean.crm_customers.head(3).copy()
    crm.loc[0, "plan"] = " Pro "
    result = apply_contract(crm, CONTRACTS["accounts"], now=NOW)
    assert result.quarantined.empty
    assert result.accepted.loc[0, "plan"] == "pro"


def test_without_declared_values_any_category_is_accepted(clean):
    text = (
        B2B.model_dump_json()
        .replace('"values":["basic","pro","enterprise"]', '"values":null')
        .replace('"values":["na","emea","apac","latam"]', '"values":null')
    )
    free = contracts_for(parse_declaration(text))["accounts"]
    crm = clean.crm_customers.head(3).copy()
    crm.loc[0, "plan"] = "Platinum Plus"
    crm.loc[1, "region"] = "mars"
    result = apply_contract(crm, free, now=NOW)
    assert result.quarantined.empty
    assert result.accepted.loc[0, "plan"] == "platinum plus"


def test_text_numbers_and_dates_from_csv_are_accepted(clean):
    usage = clean.usage_events.head(5).astype(str)
    result = apply_contract(usage, CONTRACTS["events"], now=NOW)
    assert result.quarantined.empty
    assert result.accepted["sessions"].dtype == "float64"
    np.testing.assert_allclose(result.accepted["minutes"], clean.usage_events.head(5)["minutes"])


def test_a_missing_column_is_an_error_that_names_it_and_its_declaration(clean):
    with pytest.raises(ContractError, match=r"'feature_uses' \(named by sources.events.measures.feature_uses\)"):
        apply_contract(clean.usage_events.drop(columns=["feature_uses"]), CONTRACTS["events"], now=NOW)


def test_an_undeclared_optional_column_is_loaded_empty(clean):
    text = B2B.model_dump_json().replace('"paid_time":"paid_at"', '"paid_time":null')
    contract = contracts_for(parse_declaration(text))["invoices"]
    result = apply_contract(clean.billing_invoices.head(5).drop(columns=["paid_at"]), contract, now=NOW)
    assert result.quarantined.empty
    assert result.accepted["paid_at"].isna().all()
