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
    from churn_platform.serving.app import ChampionPointer, ChurnPredictor
    from churn_platform.serving.config import Autoscaling, PointerOptions, ServingOptions

    deployments = {d.name: d for d in app.deployments}
    assert set(deployments) == {ChampionPointer.name, ChurnPredictor.name}
    assert app.args["model_name"] == "churn_model"
    assert app.args["alias"] == "champion"
    # Each user_config is one the deployment's reconfigure() accepts, and autoscaling fits the code's model.
    ServingOptions.model_validate(deployments["ChurnPredictor"].user_config)
    PointerOptions.model_validate(deployments["ChampionPointer"].user_config)
    Autoscaling.model_validate(config["applications"][0]["deployments"][1]["autoscaling_config"])


def test_prometheus_config_parses_and_documents_real_metrics():
    import re

    text = (REPO_DIR / "deploy" / "prometheus" / "prometheus.yml").read_text()
    config = yaml.safe_load(text)
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["ray-head:8080"]
    source = (REPO_DIR / "churn_platform" / "serving" / "app.py").read_text()
    defined = set(re.findall(r'metrics\.(?:Counter|Histogram|Gauge)\(\s*"(churn_[a-z_]+)"', source))
    documented = {re.sub(r"_(total|bucket)$", "", m) for m in re.findall(r"ray_(churn_[a-z_]+)", text)}
    assert defined and documented == defined, (documented ^ defined)
