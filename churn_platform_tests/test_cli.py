"""The command line keeps every setting from the environment that it does not override."""

from __future__ import annotations

import dataclasses

from churn_platform.cli import _settings, build_parser
from churn_platform.settings import Settings


def test_run_keeps_environment_settings_and_overrides_only_home_and_sources(monkeypatch, tmp_path):
    monkeypatch.setenv("CHURN_PLATFORM_DUCKDB_MEMORY_LIMIT", "3GB")
    monkeypatch.setenv("CHURN_PLATFORM_DRIFT_THRESHOLD", "0.42")
    monkeypatch.setenv("CHURN_PLATFORM_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    args = build_parser().parse_args(["run", "--home", str(tmp_path / "h"), "--sources", "s3://landing/x"])
    settings = _settings(args)
    expected = dataclasses.replace(Settings.from_env(), home=(tmp_path / "h").resolve(), sources="s3://landing/x")
    assert settings == expected
    assert settings.duckdb_memory_limit == "3GB"
    assert settings.drift_threshold == 0.42
    assert settings.s3_endpoint_url == "http://127.0.0.1:9000"
