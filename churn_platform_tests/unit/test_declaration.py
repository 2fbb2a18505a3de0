"""The declaration file: one YAML per business, validated with the line and what to change, and the
feature catalogue derived from it."""

from __future__ import annotations

import pytest

from churn_platform.business.catalogue import build_catalogue, dbt_vars
from churn_platform.business.declaration import DeclarationError, load_declaration, parse_declaration
from churn_platform.simulation.businesses import BUSINESSES, declaration_path

MINIMAL = """\
business: shop
customer_id_type: text
sources:
  accounts:
    location: customers.csv
    columns: {customer_id: id, signup_time: created, cancellation_time: closed}
    attributes:
      tier: {type: categorical}
  events:
    location: clicks
    columns: {customer_id: id, time: at, type: what}
"""


@pytest.mark.parametrize("business", BUSINESSES)
def test_the_built_in_businesses_are_described_by_valid_declarations(business):
    declaration = load_declaration(declaration_path(business))
    assert declaration.business == business
    catalogue = build_catalogue(declaration, ["play", "skip"])
    assert len(catalogue) > 10 and len(set(catalogue.names)) == len(catalogue)


def test_a_minimal_declaration_has_the_defaults():
    d = parse_declaration(MINIMAL)
    assert d.present == ("accounts", "events")
    assert d.label.horizon_days == 30 and d.snapshots.every_months == 1 and d.features.windows == (7, 30, 90)
    assert d.partitions.start is None and d.policy.roc_auc_floor == 0.7


def test_mistakes_name_their_line_and_what_to_change():
    text = (
        MINIMAL.replace("signup_time: created", "signup_tme: created")
        .replace("type: categorical", "type: category")
        .replace("business: shop", "business: My Shop")
    )
    with pytest.raises(DeclarationError) as error:
        parse_declaration(text, "shop.yaml")
    message = str(error.value)
    assert message.startswith("shop.yaml: 4 problems:")
    assert "line 1: business: 'My Shop' is not a valid name" in message
    assert "line 6: sources.accounts.columns.signup_tme: not a known field here" in message
    assert "sources.accounts.columns.signup_time: required, but missing" in message
    assert "line 8: sources.accounts.attributes.tier.type: Input should be 'categorical' or 'numeric'" in message


def test_the_label_rule_must_have_its_column():
    text = MINIMAL.replace(", cancellation_time: closed", "")
    with pytest.raises(DeclarationError, match="no cancellation_time"):
        parse_declaration(text)
    with pytest.raises(DeclarationError, match=r"no sources\.subscriptions"):
        parse_declaration(text + "label: {cancellation: subscriptions}\n")


def test_not_yaml_is_a_clear_error(tmp_path):
    with pytest.raises(DeclarationError, match="line 2: not valid YAML"):
        parse_declaration("business: x\n  sources: [\n")
    with pytest.raises(DeclarationError, match="cannot read the declaration"):
        load_declaration(tmp_path / "missing.yaml")


def test_the_catalogue_follows_the_sources_declared():
    d = parse_declaration(MINIMAL)
    catalogue = build_catalogue(d, ["Add to cart", "checkout", "add-to-cart"])
    names = set(catalogue.names)
    # Per event type and window, with names made safe (and unique); totals; no invoice or ticket features.
    assert {"add_to_cart_events_30d", "checkout_events_7d", "add_to_cart_x_events_90d", "events_30d"} <= names
    assert "days_since_last_activity" in names and "tier" in names and "tenure_days" in names
    assert not any(n.startswith(("failed_payments", "tickets", "mrr")) for n in names)
    # Without value or user columns there are no value sums or distinct users.
    assert not any("_value_" in n or "users_" in n for n in names)
    # Every feature is described in words.
    assert all(len(f.description) > 10 for f in catalogue.features)
    variables = dbt_vars(d, catalogue)["churn"]
    assert variables["sources"] == ["accounts", "events"] and variables["id_type"] == "text"
    assert [f["name"] for f in variables["features"]] == list(catalogue.names)


def test_a_learned_vocabulary_gives_the_api_example_its_most_frequent_value():
    import pandas as pd

    catalogue = build_catalogue(parse_declaration(MINIMAL), ["checkout"])
    assert catalogue["tier"].example == ""
    learned = catalogue.with_examples_from(pd.DataFrame({"tier": ["gold", "silver", "gold", None]}))
    assert learned["tier"].example == "gold" and learned["tenure_days"].example == catalogue["tenure_days"].example


def test_the_event_types_that_get_features_are_chosen_by_one_rule():
    from churn_platform.business.catalogue import event_types_from

    d = parse_declaration(MINIMAL + "features: {max_event_types: 2}\n")
    found = [("play", True), ("skip", False), ("share", False)]
    assert event_types_from(d, found) == (["play", "skip"], ["play"])
    events = d.sources.events.model_copy(update={"event_types": ("share",)})
    declared = d.model_copy(update={"sources": d.sources.model_copy(update={"events": events})})
    assert event_types_from(declared, found) == (["share"], ["play"])
