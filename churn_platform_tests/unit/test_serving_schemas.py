"""The API's record schema: built from a model signature, validated fast, documented the same."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from churn_platform.serving.schemas import (
    columns_from_catalogue,
    columns_from_signature,
    record_model,
    record_validator,
)
from churn_platform_tests.business import CATALOGUE


def test_the_fast_validator_and_the_documented_model_have_one_schema():
    columns = columns_from_catalogue(CATALOGUE)
    documented = record_model(columns, CATALOGUE).model_json_schema()
    validated = TypeAdapter(record_validator(columns, CATALOGUE)).json_schema()
    assert documented["properties"] == validated["properties"]
    assert set(documented.get("required", [])) == set(validated.get("required", []))
    assert documented["additionalProperties"] is False and validated["additionalProperties"] is False


def test_the_validator_rejects_what_the_model_rejects():
    adapter = TypeAdapter(list[record_validator(columns_from_catalogue(CATALOGUE), CATALOGUE)])
    good = CATALOGUE.example_record()
    assert adapter.validate_python([good])[0]["plan"] == good["plan"]
    bad = [good, {**good, "seats": -1, "plan": "gold", "extra": 1}]
    with pytest.raises(ValidationError) as info:
        adapter.validate_python(bad)
    assert {(e["loc"][0], e["loc"][1]) for e in info.value.errors()} == {(1, "seats"), (1, "plan"), (1, "extra")}
    for value in (float("nan"), float("inf"), 2e9):
        with pytest.raises(ValidationError):
            adapter.validate_python([{**good, "mrr": value}])


def test_columns_follow_the_signature_of_a_logged_model():
    import pandas as pd
    from mlflow.models import infer_signature

    frame = pd.DataFrame([CATALOGUE.example_record()])
    signature = infer_signature(frame, [0.5])
    columns = columns_from_signature(signature)
    assert [c[0] for c in columns] == list(CATALOGUE.names)
    kinds = {name: kind for name, kind, _ in columns}
    assert kinds["plan"] == "string" and kinds["mrr"] == "double" and kinds["seats"] == "double"
    # A model trained on fewer features gets an API with fewer fields.
    smaller = record_model(columns_from_signature(infer_signature(frame[["plan", "mrr"]], [0.5])), CATALOGUE)
    assert set(smaller.model_fields) == {"plan", "mrr", "customer_id"}
