"""The parameters of POST /segment (read by `service.form_options.read_form`): the one options
type every entry point shares (`model.options.SegmentOptions`), plus which model and output; and
the answer's encoding, from `format` or else the `Accept` header (`answer_format`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from model import ModelMetadata
from model.options import SegmentOptions
from model.outputs import FORMAT_MEDIA_TYPES, IMAGE_OUTPUTS, OUTPUT_FORMATS, RenderOptions
from service.errors import ServiceError

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


def render_options(options: SegmentOptions, metadata: ModelMetadata) -> RenderOptions:
    """`options.render_options`, with an unknown class a 422 naming it."""
    try:
        return options.render_options(metadata)
    except ValueError as exc:
        raise ServiceError(422, "invalid_parameters", f"classes: {exc}; GET /models lists them") from None


_ONLY_PNG = {"mask": "the class ids", "confidence": "the probabilities"}


def answer_format(options: SegmentForm, accept: str | None) -> str:
    """The encoding of the answer (a key of FORMAT_MEDIA_TYPES): `format` if given (a 422 when the
    output cannot have it), else the one the `Accept` header prefers among those the output can
    have, else the output's default; a 406 naming them when Accept allows none."""
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
    if not accept or not accept.strip():
        return allowed[0]
    best = preferred(accept, [FORMAT_MEDIA_TYPES[f] for f in allowed])
    if best is None:
        produced = ", ".join(FORMAT_MEDIA_TYPES[f] for f in allowed)
        raise ServiceError(406, "not_acceptable", f"Accept: {accept} allows none of what output={options.output} "
                           f"can be: {produced}; accept one of them (or */*)"
                           + (", or choose with format=" if len(allowed) > 1 else ""))
    return allowed[[FORMAT_MEDIA_TYPES[f] for f in allowed].index(best)]


def preferred(accept: str, offered: list[str]) -> str | None:
    """The media type of `offered` (the server's order of preference) that an Accept header
    prefers: highest q of its most specific matching range; at equal q, a type the header names
    beats one only a wildcard covers, then the header's order, then the server's. None: q=0 for all."""
    ranges = []  # (type, subtype, q)
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if "/" not in media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0  # a malformed weight allows nothing
        kind, subtype = (x.strip().lower() for x in media.split("/", 1))
        ranges.append((kind, subtype, q))
    scored = []
    for rank, media in enumerate(offered):
        kind, subtype = media.split("/")
        matches = [(2 if (k, s) == (kind, subtype) else 1 if (k, s) == (kind, "*") else 0, -position, q)
                   for position, (k, s, q) in enumerate(ranges)
                   if (k, s) in ((kind, subtype), (kind, "*"), ("*", "*"))]
        if matches:
            specificity, position, q = max(matches)  # the most specific range decides
            if q > 0:
                scored.append((q, specificity, position, -rank, media))
    return max(scored)[-1] if scored else None


def selected_classes(text: str, metadata: ModelMetadata) -> tuple[int, ...]:
    """Class names or ids -> ids; 422 naming an unknown one."""
    try:
        return metadata.class_ids(text)
    except ValueError as exc:
        raise ServiceError(422, "invalid_parameters", f"class: {exc}; GET /models lists them") from None
