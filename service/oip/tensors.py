"""v2 tensors <-> images, options and answers, whichever transport carried them.

A transport (HTTP JSON, HTTP binary extension, gRPC) turns its request into `InputTensor`s, a
parameter dict and the names of the outputs asked for; this module checks them and returns the
images and options of `service.segmentation`; it then turns each image's class ids (and
confidence) into `OutputTensor`s. Every mistake is a ServiceError naming the tensor, the
parameter or the datatype, and what to send instead.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from model import ModelMetadata
from model.options import SegmentOptions
from model.outputs import keep_only, selected_confidence
from service.errors import ServiceError
from service.segment_options import options_from
from service.segmentation import Image, Segmentation

INPUT = "image"
OUTPUTS = ("class_ids", "confidence")
DEFAULT_OUTPUTS = ("class_ids",)  # confidence costs a probability map per image: only when asked for
IMAGE_DATATYPES = ("BYTES", "UINT8")
# The request parameters of `POST /segment` that a v2 request may set.
OPTION_PARAMETERS = ("scale", "multiscale", "classes")
# Set by tritonclient (and Triton's other clients) on every request that uses them.
TIMEOUT = "timeout"  # microseconds: this request's deadline, when shorter than the server's
BINARY_OUTPUT = "binary_data_output"  # HTTP: answer every output as binary tensor data
SEQUENCE_PARAMETERS = ("sequence_id", "sequence_start", "sequence_end")


def bad_request(message: str) -> ServiceError:
    return ServiceError(400, "bad_request", message)


@dataclass
class InputTensor:
    """One input as a transport read it: BYTES as a list of elements, numbers as a flat array."""

    name: str
    datatype: str
    shape: list[int]
    data: list[bytes] | np.ndarray


@dataclass
class OutputTensor:
    name: str
    datatype: str  # UINT8 | UINT16 | FP32
    shape: list[int]
    array: np.ndarray  # C-contiguous, of `shape`

    def raw(self) -> bytes:
        """The tensor as v2's binary data (HTTP) and raw_output_contents (gRPC): little-endian."""
        return self.array.astype(self.array.dtype.newbyteorder("<"), copy=False).tobytes()


def raw_data(name: str, datatype: str, raw: bytes | memoryview) -> list[bytes] | np.ndarray:
    """An input's data from its raw bytes (HTTP binary data, gRPC raw_input_contents)."""
    if datatype == "BYTES":
        return split_bytes_elements(raw, name)
    return np.frombuffer(raw, np.uint8) if datatype == "UINT8" else np.empty(0)  # others: refused by read_images


@dataclass
class V2Request:
    """What a v2 inference request asks, read and checked (`read_request`)."""

    images: list[Image]
    options: SegmentOptions
    outputs: tuple[str, ...]
    batch_shape: list[int]  # the answer's leading dimensions: [N] for BYTES [N], [] for pixels [H,W,3]
    timeout_s: float | None = None  # the client's own deadline
    json_outputs: tuple[str, ...] = ()  # the outputs to be answered as JSON numbers (HTTP), not binary
    id: str = ""  # the client's request id, echoed


def class_ids_datatype(metadata: ModelMetadata) -> str:
    """UINT8 for up to 255 classes (255: pixels outside a `classes` selection), else UINT16."""
    return "UINT8" if metadata.num_classes <= 255 else "UINT16"


def _checked_shape(tensor: InputTensor) -> list[int]:
    if not all(isinstance(d, int) and d >= 0 for d in tensor.shape):
        raise bad_request(f"input {tensor.name}: shape {tensor.shape} is not a list of sizes")
    return list(tensor.shape)


def read_images(tensor: InputTensor) -> tuple[list[Image], list[int]]:
    """The images of the `image` input, and the answer's leading dimensions."""
    if tensor.name != INPUT:
        raise bad_request(f"unknown input {tensor.name!r}; the model takes one input, {INPUT!r} (BYTES: encoded "
                          "images, or UINT8: H×W×3 pixels)")
    shape = _checked_shape(tensor)
    if tensor.datatype == "BYTES":
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise bad_request(f"input {INPUT}: BYTES shape must be [N] (one encoded image per element), not {shape}")
        if len(tensor.data) != shape[0]:
            raise bad_request(f"input {INPUT}: shape {shape} says {shape[0]} images; the data holds {len(tensor.data)}")
        if shape[0] == 0:
            raise bad_request(f"input {INPUT}: no image (shape {shape}); send at least one")
        return list(tensor.data), [shape[0]]
    if tensor.datatype == "UINT8":
        if len(shape) not in (3, 4) or shape[-1] != 3:
            raise bad_request(f"input {INPUT}: UINT8 shape must be [H,W,3] or [N,H,W,3] (RGB pixels), not {shape}")
        count = math.prod(shape)  # Python ints: a huge shape must not wrap around
        if tensor.data.size != count:
            raise bad_request(f"input {INPUT}: shape {shape} needs {count:,} bytes of pixels; the data holds "
                              f"{tensor.data.size:,}")
        pixels = np.asarray(tensor.data, dtype=np.uint8).reshape(shape)
        if len(shape) == 3:
            return [pixels], []
        if shape[0] == 0:
            raise bad_request(f"input {INPUT}: no image (shape {shape}); send at least one")
        return list(pixels), [shape[0]]
    raise bad_request(f"input {INPUT}: datatype {tensor.datatype} is not accepted; send BYTES (encoded images) or "
                      "UINT8 (H×W×3 RGB pixels)")


