"""Reading the raw sources: from the built-in generator or from a folder of files."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pandas as pd

from churn_platform.sources.generator import SOURCE_NAMES, GeneratorConfig, generate, write_sources

# The columns each source must have; a file without them is rejected with their names.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "crm_customers": (
        "customer_id", "signup_date", "plan", "contract_type", "region", "segment", "seats",
        "acquisition_channel", "cancelled_at", "updated_at",
    ),
    "usage_events": ("customer_id", "event_date", "sessions", "minutes", "feature_uses"),
    "billing_invoices": ("invoice_id", "customer_id", "invoice_date", "amount", "status", "paid_at"),
    "support_tickets": (
        "ticket_id", "customer_id", "created_at", "resolved_at", "category", "priority", "satisfaction_score",
    ),
}


class SourceError(ValueError):
    """A source cannot be read: missing file, missing columns, unreadable format."""


def find_source_file(directory: Path, name: str) -> Path:
    for suffix in (".parquet", ".csv"):
        candidate = Path(directory) / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    raise SourceError(
        f"source {name!r} not found: expected {name}.parquet or {name}.csv in {directory}"
    )


def read_source_file(directory: Path, name: str) -> pd.DataFrame:
    if name not in SOURCE_NAMES:
        raise SourceError(f"unknown source {name!r}; the sources are {', '.join(SOURCE_NAMES)}")
    path = find_source_file(directory, name)
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # the reader's own message says what is wrong with the file
        raise SourceError(f"cannot read {path}: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS[name] if c not in frame.columns]
    if missing:
        raise SourceError(f"{path} lacks required columns: {', '.join(missing)}")
    return frame


def ensure_generated(landing_dir: Path, config: GeneratorConfig) -> Path:
    """Generate the sources into ``landing_dir`` unless the same config is already there.

    Safe to call from several assets at once: a file lock serialises generation,
    and a manifest of the config makes the call idempotent.
    """
    landing_dir = Path(landing_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    manifest = landing_dir / "_generator.json"
    wanted = config.as_dict()
    with open(landing_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if manifest.exists() and json.loads(manifest.read_text()).get("config") == wanted:
            return landing_dir
        counts = write_sources(generate(config), landing_dir)
        manifest.write_text(json.dumps({"config": wanted, "rows": counts}, indent=2))
    return landing_dir
