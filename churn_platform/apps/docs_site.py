"""dbt docs for analysts: generated against a built warehouse (so the catalog has every
column's type and row counts) and served on a local port. `make docs` does both."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from churn_platform.settings import DBT_PROJECT_DIR

DOCS_FILES = ("index.html", "manifest.json", "catalog.json")


class DocsError(RuntimeError):
    pass


def _dbt(args: list[str], warehouse: Path, target_path: Path) -> subprocess.CompletedProcess:
    from churn_platform.defs.dbt import dbt_executable

    env = {
        **os.environ,
        "CHURN_PLATFORM_TARGET": "duckdb",
        "CHURN_PLATFORM_WAREHOUSE": str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    }
    return subprocess.run(
        [
            dbt_executable(),
            *args,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(target_path),
        ],
        env=env,
        capture_output=True,
        text=True,
    )


FEATURE_MODELS = ("customer_features", "training_set", "scoring_features", "survival_set", "uplift_training_set")
"""The models whose columns are the feature catalogue's: each generated column gets its description."""


def declared_columns(declaration) -> dict[str, str]:
    """The meaning of each column the declaration adds to the models (attributes, measures, their
    previous values) and where each raw column is read from, by column name."""
    from churn_platform.sources.contracts import contracts_for

    meanings: dict[str, str] = {}
    for role, contract in contracts_for(declaration).items():
        for c in contract.columns:
            source = "not declared: empty" if c.absent else f"read from the business's column `{c.label}`"
            meanings.setdefault(
                c.name, f"{c.description or c.name.replace('_', ' ').capitalize() + '.'} ({source}, {role})"
            )
    for name in declaration.sources.accounts.attributes:
        meanings[f"previous_{name}"] = f"The {name.replace('_', ' ')} of the customer's previous version."
    return meanings


def describe_features(target_path: Path, catalogue: list[tuple[str, str, str]], declaration) -> int:
    """Describe, in the manifest, every column the warehouse has (from the docs' catalog) that the
    properties files cannot name in advance: each generated feature (``catalogue``: name, kind,
    description) and each declared column (attributes, measures, their previous values), in the
    models and sources that carry it. Returns the columns described."""
    manifest_path = target_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    catalog = json.loads((target_path / "catalog.json").read_text())
    declared = declared_columns(declaration)
    features = {
        name: f"{description} ({kind}; a generated feature, see feature_catalogue)"
        for name, kind, description in catalogue
    }
    described = 0
    for kind in ("nodes", "sources"):
        for uid, entry in catalog.get(kind, {}).items():
            node = manifest[kind].get(uid)
            if node is None:
                continue
            for column in entry["columns"]:
                name = column.lower()
                text = features.get(name) if node.get("name") in FEATURE_MODELS else None
                text = text or declared.get(name)
                current = node["columns"].get(name)
                if text and not (current and current.get("description")):
                    node["columns"][name] = {
                        **(current or {"name": name, "meta": {}, "data_type": None, "tags": []}),
                        "description": text,
                    }
                    described += 1
    manifest_path.write_text(json.dumps(manifest))
    return described


def generate_docs(warehouse: Path, target_path: Path, business: dict[str, Any], declaration) -> Path:
    """``dbt docs generate`` against ``warehouse`` (a built DuckDB file) for the declared business
    (its dbt variables), into ``target_path``; every generated feature column is described."""
    warehouse = Path(warehouse)
    if not warehouse.exists():
        raise DocsError(f"no warehouse at {warehouse}: build one first (`make demo` or `churn-platform run`)")
    target_path = Path(target_path)
    target_path.mkdir(parents=True, exist_ok=True)
    # The docs read the warehouse; a copy keeps a running pipeline's lock out of the way.
    snapshot = target_path / "warehouse.duckdb"
    shutil.copyfile(warehouse, snapshot)
    try:
        variables = json.dumps({"warehouse_path": str(snapshot), **business})
        result = _dbt(["docs", "generate", "--vars", variables], snapshot, target_path)
        import duckdb

        from churn_platform.business.catalogue import catalogue_from_table

        with duckdb.connect(str(snapshot), read_only=True) as con:
            specs = [
                json.loads(s)
                for (s,) in con.execute("select spec from marts.feature_catalogue order by position").fetchall()
            ]
        full = catalogue_from_table(declaration, specs)
        catalogue = [(f.name, f.kind, f.description) for f in full.features]
    finally:
        snapshot.unlink(missing_ok=True)
    if result.returncode != 0:
        raise DocsError(f"dbt docs generate failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    missing = [name for name in DOCS_FILES if not (target_path / name).exists()]
    if missing:
        raise DocsError(f"dbt docs generate wrote no {', '.join(missing)} in {target_path}")
    describe_features(target_path, catalogue, declaration)
    return target_path


def serve_docs(target_path: Path, host: str = "127.0.0.1", port: int = 8081) -> int:
    """Serve generated docs until interrupted (a static site: index.html reads the JSON beside it)."""
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(target_path))
    with http.server.ThreadingHTTPServer((host, port), handler) as server:
        print(f"dbt docs at http://{host}:{port} (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0
