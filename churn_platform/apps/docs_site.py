"""dbt docs for analysts: generated against a built warehouse (so the catalog has every
column's type and row counts) and served on a local port. `make docs` does both."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

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


def generate_docs(warehouse: Path, target_path: Path) -> Path:
    """``dbt docs generate`` against ``warehouse`` (a built DuckDB file), into ``target_path``."""
    warehouse = Path(warehouse)
    if not warehouse.exists():
        raise DocsError(f"no warehouse at {warehouse}: build one first (`make demo` or `churn-platform run`)")
    target_path = Path(target_path)
    target_path.mkdir(parents=True, exist_ok=True)
    # The docs read the warehouse; a copy keeps a running pipeline's lock out of the way.
    snapshot = target_path / "warehouse.duckdb"
    shutil.copyfile(warehouse, snapshot)
    try:
        result = _dbt(["docs", "generate"], snapshot, target_path)
    finally:
        snapshot.unlink(missing_ok=True)
    if result.returncode != 0:
        raise DocsError(f"dbt docs generate failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    missing = [name for name in DOCS_FILES if not (target_path / name).exists()]
    if missing:
        raise DocsError(f"dbt docs generate wrote no {', '.join(missing)} in {target_path}")
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
