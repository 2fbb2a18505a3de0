"""The code location's Definitions, loaded by workspace.yaml and `dagster dev`.

Locations come from the environment (see churn_platform.settings).
"""

from churn_platform.defs import build_definitions
from churn_platform.settings import Settings

defs = build_definitions(Settings.from_env())
