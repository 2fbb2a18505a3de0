"""The environment is read in one place (pydantic-settings): parsed, validated, and wrong values
named with the variable at fault."""

from __future__ import annotations

import datetime as dt

import pytest

from churn_platform import policy
from churn_platform.serving.config import ServingOptions
from churn_platform.settings import Settings, postgres_from_env
from churn_platform.simulation.landing import config_from_env


@pytest.fixture
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("CHURN_PLATFORM_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults_come_from_the_policy_and_empty_variables_count_as_unset(clean_env, tmp_path):
    clean_env.setenv("CHURN_PLATFORM_HOME", str(tmp_path))
    clean_env.setenv("CHURN_PLATFORM_DRIFT_THRESHOLD", "")
    clean_env.setenv("CHURN_PLATFORM_SOURCES", "")
    settings = Settings.from_env()
    assert settings.home == tmp_path.resolve()
    assert settings.drift_threshold == policy.DRIFT_THRESHOLD
    assert settings.sources is None and settings.dbt_target == "duckdb"
    # The usage partitions follow the data unless set.
    assert settings.partitions_start is None and settings.partitions_end_setting is None


def test_values_are_parsed(clean_env, tmp_path):
    clean_env.setenv("CHURN_PLATFORM_HOME", str(tmp_path))
    clean_env.setenv("CHURN_PLATFORM_DAYS", "90")
    clean_env.setenv("CHURN_PLATFORM_DRIFT_THRESHOLD", "0.25")
    clean_env.setenv("CHURN_PLATFORM_PARTITIONS_START", "2025-03-01")
    clean_env.setenv("CHURN_PLATFORM_PARTITIONS_END", " Open ")
    clean_env.setenv("CHURN_PLATFORM_ALERT_WEBHOOK_URL", "http://hooks.internal/x")
    clean_env.setenv("CHURN_PLATFORM_PG_PORT", "6543")
    clean_env.setenv("CHURN_PLATFORM_PG_PASSWORD", "s3cret")
    settings = Settings.from_env()
    assert settings.days == 90 and settings.drift_threshold == 0.25
    assert settings.partitions_start == dt.date(2025, 3, 1) and settings.partitions_end_setting == "open"
    assert settings.alert_webhook_url == "http://hooks.internal/x"
    location = postgres_from_env()
    assert location.port == 6543 and location.password == "s3cret" and "s3cret" not in repr(location)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CHURN_PLATFORM_DAYS", "a year", "valid integer"),
        ("CHURN_PLATFORM_DAYS", "0", "greater than 0"),
        ("CHURN_PLATFORM_DRIFT_THRESHOLD", "1.5", "less than or equal to 1"),
        ("CHURN_PLATFORM_PARTITIONS_START", "01/03/2025", "valid date"),
        ("CHURN_PLATFORM_PARTITIONS_END", "someday", "valid date"),
        ("CHURN_PLATFORM_PG_PORT", "postgres", "valid integer"),
    ],
)
def test_a_bad_value_names_its_variable(clean_env, tmp_path, variable, value, says):
    clean_env.setenv("CHURN_PLATFORM_HOME", str(tmp_path))
    clean_env.setenv(variable, value)
    with pytest.raises(ValueError, match=f"{variable}='{value}'") as error:
        Settings.from_env()
    assert says in str(error.value)


def test_the_simulation_and_serving_read_their_variables_the_same_way(clean_env):
    clean_env.setenv("CHURN_PLATFORM_CUSTOMERS", "300")
    clean_env.setenv("CHURN_PLATFORM_SEED", "")
    config = config_from_env(days=60)
    assert (config.customers, config.days, config.seed) == (300, 60, 7)
    clean_env.setenv("CHURN_PLATFORM_CUSTOMERS", "many")
    with pytest.raises(ValueError, match="CHURN_PLATFORM_CUSTOMERS='many'"):
        config_from_env()

    clean_env.setenv("CHURN_PLATFORM_SERVING_MAX_BATCH_SIZE", "64")
    options = ServingOptions.from_env(batch_wait_timeout_s=0.01)
    assert options.max_batch_size == 64 and options.batch_wait_timeout_s == 0.01
    clean_env.setenv("CHURN_PLATFORM_SERVING_MAX_BATCH_SIZE", "0")
    with pytest.raises(ValueError, match="CHURN_PLATFORM_SERVING_MAX_BATCH_SIZE='0'"):
        ServingOptions.from_env()
