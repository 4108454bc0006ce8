"""The parameters of POST /segment (read by `service.form_options.read_form`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from model import ModelMetadata
from service.errors import ServiceError

Output = Literal["mask", "overlay", "json", "confidence"]


class SegmentOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, max_length=200, description="model name or alias (`fast`, `accurate`); "
                              "default: the service's default model")
    output: Output = Field("mask", description="mask (PNG of class ids) | overlay (RGB PNG) | json (classes, "
                           "row-major RLE, per-class COCO RLE) | confidence (8-bit PNG: each pixel's class "
                           "probability)")
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="overlay: weight of the class colours")
    legend: bool = Field(True, description="overlay: append a legend of the classes found")
    polygons: bool = Field(False, description="json: add simplified polygons per class (outer rings and holes)")
    classes: str | None = Field(None, max_length=4000, description="only these classes, by name or id, comma-"
                                "separated (e.g. `person,car` or `12,20`); other pixels are 255 (65535 above 256 "
                                "classes) in the mask, unpainted in the overlay, absent from JSON")
    multiscale: bool = Field(False, description="test-time augmentation: 6 scales × flips (slower)")
    scale: Annotated[int, Field(ge=1, le=16384)] | Literal["none"] | None = Field(None, description=(
        "resize the image before segmenting it to this short side in pixels, or `none` to use it at its own "
        "size; default: the model's test scale (e.g. ADE20K: short side 512, long side at most 2048). The "
        "answer is always at the image's own size"))


def selected_classes(text: str | None, metadata: ModelMetadata) -> tuple[int, ...] | None:
    """`classes` ("cat,dog", "3,7", or both mixed) -> class ids; None: all. 422 naming an unknown one."""
    if text is None:
        return None
    try:
        return metadata.class_ids(text)
    except ValueError as exc:
        raise ServiceError(422, "invalid_parameters", f"classes: {exc}; GET /models lists them") from None
