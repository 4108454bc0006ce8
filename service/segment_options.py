"""The parameters of POST /segment (read by `service.form_options.read_form`): the one options
type every entry point shares (`model.options.SegmentOptions`), plus which model and output."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from model import ModelMetadata
from model.options import SegmentOptions
from model.outputs import IMAGE_OUTPUTS, RenderOptions
from service.errors import ServiceError

Output = Literal[IMAGE_OUTPUTS]  # mask, overlay, json, confidence


class SegmentForm(SegmentOptions):
    model: str | None = Field(None, max_length=200, description="model name or alias (`fast`, `accurate`); "
                              "default: the service's default model")
    output: Output = Field("mask", description="mask (PNG of class ids) | overlay (RGB PNG) | json (classes, "
                           "row-major RLE, per-class COCO RLE) | confidence (8-bit PNG: each pixel's class "
                           "probability)")


def render_options(options: SegmentOptions, metadata: ModelMetadata) -> RenderOptions:
    """`options.render_options`, with an unknown class a 422 naming it."""
    try:
        return options.render_options(metadata)
    except ValueError as exc:
        raise ServiceError(422, "invalid_parameters", f"classes: {exc}; GET /models lists them") from None


def selected_classes(text: str, metadata: ModelMetadata) -> tuple[int, ...]:
    """Class names or ids -> ids; 422 naming an unknown one."""
    try:
        return metadata.class_ids(text)
    except ValueError as exc:
        raise ServiceError(422, "invalid_parameters", f"class: {exc}; GET /models lists them") from None
