"""The built-in businesses' declarations and feature catalogues, for tests that need a concrete business."""

from __future__ import annotations

from churn_platform.business.catalogue import build_catalogue
from churn_platform.business.declaration import load_declaration
from churn_platform.simulation.businesses import declaration_path

B2B = load_declaration(declaration_path("saas_b2b"))
"""The built-in B2B example's declaration."""
CATALOGUE = build_catalogue(B2B)
"""Its feature catalogue (no event types: its usage comes as daily measures)."""

GENERATED_NAME = {role: B2B.source(role).location for role in B2B.present}
"""The generator's file (and ``GeneratedData`` attribute) of each B2B source role."""


def b2b_contracts():
    from churn_platform.sources.contracts import contracts_for

    return contracts_for(B2B)
