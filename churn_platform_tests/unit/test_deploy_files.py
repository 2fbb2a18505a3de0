"""Files in deploy/ parse and agree with the code they configure."""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import yaml

from churn_platform.settings import REPO_DIR


def test_serve_config_validates_and_points_at_real_code():
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load((REPO_DIR / "deploy" / "serve_config.yaml").read_text())
    schema = (
        ServeDeploySchema.model_validate(config)
        if hasattr(ServeDeploySchema, "model_validate")
        else ServeDeploySchema.parse_obj(config)
    )
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
    assert defined and documented == defined, documented ^ defined


# ---- docker compose, Dockerfile, Kubernetes, Grafana, the Dagster instance ------------------

DEPLOY = REPO_DIR / "deploy"


def _string_constants(root: Path) -> set[str]:
    """Every string literal in the package's code (comments and docstrings do not count)."""
    found: set[str] = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        found.update(
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        )
    return found


def _settings_variables() -> set[str]:
    """The variables the pydantic-settings readers read (one per field, under their prefix)."""
    from churn_platform.serving.config import ENV_PREFIX as SERVING_PREFIX
    from churn_platform.serving.config import Autoscaling, ServingOptions
    from churn_platform.settings import ENV_PREFIX, Environment
    from churn_platform.simulation.landing import SimulationEnvironment

    readers = [(ENV_PREFIX, Environment), (ENV_PREFIX, SimulationEnvironment)]
    readers += [(SERVING_PREFIX, ServingOptions), (SERVING_PREFIX, Autoscaling)]
    return {prefix + name.upper() for prefix, model in readers for name in model.model_fields}


PACKAGE_STRINGS = _string_constants(REPO_DIR / "churn_platform") | _settings_variables()
DBT_PROFILE = (REPO_DIR / "dbt_project" / "profiles.yml").read_text()
DAGSTER_YAML = (DEPLOY / "dagster.yaml").read_text()


def _yaml_documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _known_variable(name: str) -> bool:
    """An environment variable the code, the dbt profile or the Dagster instance reads, or a
    standard one of the AWS SDK, MLflow, Ray, Dagster or Grafana/Postgres/MinIO images."""
    standard = (
        "AWS_",
        "MLFLOW_",
        "RAY_",
        "DAGSTER_HOME",
        "POSTGRES_",
        "MINIO_",
        "GF_",
        "PYTHON",
        "PIP_",
        "DO_NOT_TRACK",
        "DBT_SEND_ANONYMOUS_USAGE_STATS",
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS",
        "DAGSTER_AUTOMATION_TICK_SETTLE_SECONDS",
    )
    read_by_code = name in PACKAGE_STRINGS
    return name.startswith(standard) or read_by_code or name in DBT_PROFILE or name in DAGSTER_YAML


