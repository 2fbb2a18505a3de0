"""What every benchmark's results file shares: the commit measured, and new runs added to the earlier ones."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def code_version() -> str:
    """The commit measured (with ``+changes`` when the work tree differs from it)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def add_runs(out: Path, results: list[dict], note: str) -> None:
    """Write ``results`` into ``out`` before the runs it already holds (``note`` if it has none)."""
    report = json.loads(out.read_text()) if out.exists() else {}
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": report.get("note", note),
        "runs": results + report.get("runs", []),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
