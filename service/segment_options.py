"""The parameters of POST /segment (read by `service.form_options.read_form`): the one options
type every entry point shares (`model.options.SegmentOptions`), plus which model and output; and
the answer's encoding, from `format` or else the `Accept` header (`answer_format`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError

from model import ModelMetadata
from model.options import SegmentOptions
from model.outputs import FORMAT_MEDIA_TYPES, IMAGE_OUTPUTS, OUTPUT_FORMATS, RenderOptions
from service.errors import STATUS_CODES, ServiceError
from service.negotiation import preferred

Output = Literal[IMAGE_OUTPUTS]  # mask, overlay, json, confidence


class SegmentForm(SegmentOptions):
    model: str | None = Field(None, max_length=200, description="model name or alias (`fast`, `accurate`); "
                              "default: the service's default model")
    output: Output = Field("mask", description="default: mask. mask (PNG of class ids) | overlay (RGB PNG, JPEG "
                           "or WebP: `format`) | json (classes, row-major RLE, per-class COCO RLE) | confidence "
                           "(8-bit PNG: each pixel's class probability)")
    format: Literal["png", "jpeg", "webp"] | None = Field(None, description=(
        "overlay: png, jpeg or webp (lossy: for a 12-MP photo 6-20× smaller and 4-25× faster to encode); default: "
        "the `Accept` header's choice (e.g. `Accept: image/webp`), else png. Masks and confidence maps are PNG "
        "only (lossy encoding would change their values)"))


def options_from(values: dict[str, Any], status: int, label: str = "") -> SegmentOptions:
    """`SegmentOptions` from a protocol's parameters (v2, Hugging Face); a ServiceError with
    `status` naming each invalid one (`label` before its name, e.g. "parameter ")."""
    try:
        return SegmentOptions(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{label}{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise ServiceError(status, STATUS_CODES[status], problems) from None


def render_options(options: SegmentOptions, metadata: ModelMetadata) -> RenderOptions:
    """`options.render_options`, with an unknown class a 422 naming it."""
    try:
        return options.render_options(metadata)
    except ValueError as exc:
        raise ServiceError(422, "invalid_parameters", f"classes: {exc}; GET /models lists them") from None


_ONLY_PNG = {"mask": "the class ids", "confidence": "the probabilities"}


def answer_format(options: SegmentForm, accept: str | None) -> str:
    """The encoding of the answer (a key of FORMAT_MEDIA_TYPES): `format` if given (a 422 when the
    output cannot have it), else, for an output with several (overlay), the one the `Accept`
    header prefers (a 406 naming them when it allows none), else the output's default."""
    allowed = OUTPUT_FORMATS[options.output]
    if options.format is not None and options.format not in allowed:
        if options.output == "json":
            problem = "output=json is a JSON document; format applies to images: drop it"
        elif options.output in _ONLY_PNG:
            problem = (f"output={options.output} is PNG only: JPEG and WebP are lossy and would change "
                       f"{_ONLY_PNG[options.output]}; drop format, or ask for output=overlay")
        else:
            problem = f"this server's Pillow cannot write {options.format}; choose from {', '.join(allowed)}"
        raise ServiceError(422, "invalid_parameters", f"format: {problem}")
    if options.format is not None:
        return options.format
    if len(allowed) == 1 or not accept or not accept.strip():
        # One encoding only (mask, confidence, json): Accept is not consulted, as before it picked
        # overlays' (RFC 9110 lets a server disregard it): `Accept: application/json` clients still
        # get their mask.
        return allowed[0]
    best = preferred(accept, [FORMAT_MEDIA_TYPES[f] for f in allowed])
    if best is None:
        produced = ", ".join(FORMAT_MEDIA_TYPES[f] for f in allowed)
        raise ServiceError(406, "not_acceptable", f"Accept: {accept} allows none of what output={options.output} "
                           f"can be: {produced}; accept one of them (or */*)"
                           + ", or choose with format=")
    return allowed[[FORMAT_MEDIA_TYPES[f] for f in allowed].index(best)]


def selected_classes(text: str, metadata: ModelMetadata) -> tuple[int, ...]:
    """Class names or ids -> ids; 422 naming an unknown one."""
    try:
        return metadata.class_ids(text)
    except ValueError as exc:
        raise ServiceError(422, "invalid_parameters", f"class: {exc}; GET /models lists them") from None
