"""Source readers give clear errors and lose nothing silently."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from churn_platform.simulation.generator import GeneratorConfig
from churn_platform.simulation.landing import ensure_generated
from churn_platform.sources.readers import SourceError, read_source_file


def test_missing_source_file_names_what_was_expected(tmp_path):
    with pytest.raises(SourceError, match=r"usage_events\.parquet or usage_events\.csv"):
        read_source_file(tmp_path, "usage_events")


def test_a_location_may_name_its_file_with_its_suffix(tmp_path):
    pd.DataFrame({"customer_id": [1]}).to_csv(tmp_path / "Accounts Export.csv", index=False)
    assert read_source_file(tmp_path, "Accounts Export.csv")["customer_id"].tolist() == ["1"]
    assert read_source_file(tmp_path, "Accounts Export")["customer_id"].tolist() == ["1"]


def test_unreadable_file_is_reported_with_its_path(tmp_path):
    (tmp_path / "crm_customers.parquet").write_bytes(b"not parquet")
    with pytest.raises(SourceError, match=r"crm_customers\.parquet"):
        read_source_file(tmp_path, "crm_customers")


def test_generation_into_the_landing_zone_is_idempotent(tmp_path):
    config = GeneratorConfig(customers=40, days=90, seed=2)
    ensure_generated(tmp_path, config)
    first = (tmp_path / "usage_events.parquet").stat().st_mtime_ns
    ensure_generated(tmp_path, config)
    assert (tmp_path / "usage_events.parquet").stat().st_mtime_ns == first
    manifest = json.loads((tmp_path / "_generator.json").read_text())
    assert manifest["config"]["customers"] == 40
    # Another config regenerates.
    ensure_generated(tmp_path, GeneratorConfig(customers=41, days=90, seed=2))
    assert pd.read_parquet(tmp_path / "crm_customers.parquet").customer_id.nunique() == 41
