"""Request and response schemas of the prediction API.

The record schema is built from the served model's MLflow signature: its input columns,
their types and whether they are required. The model's feature catalogue (logged with it,
derived from the business's declaration) adds what a signature cannot say: descriptions,
declared categories, lower bounds and examples. A replica refuses to swap to a model whose
signature differs from the schema it was deployed with, so the API and the model
cannot disagree.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, StrictInt, create_model, field_validator
from typing_extensions import TypedDict

from churn_platform.business.catalogue import Catalogue

MAX_NUMERIC = 1e9
"""Numeric inputs above this are rejected: no feature of a customer comes near it."""

# (name, type, required) of each input column; type is one of "string", "double".
SignatureColumns = tuple[tuple[str, str, bool], ...]


def columns_from_signature(signature) -> SignatureColumns:
    """Normalise an MLflow signature's inputs to (name, "string"|"double", required)."""
    columns = []
    for spec in signature.inputs.inputs:
        kind = str(getattr(spec.type, "name", spec.type)).lower()
        columns.append(
            (spec.name, "string" if kind in ("string", "str") else "double", bool(getattr(spec, "required", True)))
        )
    return tuple(columns)


def columns_from_catalogue(catalogue: Catalogue) -> SignatureColumns:
    """The columns of a catalogue's features, as a signature would give them."""
    return tuple((f.name, "string" if f.kind == "categorical" else "double", True) for f in catalogue.features)


def _field(name: str, kind: str, required: bool, catalogue: Catalogue):
    feature = catalogue.get(name)
    description = feature.description if feature else None
    examples = [feature.example] if feature else None
    if kind == "string":
        annotation: Any = Literal[feature.categories] if feature and feature.categories else str  # type: ignore[valid-type]
        if not required:
            return (annotation | None, Field(None, description=description, examples=examples))
        return (annotation, Field(..., description=description, examples=examples))
    minimum = feature.minimum if feature else None
    nullable = (feature.nullable if feature else False) or not required
    constraints = {
        "ge": minimum,
        "le": MAX_NUMERIC,
        "allow_inf_nan": False,
        "description": description,
        "examples": examples,
    }
    if nullable:
        return (float | None, Field(None, **constraints))
    return (float, Field(..., **constraints))


def _customer_id_field():
    return (
        StrictInt | Annotated[str, Field(max_length=128)] | None,
        Field(
            None,
            description="The customer's id (a whole number or text), if known: recorded in the prediction log.",
        ),
    )


def record_model(columns: SignatureColumns, catalogue: Catalogue) -> type[BaseModel]:
    """One customer's features, as the model's signature asks for them, plus an optional customer id."""
    example = {name: catalogue[name].example for name, _, _ in columns if name in catalogue}
    fields = {name: _field(name, kind, required, catalogue) for name, kind, required in columns}
    fields["customer_id"] = _customer_id_field()
    return create_model(  # type: ignore[call-overload]
        "CustomerRecord",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [example]}),
        __doc__="One customer's features at scoring time (the columns of `scoring_features`).",
        **fields,
    )


def record_validator(columns: SignatureColumns, catalogue: Catalogue) -> Any:
    """The same record as `record_model`, as a TypedDict: validated straight into plain dicts,
    about five times faster than model instances (2 ms instead of 13 ms for 1,000 records).
    The API validates with this and documents `record_model`; a test keeps their JSON schemas equal."""
    fields: dict[str, Any] = {}
    for name, kind, required in columns:
        annotation, info = _field(name, kind, required, catalogue)
        fields[name] = Annotated[annotation, info] if info.is_required() else NotRequired[Annotated[annotation, info]]
    annotation, info = _customer_id_field()
    fields["customer_id"] = NotRequired[Annotated[annotation, info]]
    record = TypedDict("CustomerRecord", fields)  # type: ignore[misc]
    record.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return record


def predict_request_schema(record: type[BaseModel], catalogue: Catalogue) -> dict[str, Any]:
    """OpenAPI request body of /v1/predict: one record, or a list of records."""
    schema = record.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("examples", None)
    single = catalogue.example_record()
    # The second example: more of a feature that never lowers the risk (or of the first numeric one).
    riskier = next(iter(catalogue.monotone), catalogue.numeric[0] if catalogue.numeric else None)
    second = {**single, riskier: float(single[riskier] or 0) + 2} if riskier else dict(single)
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [schema, {"type": "array", "items": schema, "minItems": 1}]},
                "examples": {
                    "one": {"summary": "One customer", "value": single},
                    "several": {
                        "summary": "A list of customers",
                        "value": [single, second],
                    },
                },
            }
        },
    }


class Driver(BaseModel):
    feature: str
    impact: float = Field(..., description="How much this feature raises the probability against a typical customer.")


class Horizons(BaseModel):
    """Time to churn, from the survival model (``churn_survival@champion``)."""

    churn_probability_30d: float = Field(..., ge=0, le=1)
    churn_probability_60d: float = Field(..., ge=0, le=1)
    churn_probability_90d: float = Field(..., ge=0, le=1)
    expected_lifetime_months: float = Field(..., ge=0, description="Expected remaining months as a customer.")
    model_version: str


class Offer(BaseModel):
    """What a retention offer would do, from the uplift model (``churn_uplift@champion``)."""

    uplift: float = Field(
        ...,
        description="How much a contact lowers the churn probability (negative: a contact would raise it).",
    )
    recommended_action: Literal["contact", "do_not_contact"] = Field(
        ...,
        description=(
            "`contact` when an offer is expected to lower the risk, `do_not_contact` when it is expected to raise it "
            "or do nothing; whom a budget reaches is the retention worklist's choice, which also weighs value and cost."
        ),
    )
    model_version: str


