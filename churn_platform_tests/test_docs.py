"""Documentation that must not drift from the code."""

from __future__ import annotations

from churn_platform.settings import REPO_DIR
from churn_platform.sources.docs import BEGIN, END, contracts_markdown


def test_readme_source_contracts_match_the_code():
    readme = (REPO_DIR / "README.md").read_text()
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    assert readme[start:end] == contracts_markdown(), (
        "README's source contracts are stale: regenerate them with `python -m churn_platform.sources.docs`"
    )
