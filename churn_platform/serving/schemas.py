"""Request and response schemas of the prediction API, derived from the feature list."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from churn_platform.features import FEATURES, example_record


def _field(feature):
    if feature.kind == "categorical":
        annotation = Literal[feature.categories]  # type: ignore[valid-type]
        return (annotation, Field(..., description=feature.description, examples=[feature.example]))
    if feature.nullable:
        return (
            Optional[float],
            Field(None, ge=feature.minimum, description=feature.description, examples=[feature.example]),
        )
    return (float, Field(..., ge=feature.minimum, description=feature.description, examples=[feature.example]))


CustomerFeatures = create_model(  # type: ignore[call-overload]
    "CustomerFeatures",
    __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [example_record()]}),
    __doc__="One customer's features at scoring time (the columns of `scoring_features`).",
    **{f.name: _field(f) for f in FEATURES},
)


class Prediction(BaseModel):
    churn_probability: float = Field(..., ge=0, le=1, description="Probability of churning within the horizon.")
    model_name: str
    model_version: str
    request_id: str


class Health(BaseModel):
    status: Literal["ready", "degraded"]
    model_name: str
    model_version: Optional[str] = None
    detail: Optional[str] = None