class ScoredRecord(BaseModel):
    churn_probability: float = Field(..., ge=0, le=1, description="Probability of churning within the horizon.")
    customer_id: str | None = None
    drivers: list[Driver] | None = Field(None, description="The top drivers, when `explain=true`.")
    horizons: Horizons | None = Field(None, description="Churn probability at 30, 60, 90 days, when `horizons=true`.")
    offer: Offer | None = Field(None, description="A retention offer's expected effect, when `offer=true`.")
    model_version: str | None = Field(
        None, description="The version that answered: the champion's, or a canary challenger's for its customers."
    )
    arm: Literal["champion", "canary"] | None = Field(None, description="Which arm of a rollout answered.")


class PredictResponse(BaseModel):
    request_id: str
    model_name: str
    model_version: str
    predictions: list[ScoredRecord]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "6f1c0f3e2b7d4c4e9a3c1d2e5f607182",
                    "model_name": "churn_model",
                    "model_version": "3",
                    "predictions": [
                        {
                            "churn_probability": 0.31,
                            "customer_id": "C000042",
                            "drivers": None,
                            "horizons": {
                                "churn_probability_30d": 0.29,
                                "churn_probability_60d": 0.47,
                                "churn_probability_90d": 0.6,
                                "expected_lifetime_months": 2.6,
                                "model_version": "2",
                            },
                            "offer": {"uplift": 0.12, "recommended_action": "contact", "model_version": "1"},
                        }
                    ],
                }
            ]
        }
    )


class CustomersRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"customer_ids": ["C000001", "C000002"], "explain": False}]},
    )

    customer_ids: list[StrictInt | str] = Field(
        ...,
        min_length=1,
        description="Customers to score from the latest `scoring_features`: strings or whole numbers (answered as strings).",
    )
    explain: bool = Field(False, description="Add each prediction's top drivers.")
    horizons: bool = Field(
        False, description="Add the churn probability at 30, 60 and 90 days (`churn_survival@champion`)."
    )
    offer: bool = Field(
        False, description="Add a retention offer's expected effect and the action (`churn_uplift@champion`)."
    )

    @field_validator("customer_ids")
    @classmethod
    def _as_text(cls, ids: list) -> list[str]:
        return [str(i) for i in ids]


class CustomerResult(BaseModel):
    customer_id: str
    found: bool
    churn_probability: float | None = Field(None, ge=0, le=1)
    snapshot_date: dt.date | None = None
    drivers: list[Driver] | None = None
    horizons: Horizons | None = None
    offer: Offer | None = None
    model_version: str | None = Field(None, description="The version that answered (see `ScoredRecord`).")
    arm: Literal["champion", "canary"] | None = None
    detail: str | None = Field(None, description="Why there is no prediction for this id.")


class CustomersResponse(BaseModel):
    request_id: str
    model_name: str
    model_version: str
    features_as_of: dt.date | None = Field(None, description="The snapshot date of the scoring features used.")
    results: list[CustomerResult]
    unknown: int = Field(..., description="How many ids were not found.")


class ChallengerInfo(BaseModel):
    version: str = Field(..., description="The challenger version asked for.")
    mode: Literal["shadow", "canary"]
    share: float = Field(..., description="shadow: the share of requests it scores; canary: of customers it answers.")
    loaded: bool = Field(..., description="Whether this replica has it loaded (false: see `detail`).")
    loaded_at: dt.datetime | None = None
    detail: str | None = Field(None, description="Why it is not loaded, when it is not.")


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str
    following: Literal["alias", "pinned"] = Field(
        ..., description="Whether the version follows the alias or was pinned by an admin."
    )
    run_id: str | None = None
    trained_at: dt.datetime | None = None
    loaded_at: dt.datetime
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Headline test metrics of the registered version."
    )
    features: list[str]
    scorer: str | None = Field(
        None, description="How predictions are computed: the compiled scorer, or why the pipeline is used."
    )
    decision_models: dict[str, str | None] = Field(
        default_factory=dict,
        description="The survival and uplift models' champion versions this replica answers `horizons` and `offer` with (null: none yet).",
    )
    challenger: ChallengerInfo | None = Field(
        None, description="A challenger served beside the champion (shadow or canary), when there is one."
    )


class Health(BaseModel):
    status: Literal["ready", "degraded"]
    model_name: str
    model_version: str | None = None
    target_version: str | None = Field(None, description="The version this replica should serve (alias or pin).")
    detail: str | None = None


class SwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": "3"}, {"version": None}]})

    version: str | None = Field(
        ..., max_length=32, description="Serve this registered version; null follows the alias again."
    )


class AdminResult(BaseModel):
    target_version: str | None
    following: Literal["alias", "pinned"]
    detail: str | None = None


class ChallengerRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"version": "4", "mode": "shadow", "share": 0.5},
                {"version": "4", "mode": "canary", "share": 0.1},
                {"version": None},
                {"version": None, "reset": True},
            ]
        },
    )

    version: str | None = Field(
        ..., max_length=32, description="The registered version to serve beside the champion; null removes it."
    )
    mode: Literal["shadow", "canary"] = "shadow"
    share: float = Field(0.1, ge=0, le=1, description="shadow: the share of requests; canary: of customers (by id).")
    reset: bool = Field(
        False,
        description="Drop the admin's challenger setting (version is then ignored): follow the deployment config and "
        "the registry's @rollout version again.",
    )


class ChallengerResult(BaseModel):
    challenger: ChallengerInfo | None = Field(None, description="The challenger now, on the replica that answered.")
    detail: str | None = None
