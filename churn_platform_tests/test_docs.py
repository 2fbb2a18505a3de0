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


def test_readme_curl_example_is_a_valid_request():
    import json
    import re

    from churn_platform.serving.schemas import columns_from_features, record_model

    readme = (REPO_DIR / "README.md").read_text()
    body = re.search(r"curl -s localhost:8000/v1/predict -H 'content-type: application/json' -d '(\{.*?\})'", readme, re.S)
    assert body, "the README has no curl example for /v1/predict"
    record_model(columns_from_features()).model_validate(json.loads(body.group(1)))
