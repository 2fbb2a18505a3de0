"""The declaration's format, a business's source contracts and its feature catalogue as Markdown, for
the README (``churn_platform.apps.readme`` writes them there; a test keeps them in step)."""

from __future__ import annotations

import typing

from pydantic import BaseModel

from churn_platform.business.catalogue import Catalogue
from churn_platform.business.declaration import Declaration
from churn_platform.sources.contracts import contracts_for


def contracts_markdown(declaration: Declaration) -> str:
    parts = []
    for role, contract in contracts_for(declaration).items():
        location = declaration.source(role).location
        parts.append(
            f"**`{role}`** from `{location}` (contract v{contract.version}): {contract.description} "
            f"Key: `{', '.join(contract.key)}`; time column: `{contract.time_column}`.\n"
        )
        parts.append("| column | read from | type | required | rule |\n|---|---|---|---|---|")
        for c in contract.columns:
            rules = []
            if c.allowed:
                rules.append("one of " + ", ".join(f"`{a}`" for a in c.allowed))
            if c.minimum is not None:
                rules.append(f">= {c.minimum:g}")
            if c.type in ("date", "timestamp") and not c.absent:
                rules.append("not in the future")
            source = "(not declared: empty)" if c.absent else f"`{c.label}`"
            required = "yes" if not c.nullable else "no"
            parts.append(f"| `{c.name}` | {source} | {c.type} | {required} | {'; '.join(rules)} |")
        parts.append("")
    return "\n".join(parts)


def catalogue_markdown(catalogue: Catalogue) -> str:
    rows = ["| feature | kind | from | meaning |", "|---|---|---|---|"]
    for f in catalogue.features:
        rows.append(f"| `{f.name}` | {f.kind} | {f.role} | {f.description} |")
    return "\n".join(rows)


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return " or ".join(_type_name(a) for a in args)
    if origin is dict:
        return f"mapping of name → {_type_name(args[1])}" if len(args) == 2 else "mapping"
    if origin is tuple:
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is typing.Annotated:
        return _type_name(args[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return getattr(annotation, "__name__", str(annotation))


def declaration_reference() -> str:
    """Every section and field of the declaration, with its type, default and meaning (the models'
    own descriptions)."""
    seen: list[type[BaseModel]] = []

    def collect(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.append(model)
        for field in model.model_fields.values():
            for candidate in _models_in(field.annotation):
                collect(candidate)

    collect(Declaration)
    parts = []
    for model in seen:
        doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        parts.append(f"##### {model.__name__}\n\n{doc}\n" if doc else f"##### {model.__name__}\n")
        parts.append("| field | type | default | meaning |\n|---|---|---|---|")
        for name, field in model.model_fields.items():
            default = "required" if field.is_required() else f"`{_default(field)}`"
            description = (field.description or "").replace("|", "\\|")
            parts.append(f"| `{name}` | {_type_name(field.annotation)} | {default} | {description} |")
        parts.append("")
    return "\n".join(parts)


def _default(field) -> str:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}"
    return "null" if value is None else str(value)


def _models_in(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found
