"""Documentation that must not drift from the code."""

from __future__ import annotations

from churn_platform.apps.readme import render
from churn_platform.settings import REPO_DIR


def test_readme_generated_sections_match_the_code():
    """The source contracts, the automation table and the counts and defaults the README states."""
    readme = (REPO_DIR / "README.md").read_text()
    assert render(readme) == readme, "README's generated sections are stale: run `python -m churn_platform.apps.readme`"


def test_readme_curl_example_is_a_valid_request():
    import json
    import re

    from churn_platform.serving.schemas import columns_from_catalogue, record_model
    from churn_platform_tests.business import CATALOGUE

    readme = (REPO_DIR / "README.md").read_text()
    body = re.search(
        r"curl -s localhost:8000/v1/predict -H 'content-type: application/json' -d '(\{.*?\})'", readme, re.S
    )
    assert body, "the README has no curl example for /v1/predict"
    record_model(columns_from_catalogue(CATALOGUE), CATALOGUE).model_validate(json.loads(body.group(1)))
