"""The source contracts as Markdown, for the README (``churn_platform.apps.readme`` writes it there;
a test keeps the two in step)."""

from __future__ import annotations

from churn_platform.sources.contracts import CONTRACTS


def contracts_markdown() -> str:
    parts = []
    for name, contract in CONTRACTS.items():
        parts.append(
            f"**`{name}`** (contract v{contract.version}): {contract.description} "
            f"Key: `{', '.join(contract.key)}`; time column: `{contract.time_column}`.\n"
        )
        parts.append("| column | type | required | rule |\n|---|---|---|---|")
        for c in contract.columns:
            rules = []
            if c.allowed:
                rules.append("one of " + ", ".join(f"`{a}`" for a in c.allowed))
            if c.minimum is not None:
                rules.append(f">= {c.minimum:g}")
            if c.type in ("date", "timestamp"):
                rules.append("not in the future")
            parts.append(
                f"| `{c.name}` | {c.type} | {'yes' if not c.nullable or c.name in contract.key else 'no'} | {'; '.join(rules)} |"
            )
        parts.append("")
    return "\n".join(parts)