def read_options(parameters: dict[str, Any], timeout_known: bool = True) -> tuple[SegmentOptions, float | None]:
    """`scale`, `multiscale` and `classes` as `SegmentOptions`, and the client's deadline
    (`timeout`, µs) in seconds. Any other parameter is a 400 naming it."""
    options, timeout_s = {}, None
    for name, value in parameters.items():
        if name in OPTION_PARAMETERS:
            options[name] = value
        elif name == TIMEOUT and timeout_known:
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise bad_request(f"parameter timeout: {value!r} is not a positive number of microseconds")
            timeout_s = value / 1e6
        elif name in SEQUENCE_PARAMETERS:
            raise bad_request(f"parameter {name}: sequences are for stateful models; segmentation is stateless: "
                              "send each image on its own")
        elif name == "priority":
            if value not in (0, None):
                raise bad_request("parameter priority: this server has one priority; drop the parameter")
        else:
            raise bad_request(f"unknown parameter {name!r}; the parameters are {', '.join(OPTION_PARAMETERS)}")
    return options_from(options, 400, "parameter "), timeout_s


def read_outputs(names: list[str] | None) -> tuple[str, ...]:
    """The outputs asked for (none listed: class_ids); an unknown or repeated one is a 400."""
    if not names:
        return DEFAULT_OUTPUTS
    for name in names:
        if name not in OUTPUTS:
            raise bad_request(f"unknown output {name!r}; the outputs are {', '.join(OUTPUTS)}")
    if len(set(names)) != len(names):
        raise bad_request(f"outputs: each output may be asked for once, not {names}")
    return tuple(names)


def read_request(inputs: list[InputTensor], parameters: dict[str, Any], outputs: list[str] | None) -> V2Request:
    if len(inputs) != 1:
        names = ", ".join(repr(t.name) for t in inputs) or "none"
        raise bad_request(f"the model takes one input, {INPUT!r}; the request has {len(inputs)} ({names})")
    images, batch_shape = read_images(inputs[0])
    options, timeout_s = read_options(parameters)
    return V2Request(images, options, read_outputs(outputs), batch_shape, timeout_s)


def same_size(sizes: list[tuple[int, int]]) -> None:
    """The images of one request answer one tensor: they must have one size."""
    if len(set(sizes)) > 1:
        listed = ", ".join(f"{w}×{h}" for h, w in dict.fromkeys(sizes))
        raise bad_request(f"the images of one request must have one size (their answers form one tensor); these are "
                          f"{listed}: send them in separate requests")


def answer_tensors(request: V2Request, results: list[Segmentation], metadata: ModelMetadata) -> list[OutputTensor]:
    """The outputs asked for, each stacked over the request's images: [*batch_shape, H, W]."""
    selected = request.options.render_options(metadata).selected
    datatype = class_ids_datatype(metadata)
    kept = [keep_only(r.mask, selected, metadata) for r in results]
    arrays = {}
    if "class_ids" in request.outputs:
        arrays["class_ids"] = (datatype, [k.astype(np.dtype(datatype.lower()), copy=False) for k in kept])
    if "confidence" in request.outputs:
        arrays["confidence"] = ("FP32", [selected_confidence(r.confidence, r.mask, k)
                                         for r, k in zip(results, kept, strict=True)])
    tensors = []
    for name in request.outputs:
        kind, planes = arrays[name]
        stacked = np.stack(planes) if request.batch_shape else planes[0]
        tensors.append(OutputTensor(name, kind, list(stacked.shape), np.ascontiguousarray(stacked)))
    return tensors


# --- BYTES tensors and base64 ----------------------------------------------------------------
def split_bytes_elements(raw: bytes | memoryview, name: str) -> list[bytes]:
    """A BYTES tensor's binary form: each element a 4-byte little-endian length, then its bytes."""
    raw = memoryview(raw)
    elements, at = [], 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise bad_request(f"input {name}: BYTES data ends inside an element's 4-byte length")
        (length,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + length > len(raw):
            raise bad_request(f"input {name}: a BYTES element says {length:,} bytes; {len(raw) - at:,} are left")
        elements.append(bytes(raw[at:at + length]))
        at += length
    return elements


def from_base64(text: str, name: str) -> bytes:
    """A BYTES element sent in JSON: base64, as KServe's examples send images."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"input {name}: a BYTES element in JSON must be the image as base64 (or send it as binary "
                          "tensor data: tritonclient does)") from None
