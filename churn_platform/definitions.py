"""The code location's Definitions, loaded by workspace.yaml and `dagster dev`.

Locations come from the environment (see churn_platform.settings); without
CHURN_PLATFORM_SOURCES the built-in simulation is the source (see churn_platform.apps.location).
"""

from churn_platform.apps.location import platform_definitions
from churn_platform.settings import Settings

defs = platform_definitions(Settings.from_env())
