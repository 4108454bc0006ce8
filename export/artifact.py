"""The exported-model folder: what `export onnx` writes and every later step reads.

    DIR/
      model.onnx        images B×3×ws×ws float32 normalized -> logits B×C×gh×gw float32 on the
                        model's patch grid (gh = gw = ceil(ws / patch): no upsampling in the graph)
      segmenter.json    {"format": "segmenter-onnx", "version": 2, "config": {...},
                         "metadata": {...}, "onnx": {"file", "input", "output", "window_size", "opset",
                                                    "output_grid": [gh, gw]},
                         "precisions": {"bf16": {...}, "int8": {...}}}
      model_int8.xml/.bin   with `--precision int8`: the int8 OpenVINO graph

The merge (`model.Predictor` with the export's metadata, which carries the patch size and the
model's last step) upsamples the grid logits exactly as the model would. Version-1 folders (no
`output_grid`) hold graphs whose logits are B×C×ws×ws, upsampled in the graph; they still load,
and the merge takes their full-size logits as they are (`ExportedModel.output_grid` says which).

`metadata` is the checkpoint's (classes, palette, normalization, window, stride), so the service
and Triton users preprocess exactly as training did. `precisions` lists the reduced precisions
that passed the accuracy gate (export/precision_gate.py) — the graph each runs, the runtime and
its inference precision, and the gate's figures; nothing else may be served in reduced precision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model import ModelMetadata, SegmenterError
from model.resolve import EXPORTED_FORMAT

FORMAT = EXPORTED_FORMAT  # "segmenter-onnx": model.load_segmenter reads its `onnx.source`
VERSION = 2  # 2: logits on the patch grid (`output_grid`); 1: logits at the window size
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
    precisions: dict[str, dict[str, Any]] = field(default_factory=dict)  # gated reduced precisions
    output_grid: tuple[int, int] | None = None  # (gh, gw) of the graph's logits; None: (ws, ws)
    version: int = VERSION

    @property
    def logits_shape(self) -> tuple[int, int, int]:
        """C×gh×gw of one window's logits as the graph returns them: the patch grid, or the
        window itself for a version-1 folder."""
        return (self.num_classes, *(self.output_grid or (self.window_size, self.window_size)))

    @property
    def onnx_path(self) -> Path:
        return self.folder / ONNX_FILE

    def reduced_precision(self, precision: str) -> tuple[Path, str]:
        """(graph file, OpenVINO inference precision) of a gated reduced precision; ExportError
        naming the fix when this export has not passed the gate for it."""
        entry = self.precisions.get(precision)
        if entry is None:
            gated = ", ".join(sorted(self.precisions)) or "none"
            raise ExportError(f"{self.folder} has not passed the accuracy gate for {precision} (gated: {gated}); run "
                              f"`segmenter export onnx --precision {precision} ...` to make and check it")
        graph = self.folder / entry["file"]
        if not graph.is_file():
            raise ExportError(f"{self.folder / META_FILE} lists {precision} in {entry['file']}, which is missing")
        return graph, entry["inference_precision"]

    @property
    def num_classes(self) -> int:
        return self.metadata.num_classes


def write_description(folder: Path, config: dict[str, Any], metadata: ModelMetadata, window: int, opset: int,
                      source: str, output_grid: tuple[int, int]) -> None:
    description = {
        "format": FORMAT,
        "version": VERSION,
        "config": config,
        "metadata": metadata.to_dict(),
        "onnx": {"file": ONNX_FILE, "input": INPUT_NAME, "output": OUTPUT_NAME, "window_size": window,
                 "opset": opset, "dynamic_batch": True, "source": source, "output_grid": list(output_grid)},
    }
    (folder / META_FILE).write_text(json.dumps(description, indent=2) + "\n")


def record_precision(folder: Path, precision: str, entry: dict[str, Any]) -> None:
    """Add a reduced precision that passed its gate to the folder's description."""
    path = Path(folder) / META_FILE
    description = json.loads(path.read_text())
    description.setdefault("precisions", {})[precision] = entry
    path.write_text(json.dumps(description, indent=2) + "\n")


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
    window = int(onnx_info["window_size"])
    grid = onnx_info.get("output_grid") or (window, window)  # version 1: logits at the window size
    # The graph's logits are mapped to pixels as its model would (older folders' metadata lacks it).
    metadata = ModelMetadata.from_dict(data["metadata"]).replace(
        patch_size=int(data["config"]["patch_size"]),
        output_resize=data["config"].get("output_resize", "upsample_crop"))
    return ExportedModel(folder=folder, config=data["config"], metadata=metadata,
                         window_size=window, opset=int(onnx_info["opset"]),
                         precisions=dict(data.get("precisions", {})), output_grid=(int(grid[0]), int(grid[1])),
                         version=int(data.get("version", 1)))
