"""Checkpoint -> ONNX graph of the sliding-window model (fixed window, dynamic batch).

The graph is the window forward every backend meets (`model.inference.forward`): logits on the
model's patch grid, B×C×ceil(ws/p)×ceil(ws/p), the model's last step (upsampling to pixels) left
to the merge — 1/p² of the bytes to produce, convert and copy out per window. A second graph,
for Triton users who want a window's answer rather than its logits (`export.triton`), keeps that
step in the graph and ends in the argmax: B×ws×ws class ids (`export_class_ids_onnx`).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from export.artifact import INPUT_NAME, ONNX_FILE, OUTPUT_NAME, write_description
from model import Segmenter

# The dynamo exporter emits opset 18 natively (LayerNormalization needs >= 17); asking for 17
# makes it run a version converter that fails on this graph.
DEFAULT_OPSET = 18
_TWO_GB = 2**31
CLASS_IDS_NAME = "class_ids"


class PatchGridLogits(nn.Module):
    """`net.forward_patches` as a module's forward: what `model.onnx` computes."""

    def __init__(self, net: Segmenter) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.forward_patches(images)


class WindowClassIds(nn.Module):
    """The class-id map of each window: `net.forward` (its own upsampling to the window's pixels,
    then the crop or resize of its protocol) and the argmax over classes. B×ws×ws, uint8 for up to
    256 classes (int32 above)."""

    def __init__(self, net: Segmenter) -> None:
        super().__init__()
        self.net = net
        self.dtype = torch.uint8 if net.config.num_classes <= 256 else torch.int32

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).argmax(dim=1).to(self.dtype)


def _export_graph(module: nn.Module, window: int, path: Path, output_name: str, opset: int) -> None:
    """`module` (B×3×ws×ws float32 -> one tensor) to `path` (+ `path`.data for > 2 GB of weights)."""
    module = module.eval()
    example = torch.randn(2, 3, window, window)
    big = sum(p.numel() * p.element_size() for p in module.parameters()) > 0.9 * _TWO_GB
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        produced_path = Path(tmp) / path.name
        torch.onnx.export(
            module, (example,), str(produced_path), input_names=[INPUT_NAME], output_names=[output_name],
            opset_version=opset, dynamo=True, external_data=big, verbose=False,
            dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1, max=4096)}},
        )
        for produced in Path(tmp).iterdir():  # model.onnx (+ model.onnx.data for >2 GB models)
            shutil.move(str(produced), path.parent / produced.name)


def export_onnx(net: Segmenter, out_dir: str | Path, window_size: int | None = None, opset: int = DEFAULT_OPSET,
                source: str = "") -> Path:
    """Write `out_dir/model.onnx` and `out_dir/segmenter.json` for `net`.

    Args:
        net: a Segmenter with metadata (any checkpoint `load_segmenter` reads).
        window_size: the window side the graph is fixed to (default: the checkpoint's window).
    Returns:
        The export folder. The graph takes `images` B×3×ws×ws float32 (normalized) and returns
        `logits` B×C×gh×gw float32 on the patch grid (gh = gw = ceil(ws / patch size), recorded
        as `onnx.output_grid`); B is dynamic.
    """
    if net.metadata is None:
        raise ValueError("the model has no metadata; load it with model.load_segmenter")
    window = window_size or net.metadata.window_size
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = net.float().cpu().eval()
    _export_graph(PatchGridLogits(net), window, out / ONNX_FILE, OUTPUT_NAME, opset)
    metadata = net.metadata.replace(window_size=window, window_stride=min(net.metadata.window_stride, window))
    grid = math.ceil(window / net.config.patch_size)
    write_description(out, net.config.to_dict(), metadata, window, opset, source, (grid, grid))
    return out


def export_class_ids_onnx(net: Segmenter, path: str | Path, window: int, opset: int = DEFAULT_OPSET) -> Path:
    """Write the class-id graph of `net` to `path`: `images` B×3×ws×ws float32 (normalized) ->
    `class_ids` B×ws×ws (uint8, int32 above 256 classes), the argmax of the model's own
    full-size logits of each window; B is dynamic."""
    path = Path(path)
    _export_graph(WindowClassIds(net.float().cpu().eval()), window, path, CLASS_IDS_NAME, opset)
    return path
