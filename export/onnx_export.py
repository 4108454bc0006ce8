"""Checkpoint -> ONNX graph of the sliding-window model (fixed window, dynamic batch)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from export.artifact import INPUT_NAME, ONNX_FILE, OUTPUT_NAME, write_description
from model import Segmenter

# The dynamo exporter emits opset 18 natively (LayerNormalization needs >= 17); asking for 17
# makes it run a version converter that fails on this graph.
DEFAULT_OPSET = 18
_TWO_GB = 2**31


def export_onnx(net: Segmenter, out_dir: str | Path, window_size: int | None = None, opset: int = DEFAULT_OPSET,
                source: str = "") -> Path:
    """Write `out_dir/model.onnx` and `out_dir/segmenter.json` for `net`.

    Args:
        net: a Segmenter with metadata (any checkpoint `load_segmenter` reads).
        window_size: the window side the graph is fixed to (default: the checkpoint's window).
    Returns:
        The export folder. The graph takes `images` B×3×ws×ws float32 (normalized) and returns
        `logits` B×C×ws×ws float32; B is dynamic.
    """
    if net.metadata is None:
        raise ValueError("the model has no metadata; load it with model.load_segmenter")
    window = window_size or net.metadata.window_size
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = net.float().cpu().eval()
    example = torch.randn(2, 3, window, window)
    big = sum(p.numel() * p.element_size() for p in net.parameters()) > 0.9 * _TWO_GB
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        path = Path(tmp) / ONNX_FILE
        torch.onnx.export(
            net, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            opset_version=opset, dynamo=True, external_data=big, verbose=False,
            dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1, max=4096)}},
        )
        for produced in Path(tmp).iterdir():  # model.onnx (+ model.onnx.data for >2 GB models)
            shutil.move(str(produced), out / produced.name)
    metadata = net.metadata.replace(window_size=window, window_stride=min(net.metadata.window_stride, window))
    write_description(out, net.config.to_dict(), metadata, window, opset, source)
    return out