def test_dagster_yaml_loads_as_a_postgres_instance_with_retries_and_limits(tmp_path, monkeypatch):
    import shutil

    env = re.findall(r"env: ([A-Z0-9_]+)", DAGSTER_YAML)
    assert set(env) == {
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_DB",
        "DAGSTER_COMPUTE_LOGS_BUCKET",
        "CHURN_PLATFORM_S3_ENDPOINT_URL",
    }
    config = yaml.safe_load(DAGSTER_YAML)
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_retries"] == {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": True}
    limits = {
        (lim["key"], lim["value"]): lim["limit"] for lim in config["concurrency"]["runs"]["tag_concurrency_limits"]
    }
    from churn_platform.defs.automation import retrain_job

    assert limits == {("dagster/job_name", "daily_pipeline"): 1, ("dagster/job_name", retrain_job.name): 1}
    # The instance's config validates against Dagster's own schema (storage is not connected here).
    from dagster._core.instance.config import dagster_instance_config

    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    for name in env:
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "x")
    validated, _ = dagster_instance_config(str(tmp_path))
    assert validated["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


def test_compose_services_images_ports_and_environment_match_the_code():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    wanted = {
        "postgres",
        "minio",
        "mlflow",
        "dagster-webserver",
        "dagster-daemon",
        "code-location",
        "ray-head",
        "prometheus",
        "grafana",
    }
    assert wanted <= set(services), wanted - set(services)
    # Images built from deploy/Dockerfile use targets that exist in it.
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", (DEPLOY / "Dockerfile").read_text(), flags=re.M))
    for name, service in services.items():
        build = service.get("build")
        if build:
            assert build["dockerfile"] == "deploy/Dockerfile" and build["target"] in targets, name
            assert (DEPLOY / build["context"]).resolve() == REPO_DIR
    # Every variable the platform's containers get is one something reads.
    platform_env = services["code-location"]["environment"]
    unknown = [k for k in platform_env if not _known_variable(k)]
    assert not unknown, unknown
    # Settings.from_env accepts the environment as a whole (placeholders resolved).
    from churn_platform.settings import PRODUCTION_REQUIRED

    assert set(PRODUCTION_REQUIRED) <= set(platform_env)
    # Ports: the workspace reaches the code location where it listens; serve and MLflow where configured.
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    assert workspace["host"] == "code-location" and str(workspace["port"]) in (DEPLOY / "Dockerfile").read_text()
    assert (
        workspace["location_name"]
        == yaml.safe_load((REPO_DIR / "workspace.yaml").read_text())["load_from"][0]["python_module"]["location_name"]
    )
    serve = yaml.safe_load((DEPLOY / "serve_config.yaml").read_text())
    assert "8000:8000" in services["ray-head"]["ports"] and serve["http_options"]["port"] == 8000
    assert (
        serve["applications"][0]["args"]["tracking_uri"]
        == platform_env["CHURN_PLATFORM_MLFLOW_TRACKING_URI"]
        == "http://mlflow:5000"
    )
    assert "5000:5000" in services["mlflow"]["ports"] and "--port 5000" in services["mlflow"]["command"]
    assert platform_env["CHURN_PLATFORM_RAY_ADDRESS"] == "ray-head:6379"
    # Prometheus scrapes the services by their compose names and ports.
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert targets == {"ray-head:8080", "exporter:9188"}
    assert "--metrics-export-port 8080" in services["ray-head"]["command"]
    assert services["exporter"]["command"][-1] == "9188"
    # The exporter listens on 127.0.0.1 unless told otherwise; in a container it must be reachable.
    assert services["exporter"]["command"][2:4] == ["--host", "0.0.0.0"]
    # The databases the services use are the ones the init script creates.
    created = set(re.findall(r"CREATE DATABASE (\w+);", (DEPLOY / "postgres" / "init.sql").read_text()))
    assert {platform_env["CHURN_PLATFORM_PG_DATABASE"], platform_env["DAGSTER_PG_DB"], "mlflow"} <= created
    features = serve["applications"][0]["deployments"][1]["user_config"]["features_uri"]
    assert features.endswith(f"@postgres:5432/{platform_env['CHURN_PLATFORM_PG_DATABASE']}")


def test_dockerfile_commands_exist():
    text = (DEPLOY / "Dockerfile").read_text()
    for path in re.findall(r"^COPY (\S+)", text, flags=re.M):
        if path != "--from":
            assert (REPO_DIR / path).exists(), path
    scripts = {"dagster", "dagster-webserver", "dagster-daemon", "ray", "mlflow", "churn-platform", "serve"}
    from importlib.metadata import entry_points

    installed = {e.name for e in entry_points(group="console_scripts")}
    assert scripts <= installed, scripts - installed
    assert '"-m", "churn_platform.definitions"' in text


def test_kubernetes_manifests_agree_with_the_serve_config_and_each_other():
    import ray

    docs = {p.name: _yaml_documents(p) for p in (DEPLOY / "k8s").glob("*.yaml")}
    assert {
        "rayservice.yaml",
        "dagster-values.yaml",
        "mlflow.yaml",
        "platform-config.yaml",
        "secrets.example.yaml",
        "exporter.yaml",
    } <= set(docs)
    (rayservice, pvc) = docs["rayservice.yaml"]
    assert rayservice["kind"] == "RayService" and pvc["kind"] == "PersistentVolumeClaim"
    serve = yaml.safe_load((DEPLOY / "serve_config.yaml").read_text())
    assert yaml.safe_load(rayservice["spec"]["serveConfigV2"]) == serve
    cluster = rayservice["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == ray.__version__
    assert cluster["headGroupSpec"]["rayStartParams"]["metrics-export-port"] == "8080"
    config = docs["platform-config.yaml"][0]["data"]
    secret = docs["secrets.example.yaml"][0]["stringData"]
    for name in [*config, *secret]:
        assert _known_variable(name), name
    assert not set(config) & set(secret), "a setting is either config or secret"
    assert "PASSWORD" not in " ".join(config) and "TOKEN" not in " ".join(config)
    # Service names the config points at exist as Services or Helm-managed names.
    mlflow_service = next(d for d in docs["mlflow.yaml"] if d["kind"] == "Service")
    assert (
        config["CHURN_PLATFORM_MLFLOW_TRACKING_URI"]
        == f"http://{mlflow_service['metadata']['name']}:{mlflow_service['spec']['ports'][0]['port']}"
    )
    assert config["CHURN_PLATFORM_RAY_ADDRESS"] == f"{rayservice['metadata']['name']}-head-svc:6379"
    # Dagster's Helm values: the same instance settings as deploy/dagster.yaml.
    values = docs["dagster-values.yaml"][0]
    instance = yaml.safe_load(DAGSTER_YAML)
    (user,) = values["dagster-user-deployments"]["deployments"]
    assert user["dagsterApiGrpcArgs"][:2] == ["--module-name", "churn_platform.definitions"]
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == instance["concurrency"]["runs"]["tag_concurrency_limits"]
    assert values["dagsterDaemon"]["runRetries"]["maxRetries"] == instance["run_retries"]["max_retries"]
    assert values["postgresql"]["postgresqlDatabase"] == config["DAGSTER_PG_DB"]
    for name, doc_list in docs.items():
        for doc in doc_list:
            for container in _containers(doc):
                assert container["image"] in {"churn-platform:0.1.0", "churn-platform-serving:0.1.0"}, (
                    name,
                    container["image"],
                )


def _containers(doc: dict) -> list[dict]:
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "image" in node and "name" in node and isinstance(node["image"], str):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return found


def test_grafana_dashboard_covers_serving_and_pipeline_with_real_metrics():
    from churn_platform.apps.exporter import METRIC_NAMES

    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "churn_platform.json").read_text())
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("request rate", "latency", "errors", "model version", "drift share", "fresh"):
        assert topic in titles, topic
    source = (REPO_DIR / "churn_platform" / "serving" / "app.py").read_text()
    app_metrics = {
        f"ray_{m}" for m in re.findall(r'metrics\.(?:Counter|Histogram|Gauge)\(\s*"(churn_[a-z_]+)"', source)
    }
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for metric in re.findall(r"\b((?:ray_churn|churn_platform|ray_serve)_[a-z_]+)", target["expr"]):
                base = re.sub(r"_(total|bucket|sum|count)$", "", metric)
                assert base in app_metrics or metric in METRIC_NAMES or metric.startswith("ray_serve_"), (
                    panel["title"],
                    metric,
                )
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {datasource["datasources"][0]["uid"]}
