"""Files in deploy/ parse and agree with the code they configure."""

from __future__ import annotations

import importlib

import yaml

from churn_platform.settings import REPO_DIR


def test_serve_config_validates_and_points_at_real_code():
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load((REPO_DIR / "deploy" / "serve_config.yaml").read_text())
    schema = ServeDeploySchema.model_validate(config) if hasattr(ServeDeploySchema, "model_validate") else ServeDeploySchema.parse_obj(config)
    (app,) = schema.applications
    module_name, attr = app.import_path.split(":")
    builder = getattr(importlib.import_module(module_name), attr)
    assert callable(builder)
    from churn_platform.serving.app import ChurnPredictor

    assert [d.name for d in app.deployments] == [ChurnPredictor.name]
    assert app.args["model_name"] == "churn_model"
    assert app.args["alias"] == "champion"
