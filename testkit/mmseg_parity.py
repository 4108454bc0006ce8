"""The measurements of our loading of MMSegmentation checkpoints against MMSegmentation 1.2.2
itself, shared by tests/model/test_mmseg_parity.py (which asserts them) and
benchmarks/mmseg_parity.py (which prints them; docs/weights.md records its output).

CASES                   (head, file) pairs: mmseg's vit-t mask and vit-s linear configs, shrunk,
                        written as an mmengine Runner checkpoint and as a model-zoo file
reference_and_file      mmseg's model of a case and the file it wrote
smooth_rgb              a smooth random RGB image (blobs: class margins worth comparing)
one_window_difference   one window's logits: max |ours - mmseg| / max |mmseg|
sliding_difference      the same for sliding-window logits (mmseg's `slide_inference`)
predicted_masks         `Predictor.predict` and mmseg's `inference_model` of one image

Needs mmsegmentation (the dev extra): call `mmseg_reference.import_mmseg()` first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from model import Predictor, Segmenter
from model.inference import plan_windows
from testkit import mmseg_reference as mmseg_ref

CASES = [("mask", "runner"), ("linear", "runner"), ("mask", "zoo"), ("linear", "zoo")]


def reference_and_file(kind: str, source: str, folder: Path) -> tuple[torch.nn.Module, Path]:
    """(mmseg's model, the file it is in) for head `kind` ("mask", "linear") and `source`:
    "runner", mmseg 1.x training (no patch bias, its config stored in the file, window 64 stride 48,
    test scale (256, 64)), or "zoo", a 0.x zoo file (patch bias, no config: mmseg's ADE20K
    defaults, window 128 stride 96, test scale (2048, 512), which both sides then use)."""
    if source == "runner":
        cfg = mmseg_ref.shrunk_config(kind)
        path = mmseg_ref.write_runner_checkpoint(cfg, folder)
        return mmseg_ref.build(cfg, path), path
    cfg = mmseg_ref.shrunk_config(kind, window=128, stride=96, test_scale=(2048, 512), patch_bias=True)
    reference = mmseg_ref.build(cfg, seed=1)
    return reference, mmseg_ref.write_zoo_file(reference, folder / "zoo.pth")


def smooth_rgb(height: int, width: int, seed: int) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), np.uint8)
    up = torch.nn.functional.interpolate(torch.from_numpy(small).permute(2, 0, 1)[None].float(), size=(height, width),
                                         mode="bilinear")
    return up[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


def relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


@torch.inference_mode()
def one_window_difference(reference: torch.nn.Module, ours: Segmenter, images: torch.Tensor) -> float:
    """Logits of normalized B×3×H×W images, one window each, relative to mmseg's largest."""
    return relative(ours(images), mmseg_ref.forward_logits(reference, images))


@torch.inference_mode()
def sliding_difference(reference: torch.nn.Module, ours: Segmenter, rgb: np.ndarray) -> float:
    """Sliding-window logits of one image at its own size (no test scale), relative to mmseg's largest."""
    predictor = Predictor(ours, max_windows=None)
    image = predictor.to_tensor(rgb)
    plan = plan_windows(image, predictor.window_size, predictor.window_stride, upscale=False, grid=predictor.grid)
    logits = plan.merged(plan.views[0], predictor.run(plan))
    return relative(logits, mmseg_ref.slide_logits(reference, image))


def predicted_masks(reference: torch.nn.Module, ours: Segmenter, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ours, mmseg's) class masks of an RGB image through the whole path: test scale, slide, resize back."""
    return Predictor(ours, max_windows=None).predict(rgb), mmseg_ref.predict(reference, rgb)[0]
