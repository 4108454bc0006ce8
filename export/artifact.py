"""The exported-model folder: what `export onnx` writes and every later step reads.

    DIR/
      model.onnx        images B×3×ws×ws float32 normalized -> logits B×C×ws×ws float32
      segmenter.json    {"format": "segmenter-onnx", "version": 1, "config": {...},
                         "metadata": {...}, "onnx": {"file", "input", "output", "window_size", "opset"}}

`metadata` is the checkpoint's (classes, palette, normalization, window, stride), so the service
and Triton users preprocess exactly as training did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model import ModelMetadata, SegmenterError

FORMAT = "segmenter-onnx"
VERSION = 1
ONNX_FILE = "model.onnx"
ENGINE_FILE = "model.plan"  # a TensorRT engine built from the graph (`export tensorrt`)
META_FILE = "segmenter.json"
INPUT_NAME = "images"
OUTPUT_NAME = "logits"


class ExportError(SegmenterError, RuntimeError):
    """An export step failed or its result does not match PyTorch; the message says which."""


@dataclass(frozen=True)
class ExportedModel:
    folder: Path
    config: dict[str, Any]
    metadata: ModelMetadata
    window_size: int
    opset: int

    @property
    def onnx_path(self) -> Path:
        return self.folder / ONNX_FILE

    @property
    def num_classes(self) -> int:
        return self.metadata.num_classes


def write_description(folder: Path, config: dict[str, Any], metadata: ModelMetadata, window: int, opset: int,
                      source: str) -> None:
    description = {
        "format": FORMAT,
        "version": VERSION,
        "config": config,
        "metadata": metadata.to_dict(),
        "onnx": {"file": ONNX_FILE, "input": INPUT_NAME, "output": OUTPUT_NAME, "window_size": window,
                 "opset": opset, "dynamic_batch": True, "source": source},
    }
    (folder / META_FILE).write_text(json.dumps(description, indent=2) + "\n")


def is_exported(folder: str | Path) -> bool:
    """True for a folder `export onnx` wrote (its graph is there), whatever else it holds."""
    return Path(folder).is_dir() and (Path(folder) / ONNX_FILE).is_file()


def read_exported(folder: str | Path) -> ExportedModel:
    """Open an export folder, checking that it is complete."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise ExportError(f"{folder} is not an exported model: {META_FILE} is missing (run `segmenter export onnx`)")
    data = json.loads(meta_path.read_text())
    if data.get("format") != FORMAT:
        raise ExportError(f"{meta_path} describes {data.get('format')!r}, not an ONNX export ({FORMAT})")
    if not (folder / ONNX_FILE).is_file():
        raise ExportError(f"{folder} has {META_FILE} but no {ONNX_FILE}")
    onnx_info = data["onnx"]
    return ExportedModel(folder=folder, config=data["config"], metadata=ModelMetadata.from_dict(data["metadata"]),
                         window_size=int(onnx_info["window_size"]), opset=int(onnx_info["opset"]))
