"""The options of one segmentation, one type for every entry point.

`POST /segment` (its form: `service.segment_options.SegmentForm` adds `model` and `output`),
`POST /attention` (its `scale`), `segmenter predict` (its flags), the Ray job and Python callers
all build a `SegmentOptions`, checked here once, with one message per mistake:

    options = SegmentOptions(scale=768, classes="person,car", alpha=0.3)
    plan = predictor.prepare(rgb, options.multiscale, scale=options.scale)
    render("overlay", rgb, mask, metadata, name, options=options.render_options(metadata))

Which outputs to render is a separate list (`model.outputs.OUTPUTS`): one HTTP request asks for
one, a folder job for several.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from model.inference import MAX_SCALE, Scale, parse_scale
from model.metadata import ModelMetadata
from model.outputs import RenderOptions

ScaleOption = Annotated[
    Scale,
    PlainValidator(parse_scale),  # one message for every wrong value, not one per member of a union
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_SCALE}, {"const": "none"}],
                    "title": "Scale"}),
]


class SegmentOptions(BaseModel):
    """How to segment an image and draw what is found; every field has the default of every caller."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: ScaleOption = Field(None, description=(
        "resize the image before segmenting it to this short side in pixels, or `none` to use it at its own "
        "size; default: the model's test scale (e.g. ADE20K: short side 512, long side at most 2048). The "
        "answer is always at the image's own size"))
    multiscale: bool = Field(False, description="test-time augmentation: 6 scales × flips (slower)")
    classes: str | None = Field(None, max_length=4000, description=(
        "only these classes, by name or id, comma-separated (e.g. `person,car` or `12,20`); other pixels are 255 "
        "(65535 from 256 classes) in the mask, unpainted in the overlay, absent from JSON, 0 in the confidence"))
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="overlay: weight of the class colours")
    legend: bool = Field(True, description="overlay: append a legend of the classes found")
    polygons: bool = Field(False, description="json: add simplified polygons per class (outer rings and holes)")
    format: Literal["png", "jpeg", "webp"] | None = Field(None, description=(
        "overlay: png (lossless; default), jpeg or webp (lossy: for a 12-MP photo 6-20× smaller, and 25× (jpeg) "
        "or 4× (webp) faster to encode); masks and confidence maps are always PNG, which keeps their values"))

    def render_options(self, metadata: ModelMetadata) -> RenderOptions:
        """The drawing options for a model: `classes` resolved against its class names (ValueError
        naming an unknown one)."""
        selected = metadata.class_ids(self.classes) if self.classes is not None else None
        return RenderOptions(self.alpha, self.legend, self.polygons, selected, self.format or "png")
