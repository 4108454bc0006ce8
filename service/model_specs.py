"""The models file (`SEGMENTER_MODELS`): which models to serve, and how.

    default: accurate                 # optional: model or alias used when a request names none
    models:
      - name: demo-seg-t16
        checkpoint: demo-seg-t16      # relative to this file: our checkpoint folder, an official
                                      # checkpoint.pth (+ variant.yml), an mmseg .pth, an exported
                                      # ONNX folder; or zoo:NAME (segmenter weights list), fetched
                                      # into SEGMENTER_CACHE_DIR at the first start
        aliases: [accurate]
        backend: auto                 # auto (default): on a CPU, the fastest gated path (service/fast_path.py:
                                      # a checkpoint exported, bf16/int8 built and gated once into
                                      # SEGMENTER_CACHE_DIR; an export: its fastest gated precision);
                                      # on a GPU, torch. Or pin one: torch | onnxruntime | tensorrt
                                      # (ONNX Runtime's TensorRT EP) | openvino (an export's fp32 or gated bf16/int8)
        device: cpu                   # cpu | cuda | cuda:1 ...
        precision: null               # fp32 | fp16 | bf16 | int8 (openvino); with backend auto, a
                                      # precision pins torch (fp32/fp16/bf16) as before the fast path
        calibration: null             # backend auto: images (a folder) to build and gate int8 from
        eval_data: null               # backend auto: a labelled custom-layout folder for the gate's mIoU
        max_batch_size: 8             # windows per forward pass
        batches_in_flight: 1          # batches run at once (CPU: 2+ with SEGMENTER_TORCH_THREADS)
        window_size: null             # override the checkpoint's sliding window (pixels)
        window_stride: null
        blend: uniform                # how overlapping windows are averaged: uniform (the paper's
                                      # protocol) | linear | gaussian (fewer seams; docs/benchmarks.md: Seams)
        max_windows_per_request: null # override SEGMENTER_MAX_WINDOWS_PER_REQUEST for this model
        max_queue_windows: null       # override SEGMENTER_MAX_QUEUE_WINDOWS for this model
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from model import SegmenterError
from model.devices import DeviceError, check_device, parse_device

log = logging.getLogger(__name__)

ZOO_PREFIX = "zoo:"  # checkpoint: zoo:NAME names a registry checkpoint (model/zoo/registry.yaml)


class ModelsFileError(SegmenterError, ValueError):
    """The models file is missing or invalid; the message names the file and the problem."""


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/+-]*$")
    checkpoint: str = Field(min_length=1)  # a path (relative to the models file) or zoo:NAME
    aliases: list[str] = Field(default_factory=list)
    backend: Literal["auto", "torch", "onnxruntime", "tensorrt", "openvino"] = "auto"
    device: str = "cpu"
    precision: Literal["fp32", "fp16", "bf16", "int8"] | None = None  # None: fp32, or auto's choice
    calibration: str | None = None  # backend auto: int8 calibration images (a folder)
    eval_data: str | None = None  # backend auto: labelled images for the gate (custom layout)
    max_batch_size: int = Field(8, ge=1, le=1024)
    batches_in_flight: int = Field(1, ge=1, le=64)  # batches run at once: 1 on a GPU; 2+ can fill a CPU
    window_size: int | None = Field(None, ge=16)
    window_stride: int | None = Field(None, ge=1)
    blend: Literal["uniform", "linear", "gaussian"] = "uniform"  # model.inference.BLENDS
    max_windows_per_request: int | None = Field(None, ge=1)  # None: the service setting
    max_queue_windows: int | None = Field(None, ge=1)  # None: the service setting
    tensorrt_cache: Path | None = None  # where ONNX Runtime keeps built TensorRT engines

    @property
    def is_zoo(self) -> bool:
        return self.checkpoint.startswith(ZOO_PREFIX)

    @property
    def zoo_name(self) -> str:
        return self.checkpoint[len(ZOO_PREFIX):]

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data):
        """`workers` (before 0.2) is read as `batches_in_flight` for one release, with a warning."""
        if isinstance(data, dict) and "workers" in data:
            if "batches_in_flight" in data:
                raise ValueError("give batches_in_flight only (workers is its old name)")
            log.warning("models file: `workers` is now `batches_in_flight` (batches a model runs at once); "
                        "rename the key, the old name goes in the next release")
            data = {("batches_in_flight" if k == "workers" else k): v for k, v in data.items()}
        return data

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        return parse_device(device, "device: {}")  # the name; this machine is checked by checked_device

    def checked_device(self) -> str:
        """The device, checked against this machine: `segmenter serve` stops at start on a device that
        is not there, and a worker started otherwise marks the model failed, with this one message."""
        try:
            return check_device(self.device, "device: {}")
        except DeviceError as exc:
            raise DeviceError(f"model {self.name!r}: {exc} in the models file, or serve it on a GPU host "
                              "(docker compose: the nvidia runtime)") from None

    @model_validator(mode="after")
    def _windows_can_be_planned(self) -> ModelSpec:
        if self.window_size is not None and self.window_stride is not None and self.window_stride > self.window_size:
            raise ValueError(f"window_stride {self.window_stride} is larger than window_size {self.window_size}: "
                             "windows that far apart leave pixels unsegmented; use a stride <= the window")
        return self

    @property
    def fast_path(self) -> bool:
        """Whether the fastest gated CPU path is chosen at load (service/fast_path.py)."""
        return self.backend == "auto" and self.precision is None and self.device == "cpu"

    @model_validator(mode="after")
    def _backend_fits_device(self) -> ModelSpec:
        if self.backend == "auto" and self.precision == "int8":
            raise ValueError("precision int8 is an export's gated variant: leave precision out (backend auto builds "
                             "int8 when calibration images are given) or set backend openvino")
        if (self.calibration or self.eval_data) and not self.fast_path:
            raise ValueError("calibration and eval_data build the fast path: they apply to backend auto on device "
                             "cpu without a precision")
        if self.backend == "tensorrt" and self.device == "cpu":
            raise ValueError("backend tensorrt needs a cuda device")
        if self.backend == "onnxruntime" and self.precision not in (None, "fp32"):
            raise ValueError("backend onnxruntime runs the exported fp32 graph; use precision fp32 "
                             "(or backend openvino for an export's gated bf16/int8 variants on a CPU, "
                             "or backend tensorrt, which builds fp16 engines)")
        if self.backend == "openvino" and (self.device != "cpu" or self.precision == "fp16"):
            raise ValueError("backend openvino runs on device cpu, in precision fp32, bf16 or int8")
        if self.precision == "int8" and self.backend != "openvino":
            raise ValueError("precision int8 is an export's int8 variant, served by backend openvino "
                             "(segmenter export onnx --precision int8)")
        return self


class ModelsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: str | None = None
    models: list[ModelSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_are_unique(self) -> ModelsFile:
        seen: dict[str, str] = {}
        for spec in self.models:
            for key in [spec.name, *spec.aliases]:
                if key in seen:
                    raise ValueError(f"{key!r} names both {seen[key]!r} and {spec.name!r}; "
                                     "names and aliases must be unique")
                seen[key] = spec.name
        if self.default is not None and self.default not in seen:
            raise ValueError(f"default {self.default!r} is not a model name or alias ({sorted(seen)})")
        return self


def load_models_file(path: str | Path) -> ModelsFile:
    """Read and validate a models file; checkpoint paths become absolute (relative to the file)."""
    path = Path(path)
    if not path.is_file():
        raise ModelsFileError(f"models file {path} does not exist; pass --models FILE (or set SEGMENTER_MODELS) "
                              "to a YAML file listing the models (see models/demo.yaml)")
    try:
        raw = yaml.safe_load(path.read_text())
        parsed = ModelsFile.model_validate(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ModelsFileError(f"models file {path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{_location(raw, e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ModelsFileError(f"models file {path} is invalid: {problems}") from exc
    for spec in parsed.models:
        if not spec.is_zoo and not Path(spec.checkpoint).is_absolute():
            spec.checkpoint = str((path.parent / spec.checkpoint).resolve())
        for key in ("calibration", "eval_data"):  # folders, relative to the file as checkpoints are
            value = getattr(spec, key)
            if value is not None and not Path(value).is_absolute():
                setattr(spec, key, str((path.parent / value).resolve()))
        if spec.tensorrt_cache is not None and not spec.tensorrt_cache.is_absolute():
            spec.tensorrt_cache = (path.parent / spec.tensorrt_cache).resolve()
    return parsed


def _location(raw: object, loc: tuple) -> str:
    """A validation error's place, with the model entry's name: `models[demo-seg-t16].window_stride`."""
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int) and isinstance(raw, dict):
        entries = raw.get("models")
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        label = f"models[{name}]" if isinstance(name, str) else f"models[{loc[1]}]"
        return ".".join([label, *map(str, loc[2:])])
    return ".".join(map(str, loc)) or "file"
